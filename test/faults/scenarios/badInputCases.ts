/**
 * Bad input for scenario 5, hand-picked and generated with fast-check. Every case is bad BY
 * CONSTRUCTION (the generators never rely on the library under test to decide what is bad), so
 * each one must be dead-lettered and none may reach a handler.
 *
 * A case is transport-neutral: CloudEvents attributes with values of ANY type (a broken producer
 * sends numbers, tables, arrays, duplicates) plus a body. The scenario maps it to Kafka headers
 * (`ce_*`, `content-type`; a non-string value is sent as its string form, an array as repeated
 * headers) and to AMQP headers (`cloudEvents_*` with real AMQP types: numbers, booleans, tables,
 * arrays, byte arrays).
 */
import fc from 'fast-check';
import { CONSUMER_DEAD_LETTER_CODES } from '@backtrack/core';
import { FAULT_SOURCE, FaultOrderPlaced } from '../support/events.js';

export const CODES = {
  malformed: 'BT_ERR_MALFORMED_MESSAGE',
  unknownVersion: 'BT_ERR_SCHEMA_VERSION_UNKNOWN',
  validation: 'BT_ERR_SCHEMA_VALIDATION',
  unhandled: CONSUMER_DEAD_LETTER_CODES.UNHANDLED,
} as const;
const ANY_BAD: readonly string[] = Object.values(CODES);

export interface BadCase {
  /** Unique per case: the Kafka key, or the AMQP `x-fault-case` header. */
  id: string;
  family: string;
  /** CloudEvents attributes by name (`content-type` included); undefined = absent. */
  attributes: Record<string, unknown>;
  /** null = a Kafka tombstone (AMQP sends an empty body). */
  body: Buffer | null;
  /** Acceptable dead-letter codes. */
  expect: readonly string[];
  /** Only meaningful on one transport. */
  only?: 'kafka' | 'amqp';
}

/** A schema-valid v2 body. */
export const VALID_DATA = { orderId: 'o-1', amountCents: 100, currency: 'EUR' };
const validBody = () => Buffer.from(JSON.stringify(VALID_DATA));

export function goodAttributes(id: string): Record<string, unknown> {
  return {
    id,
    source: FAULT_SOURCE,
    type: FaultOrderPlaced.type,
    specversion: '1.0',
    time: new Date().toISOString(),
    schemaversion: '2',
    'content-type': 'application/json',
  };
}

/** Limit the consumer is configured with in scenario 5. */
export const MAX_BYTES = 64 * 1024;

export function handPickedCases(prefix: string): BadCase[] {
  let n = 0;
  const c = (
    family: string,
    patch: Partial<BadCase> & { attrs?: Record<string, unknown> },
  ): BadCase => {
    const id = `${prefix}-h${n++}`;
    return {
      id,
      family,
      attributes: { ...goodAttributes(id), ...patch.attrs },
      body: patch.body === undefined ? validBody() : patch.body,
      expect: patch.expect ?? [CODES.malformed],
      ...(patch.only ? { only: patch.only } : {}),
    };
  };
  const huge = Buffer.from(JSON.stringify({ ...VALID_DATA, orderId: 'x'.repeat(MAX_BYTES * 3) }));
  return [
    c('empty body', { body: Buffer.alloc(0) }),
    c('truncated JSON', { body: Buffer.from('{"orderId": "o-') }),
    c('binary garbage', { body: Buffer.from([0xff, 0x00, 0x13, 0xfe, 0x80]) }),
    c('invalid UTF-8 in a string', {
      body: Buffer.concat([
        Buffer.from('{"orderId":"'),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"}'),
      ]),
    }),
    c('huge payload over the limit', { body: huge }),
    c('content type XML', {
      attrs: { 'content-type': 'application/xml' },
      body: Buffer.from('<order id="1"/>'),
    }),
    c('content type JSON latin1', {
      attrs: { 'content-type': 'application/json; charset=latin1' },
    }),
    c('no headers at all', {
      attrs: Object.fromEntries(Object.keys(goodAttributes('x')).map((k) => [k, undefined])),
    }),
    c('missing id', { attrs: { id: undefined } }),
    c('empty type', { attrs: { type: '' } }),
    c('specversion 0.3', { attrs: { specversion: '0.3' } }),
    c('time not RFC 3339', { attrs: { time: 'yesterday at noon' } }),
    c('schemaversion word', { attrs: { schemaversion: 'two' } }),
    c('schemaversion zero', { attrs: { schemaversion: '0' } }),
    c('schemaversion negative', { attrs: { schemaversion: '-1' } }),
    c('schemaversion fraction', { attrs: { schemaversion: '1.5' } }),
    c('unknown type', { attrs: { type: 'fault.order.exploded' }, expect: [CODES.unhandled] }),
    c('unknown version', { attrs: { schemaversion: '7' }, expect: [CODES.unknownVersion] }),
    c('schema-invalid data', {
      body: Buffer.from('{"orderId":"o","amountCents":"lots","currency":"EUR"}'),
      expect: [CODES.validation],
    }),
    c('data is an array', { body: Buffer.from('[1,2,3]'), expect: [CODES.validation] }),
    c('data is null', { body: Buffer.from('null'), expect: [CODES.validation] }),
    c('__proto__ key', {
      body: Buffer.from(
        '{"orderId":"o","amountCents":1,"currency":"EUR","__proto__":{"isAdmin":true}}',
      ),
    }),
    c('constructor.prototype key', {
      body: Buffer.from(
        '{"orderId":"o","amountCents":1,"currency":"EUR","constructor":{"prototype":{"isAdmin":true}}}',
      ),
    }),
    c('nested __proto__', {
      body: Buffer.from(
        '{"orderId":"o","amountCents":1,"currency":"EUR","meta":{"a":[{"__proto__":{"x":1}}]}}',
      ),
    }),
    c('__proto__ spelled with \\u escapes', {
      body: Buffer.from(
        '{"orderId":"o","amountCents":1,"currency":"EUR","\\u005f_proto__":{"x":1}}',
      ),
    }),
    c('JSON with a BOM and trailing garbage', {
      body: Buffer.from('\ufeff{"orderId":"o"} trailing'),
    }),
    c('tombstone (null value)', { body: null, only: 'kafka' }),
    c('repeated schemaversion header, last one bad', {
      attrs: { schemaversion: ['2', 'x'] },
      only: 'kafka',
    }),
    c('schemaversion as an AMQP boolean', { attrs: { schemaversion: true }, only: 'amqp' }),
    c('specversion as an AMQP number', { attrs: { specversion: 1.0 }, only: 'amqp' }),
    c('type as an AMQP table', { attrs: { type: { name: 'fault.order.placed' } }, only: 'amqp' }),
    c('time as an AMQP array', { attrs: { time: [new Date().toISOString()] }, only: 'amqp' }),
    c('id as an AMQP table', { attrs: { id: { nested: 'id' } }, only: 'amqp' }),
  ];
}

