/**
 * Reference table: the checker's verdicts against other registries' published rules.
 *
 * Confluent Schema Registry, JSON Schema: the cases of
 * confluentinc/schema-registry json-schema-provider/src/test/resources/diff-schema-examples.json
 * (each has `original_schema`, `update_schema` and `compatible`, meaning that a reader on the
 * update accepts data written with the original: BACKWARD). Only cases built from keywords zod
 * emits are listed (not `not`, `patternProperties`, `dependencies`), quoted by their description.
 *
 * Avro, plain records: the "Schema Resolution" rules of the Avro specification
 * (https://avro.apache.org/docs/1.11.1/specification/#schema-resolution), expressed with zod
 * objects: a reader field missing from the writer needs a default, a writer field missing from
 * the reader is ignored, int promotes to double, an enum symbol unknown to the reader fails.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readerAcceptsWriter, type JsonSchema } from './jsonSchemaCompat.js';

const CONFLUENT = 'Confluent diff-schema-examples.json';

/** [source, case, original (writer), update (reader), compatible] */
const confluentCases: [string, string, JsonSchema, JsonSchema, boolean][] = [
  [CONFLUENT, 'Anything can change to empty schema', { properties: {} }, {}, true],
  [CONFLUENT, 'Detect changes to id', { id: 'something' }, { id: 'something_else' }, true],
  [CONFLUENT, 'Detect changes to title', { title: 'something' }, { title: 'something_else' }, true],
  [CONFLUENT, 'Detect changes to description', { description: 'a' }, { description: 'b' }, true],
  [CONFLUENT, 'Detect changes to simple schema type', { type: 'object' }, { type: 'array' }, false],
  [
    CONFLUENT,
    'Detect increased minLength string schema',
    { type: 'string', minLength: 10 },
    { type: 'string', minLength: 11 },
    false,
  ],
  [
    CONFLUENT,
    'Detect decreased minLength string schema',
    { type: 'string', minLength: 11 },
    { type: 'string', minLength: 10 },
    true,
  ],
  [
    CONFLUENT,
    'Detect increased maxLength string schema',
    { type: 'string', maxLength: 10 },
    { type: 'string', maxLength: 12 },
    true,
  ],
  [
    CONFLUENT,
    'Detect decreased maxLength string schema',
    { type: 'string', maxLength: 12 },
    { type: 'string', maxLength: 10 },
    false,
  ],
  [
    CONFLUENT,
    'Detect removed pattern from string schema',
    { type: 'string', pattern: 'uuid' },
    { type: 'string' },
    true,
  ],
  [
    CONFLUENT,
    'Detect changes to pattern string schema',
    { type: 'string', pattern: 'date-time' },
    { type: 'string', pattern: 'uuid' },
    false,
  ],
  [
    CONFLUENT,
    'Detect changes to pattern',
    { type: 'string', pattern: 'date-time' },
    { type: 'string', pattern: 'date-time' },
    true,
  ],
  [
    CONFLUENT,
    'Detect removed maximum number schema',
    { type: 'number', maximum: 10 },
    { type: 'number' },
    true,
  ],
  [
    CONFLUENT,
    'Detect increased maximum number schema',
    { type: 'number', maximum: 10 },
    { type: 'number', maximum: 11 },
    true,
  ],
  [
    CONFLUENT,
    'Detect decreased maximum number schema',
    { type: 'number', maximum: 11 },
    { type: 'number', maximum: 10 },
    false,
  ],
  [
    CONFLUENT,
    'Detect removed minimum number schema',
    { type: 'number', minimum: 10 },
    { type: 'number' },
    true,
  ],
  [
    CONFLUENT,
    'Detect increased minimum number schema',
    { type: 'number', minimum: 10 },
    { type: 'number', minimum: 11 },
    false,
  ],
  [
    CONFLUENT,
    'Detect decreased minimum number schema',
    { type: 'number', minimum: 11 },
    { type: 'number', minimum: 10 },
    true,
  ],
  [
    CONFLUENT,
    'Detect removed multipleOf number schema',
    { type: 'number', multipleOf: 10 },
    { type: 'number' },
    true,
  ],
  [
    CONFLUENT,
    'Detect reduced multipleOf number schema',
    { type: 'number', multipleOf: 10 },
    { type: 'number', multipleOf: 2 },
    true,
  ],
  [
    CONFLUENT,
    'Detect changes to multipleOf number schema',
    { type: 'number', multipleOf: 10 },
    { type: 'number', multipleOf: 11 },
    false,
  ],
  [
    CONFLUENT,
    'Detect narrowed change to number schema',
    { type: 'number' },
    { type: 'integer' },
    false,
  ],
  [
    CONFLUENT,
    'Detect extended change to number schema',
    { type: 'integer' },
    { type: 'number' },
    true,
  ],
  [CONFLUENT, 'Detect removed enum', { type: 'string', enum: ['red'] }, { type: 'string' }, true],
  [
    CONFLUENT,
    'Detect changes to type array',
    { type: ['object'] },
    { type: ['object', 'array'] },
    true,
  ],
  [
    CONFLUENT,
    'Detect changes to sub schemas',
    { oneOf: [{ type: 'string' }] },
    { oneOf: [{ type: 'number' }] },
    false,
  ],
  [
    CONFLUENT,
    'Detect changes to number of sub schemas',
    { oneOf: [{ type: 'string' }] },
    { oneOf: [{ type: 'number' }, { type: 'string' }] },
    true,
  ],
  [
    CONFLUENT,
    'Detect changes to remove properties',
    { properties: { foo: { type: 'string' } } },
    { properties: { bar: { type: 'string' } } },
    false,
  ],
  [
    CONFLUENT,
    'Detect change type of properties',
    { properties: { foo: { type: 'string' } } },
    { properties: { foo: { type: 'number' } } },
    false,
  ],
  [
    CONFLUENT,
    'Detect optional property added to closed content model',
    { properties: { foo: { type: 'string' } }, additionalProperties: false },
    {
      properties: { foo: { type: 'string' }, bar: { type: 'number' } },
      additionalProperties: false,
    },
    true,
  ],
  [
    CONFLUENT,
    'Detect property added to partially open content model 2',
    { properties: { foo: { type: 'string' } }, additionalProperties: { type: 'string' } },
    {
      properties: { foo: { type: 'string' }, bar: { type: 'string' } },
      additionalProperties: { type: 'string' },
    },
    true,
  ],
  [
    CONFLUENT,
    'Detect property added to partially open content model 3',
    { properties: { foo: { type: 'string' } }, additionalProperties: { type: 'string' } },
    {
      properties: { foo: { type: 'string' }, bar: { type: 'number' } },
      additionalProperties: { type: 'string' },
    },
    false,
  ],
  [
    CONFLUENT,
    'Detect property added to partially open content model 4',
    { properties: { foo: { type: 'string' } }, additionalProperties: { type: 'string' } },
    {
      properties: { foo: { type: 'string' }, bar: { type: 'string' } },
      required: ['bar'],
      additionalProperties: { type: 'string' },
    },
    false,
  ],
  [
    CONFLUENT,
    'Detect property removed from partially open content model 2',
    {
      properties: { foo: { type: 'string' }, bar: { type: 'string' } },
      additionalProperties: false,
    },
    { properties: { foo: { type: 'string' } }, additionalProperties: { type: 'string' } },
    true,
  ],
  [
    CONFLUENT,
    'Detect property removed from partially open content model 3',
    {
      properties: { foo: { type: 'string' }, bar: { type: 'number' } },
      additionalProperties: false,
    },
    { properties: { foo: { type: 'string' } }, additionalProperties: { type: 'string' } },
    false,
  ],
];

