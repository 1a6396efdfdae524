import { describe, expect, it } from 'vitest';
import { hostOf, isLoopback, newSecret, sameSecret } from './security.js';

describe('console guards', () => {
  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.8.0.1', '::1', 'localhost'])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.5', 'example.com', '127.0.0.1.evil.com'])
      expect(isLoopback(h), h).toBe(false);
  });

  it('reads the host of a Host header', () => {
    expect(hostOf('127.0.0.1:7420')).toBe('127.0.0.1');
    expect(hostOf('[::1]:7420')).toBe('::1');
    expect(hostOf('localhost')).toBe('localhost');
  });

  it('compares secrets exactly', () => {
    const s = newSecret();
    expect(s).not.toBe(newSecret());
    expect(sameSecret(s, s)).toBe(true);
    expect(sameSecret(`${s}x`, s)).toBe(false);
    expect(sameSecret(undefined, s)).toBe(false);
    expect(sameSecret('', s)).toBe(false);
  });
});
