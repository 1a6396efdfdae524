import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineEvent, type EventDefinition } from '../schema/defineEvent.js';
import {
  createEnvelope,
  isExtensionName,
  isExtensionValue,
  isRfc3339,
  isSchemaVersion,
  KNOWN_ATTRIBUTES,
  type CreateEnvelopeDependencies,
  type CreateEnvelopeInput,
} from './envelope.js';
import { InvalidEnvelopeError } from './errors.js';
import type { Envelope } from './types.js';

// ---- the builder as it was before session 7 (reference semantics, copied verbatim) ----------

const EXTENSION_NAMES = [
  'sagaid',
  'causationid',
  'correlationid',
  'producerservice',
  'producerversion',
  'partitionkey',
] as const;
const REQUIRED = ['id', 'source', 'type'] as const;
const OPTIONAL = ['subject', 'dataschema', ...EXTENSION_NAMES] as const;

function referenceAssert(envelope: Envelope<unknown>): void {
  const invalid = (attribute: string, problem: string): never => {
    throw new InvalidEnvelopeError(`envelope attribute "${attribute}" ${problem}`, {
      details: { attribute, id: envelope.id, type: envelope.type },
    });
  };
  for (const name of REQUIRED) {
    const value = envelope[name];
    if (typeof value !== 'string' || value.length === 0)
      invalid(name, 'must be a non-empty string');
  }
  if (envelope.specversion !== '1.0') invalid('specversion', 'must be "1.0"');
  if (
    envelope.time !== undefined &&
    (typeof envelope.time !== 'string' || !isRfc3339(envelope.time))
  ) {
    invalid('time', 'must be an RFC 3339 timestamp when present');
  }
  if (!isSchemaVersion(envelope.schemaversion))
    invalid('schemaversion', 'must be a positive integer');
  if (typeof envelope.datacontenttype !== 'string' || envelope.datacontenttype.length === 0) {
    invalid('datacontenttype', 'must be a non-empty string');
  }
  for (const name of OPTIONAL) {
    const value = envelope[name];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      invalid(name, 'must be a non-empty string when present');
    }
  }
  const extensions = envelope.extensions;
  if (extensions !== undefined) {
    if (typeof extensions !== 'object' || extensions === null || Array.isArray(extensions)) {
      invalid('extensions', 'must be an object when present');
    }
    for (const [name, value] of Object.entries(extensions)) {
      if (!isExtensionName(name)) {
        invalid(
          `extensions.${name}`,
          KNOWN_ATTRIBUTES.has(name)
            ? 'is an attribute Backtrack knows: set it on the envelope itself'
            : 'is not a CloudEvents attribute name (lower-case letters and digits)',
        );
      }
      if (!isExtensionValue(value)) {
        invalid(`extensions.${name}`, 'must be a non-empty string, a boolean or a safe integer');
      }
    }
  }
}

function referenceCreate<TData>(
  input: CreateEnvelopeInput<TData>,
  dependencies: CreateEnvelopeDependencies = {},
): Envelope<TData> {
  const id = input.id ?? (dependencies.generateId ?? (() => 'random'))();
  const time =
    input.time instanceof Date
      ? input.time.toISOString()
      : (input.time ?? (dependencies.now?.() ?? new Date()).toISOString());
  const envelope: Envelope<TData> = {
    id,
    source: input.source,
    type: input.type,
    specversion: '1.0',
    time,
    datacontenttype: input.datacontenttype ?? 'application/json',
    schemaversion: input.schemaversion,
    data: input.data,
  };
  if (input.subject !== undefined) envelope.subject = input.subject;
  if (input.dataschema !== undefined) envelope.dataschema = input.dataschema;
  for (const name of EXTENSION_NAMES) {
    const value = input[name];
    if (value !== undefined) envelope[name] = value;
  }
  if (input.extensions !== undefined && Object.keys(input.extensions).length > 0) {
    envelope.extensions = { ...input.extensions };
  }
  referenceAssert(envelope);
  return envelope;
}

/** `EventDefinition.envelope` as it was: rest of the options spread after type and data. */
function referenceEventEnvelope(
  event: EventDefinition,
  data: unknown,
  options: Record<string, unknown>,
  dependencies: CreateEnvelopeDependencies,
): Envelope<unknown> {
  const { version = event.latest, source, id, time, ...extensions } = options;
  const valid = event.parse(version as number, data);
  return referenceCreate(
    {
      type: event.type,
      source,
      schemaversion: version,
      data: valid,
      id,
      time,
      ...extensions,
    } as never,
    dependencies,
  );
}

// ---- comparison -----------------------------------------------------------------------------

type Outcome =
  | { ok: string; value: unknown }
  | { error: string; message: string; code?: unknown; details?: unknown };

/** The result with its key order (JSON text) or the error's class, message, code and details. */
function outcome(run: () => unknown): Outcome {
  try {
    const value = run();
    return { ok: JSON.stringify(value), value };
  } catch (error) {
    const e = error as Error & { code?: unknown; details?: unknown };
    return { error: e.constructor.name, message: e.message, code: e.code, details: e.details };
  }
}

// ---- inputs ---------------------------------------------------------------------------------

const ABSENT = Symbol('absent');
/** Milliseconds few enough that consecutive envelopes share one (the builder's time text cache). */
const MS = [0, 1_764_000_000_000, 1_764_000_000_001, 253_402_300_799_999, 253_402_300_800_000];

