import { describe, expect, it } from 'vitest';
import { z } from 'zod';
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
});
