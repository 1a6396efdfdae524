import { describe, expect, it } from 'vitest';
import { bindingKeyMatcher } from './bindingKeys.js';

describe('bindingKeyMatcher', () => {
  it('binds every type when a key is #', () => {
    expect(bindingKeyMatcher(['order.placed', '#'])).toBeUndefined();
  });

  it('matches exact keys and topic patterns (* one word, # zero or more)', () => {
    const matches = bindingKeyMatcher(['order.placed', 'payment.*', 'shipping.#', '#.refunded'])!;
    expect(matches('order.placed')).toBe(true);
    expect(matches('order.cancelled')).toBe(false);
    expect(matches('payment.charged')).toBe(true);
    expect(matches('payment.charged.v2')).toBe(false);
    expect(matches('shipping')).toBe(true);
    expect(matches('shipping.label.printed')).toBe(true);
    expect(matches('payment.refunded')).toBe(true);
    expect(matches('refunded')).toBe(true);
    expect(matches('refunded.late')).toBe(false);
  });

  it('gives the same answer from its memo as the first time', () => {
    const matches = bindingKeyMatcher(['a.*.c'])!;
    for (let i = 0; i < 3; i++) {
      expect(matches('a.b.c')).toBe(true);
      expect(matches('a.b.d')).toBe(false);
    }
  });
});
