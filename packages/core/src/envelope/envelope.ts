import { randomUUID } from 'node:crypto';
import { InvalidEnvelopeError } from './errors.js';
import type { Envelope } from './types.js';

/** The CloudEvents spec version every Backtrack envelope carries. */
export const SPEC_VERSION = '1.0' as const;

/** The media type Backtrack writes for `data`. */
export const JSON_CONTENT_TYPE = 'application/json' as const;

/**
 * The Backtrack extension attributes (CloudEvents extension names: lower-case alphanumerics).
 * Everything but `schemaversion` is optional.
 */
export type EnvelopeExtensions = Partial<
  Pick<
    Envelope,
    | 'sagaid'
    | 'causationid'
    | 'correlationid'
    | 'producerservice'
    | 'producerversion'
    | 'partitionkey'
  >
>;

/** What `createEnvelope` needs; `id`, `time` and `datacontenttype` are filled in when absent. */
export interface CreateEnvelopeInput<TData> extends EnvelopeExtensions {
  type: string;
  source: string;
  /** Schema version of `data` (a positive integer). */
  schemaversion: number;
  data: TData;
  /** @default crypto.randomUUID() */
  id?: string;
  /** RFC 3339 string or a Date. @default now */
  time?: string | Date;
  /** @default 'application/json' */
  datacontenttype?: string;
}

/** Injectable collaborators for tests (deterministic ids and time). */
export interface CreateEnvelopeDependencies {
  /** @default () => crypto.randomUUID() */
  generateId?: () => string;
  /** @default () => new Date() */
  now?: () => Date;
}

const EXTENSION_NAMES = [
  'sagaid',
  'causationid',
  'correlationid',
  'producerservice',
  'producerversion',
  'partitionkey',
] as const satisfies readonly (keyof EnvelopeExtensions)[];

/**
 * Builds an {@link Envelope}: a fresh UUID id and the current time unless given, `specversion`
 * 1.0, JSON content type. Extension attributes that are `undefined` are left out, so
 * `encodeEnvelope(createEnvelope(x))` writes no empty headers.
 *
 * @throws {InvalidEnvelopeError} on an empty type/source/id, a bad time or a non-positive-integer
 *   schemaversion.
 * @example
 * const envelope = createEnvelope({
 *   type: 'order.placed', source: '//shop/orders', schemaversion: 2,
 *   data: { orderId: 'o-1', amountCents: 1250, currency: 'EUR' },
 *   sagaid: 'saga-42', producerservice: 'orders', producerversion: '2.4.0',
 * });
 */
export function createEnvelope<TData>(
  input: CreateEnvelopeInput<TData>,
  dependencies: CreateEnvelopeDependencies = {},
): Envelope<TData> {
  const id = input.id ?? (dependencies.generateId ?? randomUUID)();
  const time =
    input.time instanceof Date
      ? input.time.toISOString()
      : (input.time ?? (dependencies.now?.() ?? new Date()).toISOString());
  const envelope: Envelope<TData> = {
    id,
    source: input.source,
    type: input.type,
    specversion: SPEC_VERSION,
    time,
    datacontenttype: input.datacontenttype ?? JSON_CONTENT_TYPE,
    schemaversion: input.schemaversion,
    data: input.data,
  };
  for (const name of EXTENSION_NAMES) {
    const value = input[name];
    if (value !== undefined) envelope[name] = value;
  }
  assertValidEnvelope(envelope);
  return envelope;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** True when `value` is an RFC 3339 timestamp (the form CloudEvents requires for `time`). */
export function isRfc3339(value: string): boolean {
  return RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** True when `value` is a schema version: a positive safe integer. */
export function isSchemaVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/**
 * Checks the attributes of an envelope a producer built by hand.
 * @throws {InvalidEnvelopeError} naming the first bad attribute.
 */
export function assertValidEnvelope(envelope: Envelope<unknown>): void {
  const fail = (attribute: string, problem: string): never => {
    throw new InvalidEnvelopeError(`envelope attribute "${attribute}" ${problem}`, {
      details: { attribute, id: envelope.id, type: envelope.type },
    });
  };
  for (const name of ['id', 'source', 'type'] as const) {
    if (typeof envelope[name] !== 'string' || envelope[name].length === 0) {
      fail(name, 'must be a non-empty string');
    }
  }
  if (envelope.specversion !== SPEC_VERSION) fail('specversion', `must be "${SPEC_VERSION}"`);
  if (typeof envelope.time !== 'string' || !isRfc3339(envelope.time)) {
    fail('time', 'must be an RFC 3339 timestamp');
  }
  if (!isSchemaVersion(envelope.schemaversion)) {
    fail('schemaversion', 'must be a positive integer');
  }
  if (typeof envelope.datacontenttype !== 'string' || envelope.datacontenttype.length === 0) {
    fail('datacontenttype', 'must be a non-empty string');
  }
  for (const name of EXTENSION_NAMES) {
    const value = envelope[name];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      fail(name, 'must be a non-empty string when present');
    }
  }
}