const AVRO = 'Avro specification, Schema Resolution (records, enums, promotion)';
const Order = z.object({ id: z.string(), total: z.number() });

/** [source, rule, writer, reader, compatible] */
const avroCases: [string, string, z.ZodType, z.ZodType, boolean][] = [
  [AVRO, 'same record', Order, Order, true],
  [
    AVRO,
    'reader field missing from the writer, with a default: the default is used',
    Order,
    Order.extend({ currency: z.string().default('EUR') }),
    true,
  ],
  [
    AVRO,
    'reader field missing from the writer, no default: error',
    Order,
    Order.extend({ currency: z.string() }),
    false,
  ],
  [
    AVRO,
    'writer field missing from the reader: ignored',
    Order.extend({ note: z.string() }),
    Order,
    true,
  ],
  [AVRO, 'int is promoted to double', z.object({ n: z.int() }), z.object({ n: z.number() }), true],
  [
    AVRO,
    'double is not promoted to int',
    z.object({ n: z.number() }),
    z.object({ n: z.int() }),
    false,
  ],
  [
    AVRO,
    'enum: a writer symbol the reader lacks is an error',
    z.object({ s: z.enum(['a', 'b', 'c']) }),
    z.object({ s: z.enum(['a', 'b']) }),
    false,
  ],
  [
    AVRO,
    'enum: a reader with more symbols reads the writer',
    z.object({ s: z.enum(['a', 'b']) }),
    z.object({ s: z.enum(['a', 'b', 'c']) }),
    true,
  ],
  [
    AVRO,
    'field types that do not match: error',
    z.object({ id: z.string() }),
    z.object({ id: z.boolean() }),
    false,
  ],
  [
    AVRO,
    'union reader: the first branch that matches the writer is used',
    z.object({ id: z.string() }),
    z.object({ id: z.union([z.null(), z.string()]) }),
    true,
  ],
];

describe('reference table: Confluent JSON Schema (reader = update, writer = original)', () => {
  it.each(confluentCases)('%s: %s', (_source, _case, original, update, compatible) => {
    const problems = readerAcceptsWriter(update, original);
    expect(problems.length === 0, JSON.stringify(problems)).toBe(compatible);
  });
});

describe('reference table: Avro schema resolution for plain records', () => {
  it.each(avroCases)('%s: %s', (_source, _rule, writer, reader, compatible) => {
    const problems = readerAcceptsWriter(
      z.toJSONSchema(reader, { io: 'input' }),
      z.toJSONSchema(writer, { io: 'output' }),
    );
    expect(problems.length === 0, JSON.stringify(problems)).toBe(compatible);
  });

  it('covers the cases the table claims', () => {
    expect(confluentCases.length + avroCases.length).toBe(45);
  });
});
