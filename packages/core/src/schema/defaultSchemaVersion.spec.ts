import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { handle } from '../consumer/middleware.js';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import { defineEvent } from './defineEvent.js';
import { SchemaDefinitionError } from './errors.js';
import { DEFAULT_SCHEMA_VERSION, EventRegistry } from './EventRegistry.js';

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string() }))
  .version(2, z.object({ orderId: z.string(), currency: z.string() }), {
    up: (v1) => ({ ...(v1 as { orderId: string }), currency: 'EUR' }),
    down: ({ orderId }) => ({ orderId }),
  });
const Other = defineEvent('other').version(1, z.object({}));

describe('EventRegistry default schema versions', () => {
  it('defaults every type to version 1', () => {
    expect(DEFAULT_SCHEMA_VERSION).toBe(1);
    expect(new EventRegistry([OrderPlaced]).defaultSchemaVersion('order.placed')).toBe(1);
    expect(new EventRegistry([]).defaultSchemaVersion('unknown')).toBe(1);
  });

  it('uses the per-type default and keeps it in with()', () => {
    const registry = new EventRegistry([OrderPlaced], {
      defaultSchemaVersions: { 'order.placed': 2 },
    });
    expect(registry.defaultSchemaVersion('order.placed')).toBe(2);
    const bigger = registry.with(Other);
    expect(bigger.defaultSchemaVersion('order.placed')).toBe(2);
    expect(bigger.defaultSchemaVersion('other')).toBe(1);
  });

  it('refuses a default for an unregistered type or an unknown version', () => {
    expect(
      () => new EventRegistry([OrderPlaced], { defaultSchemaVersions: { 'order.plaecd': 1 } }),
    ).toThrow(SchemaDefinitionError);
    expect(
      () => new EventRegistry([OrderPlaced], { defaultSchemaVersions: { 'order.placed': 3 } }),
    ).toThrow(SchemaDefinitionError);
  });

  it('applies to a foreign event without schemaversion in the consumer pipeline; a versioned dataschema wins', async () => {
    const seen: { id: string; wire: number; data: unknown }[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'billing',
        handlers: [
          handle(OrderPlaced, ({ envelope, data }) => {
            seen.push({ id: envelope.id, wire: envelope.schemaversion, data });
          }),
        ],
      },
      {
        registry: new EventRegistry([OrderPlaced], {
          defaultSchemaVersions: { 'order.placed': 2 },
        }),
      },
    );
    const foreign = (id: string, data: unknown, extra: Record<string, string> = {}) => ({
      message: {
        headers: { id, source: '//foreign', type: 'order.placed', specversion: '1.0', ...extra },
        body: new TextEncoder().encode(JSON.stringify(data)),
      },
      attempt: 1,
      origin: { transport: 'test', topic: 'orders', group: 'billing' },
    });
    const results = [
      await pipeline.process(foreign('a', { orderId: 'o-a', currency: 'USD' })),
      await pipeline.process(
        foreign('b', { orderId: 'o-b' }, { dataschema: 'https://s.example.com/order.placed/v1' }),
      ),
    ];
    expect(results.map((r) => r.kind)).toEqual(['ack', 'ack']);
    expect(seen).toEqual([
      { id: 'a', wire: 2, data: { orderId: 'o-a', currency: 'USD' } },
      { id: 'b', wire: 1, data: { orderId: 'o-b', currency: 'EUR' } },
    ]);
  });
});
