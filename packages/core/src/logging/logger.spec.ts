import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDefaultLogger, DEFAULT_LOG_LEVEL } from './logger.js';

describe('createDefaultLogger', () => {
  const saved = process.env.BACKTRACK_LOG_LEVEL;
  afterEach(() => {
    if (saved === undefined) delete process.env.BACKTRACK_LOG_LEVEL;
    else process.env.BACKTRACK_LOG_LEVEL = saved;
    vi.restoreAllMocks();
  });

  /** The JSON lines the logger writes (pino writes to stdout through process.stdout.write). */
  function capture(): string[] {
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    return lines;
  }

  it('logs at warn without BACKTRACK_LOG_LEVEL, as the docs say', () => {
    delete process.env.BACKTRACK_LOG_LEVEL;
    expect(DEFAULT_LOG_LEVEL).toBe('warn');
    expect(createDefaultLogger().level).toBe('warn');
  });

  it('logs a failed attempt as one line without a stack at the default level', () => {
    delete process.env.BACKTRACK_LOG_LEVEL;
    const lines = capture();
    const error = Object.assign(new Error('card declined'), { code: 'E_DECLINED' });
    createDefaultLogger().warn({ err: error }, 'step failed');
    const record = JSON.parse(lines.join('')) as { err: Record<string, unknown> };
    expect(record.err).toEqual({ type: 'Error', message: 'card declined', code: 'E_DECLINED' });
  });

  it('keeps the stack at debug', () => {
    process.env.BACKTRACK_LOG_LEVEL = 'debug';
    const lines = capture();
    createDefaultLogger().warn({ err: new Error('boom') }, 'step failed');
    const record = JSON.parse(lines.join('')) as { err: { stack: string } };
    expect(record.err.stack).toContain('Error: boom');
  });
});
