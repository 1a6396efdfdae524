import { describe, expect, it } from 'vitest';
import { KafkaConfigError } from '../errors.js';
import { typeFilterOf } from './typeFilter.js';

const typed = (type: unknown) => ({ ce_type: type as Buffer });

describe('typeFilterOf (bindingKeys)', () => {
  it('delivers everything without keys or with "#"', () => {
    expect(typeFilterOf(undefined)).toBeUndefined();
    expect(typeFilterOf(['order.placed', '#'])).toBeUndefined();
  });

  it('matches exact types and AMQP topic patterns on the ce_type header', () => {
    const f = typeFilterOf(['order.placed', 'payment.*', 'shipping.#'])!;
    expect(f.delivers(typed(Buffer.from('order.placed')))).toBe(true);
    expect(f.delivers(typed('order.placed'))).toBe(true);
    expect(f.delivers(typed(Buffer.from('order.cancelled')))).toBe(false);
    expect(f.delivers(typed(Buffer.from('payment.charged')))).toBe(true);
    expect(f.delivers(typed(Buffer.from('payment.charged.late')))).toBe(false);
    expect(f.delivers(typed(Buffer.from('shipping')))).toBe(true);
    expect(f.delivers(typed(Buffer.from('shipping.a.b')))).toBe(true);
    // Twice: the memo of decided types gives the same answer.
    expect(f.delivers(typed(Buffer.from('payment.charged.late')))).toBe(false);
  });

  it('leaves records without a readable ce_type header to the processor', () => {
    const f = typeFilterOf(['order.placed'])!;
    expect(f.delivers({})).toBe(true);
    expect(f.delivers({ 'content-type': Buffer.from('application/cloudevents+json') })).toBe(true);
    expect(f.delivers(typed(null))).toBe(true);
    expect(f.delivers(typed([Buffer.from('x'), Buffer.from('y')]))).toBe(true);
    expect(f.delivers(typed(42))).toBe(true);
  });

  it('rejects keys that are not a non-empty array of non-empty strings', () => {
    for (const bad of [[], [''], ['a', 3], 'order.placed']) {
      expect(() => typeFilterOf(bad as unknown as string[])).toThrow(KafkaConfigError);
    }
  });
});