class ShiftedDate extends Date {
  override toISOString(): string {
    return 'not-a-time';
  }
}

const attribute = fc.oneof(
  { weight: 4, arbitrary: fc.constant(ABSENT) },
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) },
  fc.constant(undefined),
  fc.constant(''),
  fc.constant(null),
  fc.integer(),
);
const time = fc.oneof(
  { weight: 3, arbitrary: fc.constant(ABSENT) },
  { weight: 4, arbitrary: fc.constantFrom(...MS).map((ms) => new Date(ms)) },
  fc.constant(undefined),
  fc.constant(null),
  fc.constant(new Date(Number.NaN)),
  fc.constantFrom(...MS).map((ms) => new ShiftedDate(ms)),
  fc.constantFrom(...MS).map((ms) => new Date(ms).toISOString()),
  fc.constantFrom('2026-02-29T00:00:00Z', '2026-11-28T10:00:00+01:00', '', 'yesterday', 7),
);
const extensions = fc.oneof(
  { weight: 3, arbitrary: fc.constant(ABSENT) },
  fc.constant(undefined),
  fc.constant({}),
  fc.dictionary(
    fc.constantFrom('tenantid', 'traceparent', 'Bad', 'sagaid', 'a-b', '0'),
    fc.oneof(fc.string({ maxLength: 4 }), fc.boolean(), fc.integer(), fc.constant(1.5)),
    { maxKeys: 3 },
  ),
  fc.constantFrom('ab', ['x'], 5),
);
const fieldNames = ['id', 'subject', 'dataschema', 'datacontenttype', ...EXTENSION_NAMES] as const;
const fields = fc.record({
  ...Object.fromEntries(fieldNames.map((name) => [name, attribute])),
  time,
  extensions,
}) as fc.Arbitrary<Record<string, unknown>>;

/** The object without its ABSENT members (an absent key, unlike a key holding undefined). */
function present(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== ABSENT));
}

const dependencies = fc.constantFrom<CreateEnvelopeDependencies>(
  { generateId: () => 'generated', now: () => new Date(MS[1]!) },
  { generateId: () => 'generated', now: () => new Date(MS[2]!) },
  { generateId: () => '', now: () => new ShiftedDate(MS[1]!) },
);

const Event = defineEvent('test.event')
  .version(1, z.object({ n: z.number() }))
  .version(2, z.object({ n: z.number(), unit: z.string().default('each') }));

describe('envelope builder (properties: same output and errors as the builder before session 7)', () => {
  it('createEnvelope', () => {
    const input = fc.record({
      fields,
      type: attribute,
      source: attribute,
      schemaversion: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.constant(1.5)),
      data: fc.jsonValue({ maxDepth: 2 }),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(input, dependencies), { maxLength: 6 }), (calls) => {
        // Several calls in a row: what one leaves cached must not change the next one's result.
        for (const [{ fields: f, ...rest }, deps] of calls) {
          const envelopeInput = present({
            ...rest,
            ...f,
          }) as unknown as CreateEnvelopeInput<unknown>;
          expect(outcome(() => createEnvelope(envelopeInput, deps))).toStrictEqual(
            outcome(() => referenceCreate(envelopeInput, deps)),
          );
        }
      }),
      { numRuns: 500 },
    );
  }, 60_000);

  it('EventDefinition.envelope, including untyped options that override type, version or data', () => {
    const extra = fc.record({
      type: fc.oneof(
        fc.constant(ABSENT),
        fc.constant(ABSENT),
        fc.constant('other.type'),
        fc.constant(undefined),
      ),
      schemaversion: fc.oneof(
        fc.constant(ABSENT),
        fc.constant(ABSENT),
        fc.constant(7),
        fc.constant(undefined),
      ),
      data: fc.oneof(fc.constant(ABSENT), fc.constant(ABSENT), fc.constant({ raw: true })),
      foo: fc.oneof(fc.constant(ABSENT), fc.constant('bar')),
    });
    const prototype = fc.constantFrom<object | null>(Object.prototype, Object.prototype, null, {
      sagaid: 'inherited',
      type: 'inherited.type',
      source: '//inherited',
    });
    const options = fc.record({
      fields,
      extra,
      prototype,
      source: attribute,
      version: fc.oneof(
        fc.constant(ABSENT),
        fc.constant(undefined),
        fc.constantFrom(1, 2, 3, null),
      ),
    });
    const data = fc.oneof(
      fc.record({ n: fc.integer() }),
      fc.record({ n: fc.integer(), unit: fc.string({ maxLength: 3 }) }),
      fc.constant({ n: 'not a number' }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(options, data, dependencies), { maxLength: 5 }), (calls) => {
        for (const [{ fields: f, extra: x, prototype: proto, ...rest }, d, deps] of calls) {
          const make = (): Record<string, unknown> =>
            Object.assign(Object.create(proto) as object, present({ ...rest, ...f, ...x }));
          expect(outcome(() => Event.envelope(d as never, make() as never, deps))).toStrictEqual(
            outcome(() => referenceEventEnvelope(Event as never, d, make(), deps)),
          );
        }
      }),
      { numRuns: 500 },
    );
  }, 60_000);
});