const notRfc3339 = fc.string().filter((s) => !/^\d{4}-\d{2}-\d{2}T/.test(s));
const notJsonType = fc.string({ maxLength: 40 }).filter((s) => !/json/i.test(s));
const notSpec = fc.string().filter((s) => s !== '1.0');
const notType = fc.string().filter((s) => s !== FaultOrderPlaced.type);
/** Anything but the two versions the consumer reads ('1' and '2'): malformed or unknown. */
const notVersion = fc.string().filter((s) => s !== '1' && s !== '2');

/** Typed (non-string) values whose string form is bad for the attribute, for AMQP headers. */
const typedBad = fc.oneof(
  fc.boolean(),
  // Not the key "!": amqplib reads a table holding it as a typed value ({ '!': type, value })
  // and throws before publishing (FAULT_SEED=5039 drew { '': 'pjS`', '!': '' }).
  fc.dictionary(
    fc.string({ maxLength: 5 }).filter((key) => key !== '!'),
    fc.string({ maxLength: 5 }),
    { maxKeys: 3 },
  ),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
);

type Mutation = { attrs: Record<string, unknown>; body?: Buffer; only?: 'kafka' | 'amqp' };

const bodyMutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Random bytes: never a v2 order (at best some other JSON, which fails the schema).
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ attrs: {}, body: Buffer.from(b) })),
  // A valid body cut short anywhere.
  fc.nat().map((k) => {
    const full = validBody();
    return { attrs: {}, body: full.subarray(0, k % full.length) };
  }),
  // Any JSON value that is not a valid v2 order (checked with the event's own zod schema).
  fc
    .jsonValue()
    .filter((v) => !FaultOrderPlaced.schema(2).safeParse(v).success)
    .map((v) => ({ attrs: {}, body: Buffer.from(JSON.stringify(v) ?? 'null') })),
  // A prototype-pollution key somewhere in otherwise valid data.
  fc
    .tuple(
      fc.constantFrom('__proto__', 'constructor', 'prototype'),
      fc.nat({ max: 3 }),
      fc.jsonValue({ maxDepth: 1 }),
    )
    .map(([key, depth, value]) => {
      let inner = `{${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}}`;
      for (let i = 0; i < depth; i++) inner = `{"n${i}":${inner}}`;
      return {
        attrs: {},
        body: Buffer.from(`{"orderId":"o","amountCents":1,"currency":"EUR","meta":${inner}}`),
      };
    }),
);

const headerMutation: fc.Arbitrary<Mutation> = fc.oneof(
  notSpec.map((v) => ({ attrs: { specversion: v } })),
  notType.map((v) => ({ attrs: { type: v } })),
  notVersion.map((v) => ({ attrs: { schemaversion: v } })),
  notRfc3339.map((v) => ({ attrs: { time: v } })),
  notJsonType.map((v) => ({ attrs: { 'content-type': v } })),
  fc
    .constantFrom('id', 'source', 'type', 'specversion', 'time', 'schemaversion')
    .map((k) => ({ attrs: { [k]: '' } })),
  fc
    .tuple(fc.constantFrom('specversion', 'type', 'time', 'schemaversion'), typedBad)
    .map(([k, v]) => ({ attrs: { [k]: v }, only: 'amqp' as const })),
);

/** `count` generated cases, reproducible from `seed`. */
export function generatedCases(prefix: string, count: number, seed: number): BadCase[] {
  const mutations = fc.sample(fc.oneof(bodyMutation, headerMutation), { numRuns: count, seed });
  return mutations.map((m, i) => {
    const id = `${prefix}-g${i}`;
    return {
      id,
      family: 'generated',
      attributes: { ...goodAttributes(id), ...m.attrs },
      body: m.body ?? validBody(),
      expect: ANY_BAD,
      ...(m.only ? { only: m.only } : {}),
    };
  });
}
