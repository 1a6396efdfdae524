import { randomUUID } from 'node:crypto';
import { InvalidEnvelopeError } from './errors.js';
import type { Envelope, ExtensionValue } from './types.js';

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
  /** CloudEvents `subject`. */
  subject?: string;
  /** CloudEvents `dataschema` (a URI). */
  dataschema?: string;
  /** Other extension attributes, by CloudEvents name (lower-case letters and digits). */
  extensions?: Record<string, ExtensionValue>;
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
): Envelope<TData> & { time: string } {
  return buildEnvelope(
    input.type,
    input.source,
    input.schemaversion,
    input.data,
    input,
    dependencies,
  );
}

/**
 * What {@link buildEnvelope} reads besides type, source, schema version and data: the optional
 * inputs of {@link createEnvelope} (`EventDefinition.envelope` passes its options object as they
 * are, without copying them).
 */
export type EnvelopeFields = Omit<
  CreateEnvelopeInput<unknown>,
  'type' | 'source' | 'schemaversion' | 'data'
>;

/**
 * {@link createEnvelope} with the type, source, schema version and data given apart from the
 * other inputs (`fields`, which may carry other keys: they are not read). Internal: the one
 * builder behind `createEnvelope` and `EventDefinition.envelope`.
 *
 * @throws {InvalidEnvelopeError} as {@link createEnvelope}.
 */
export function buildEnvelope<TData>(
  type: string,
  source: string,
  schemaversion: number,
  data: TData,
  fields: EnvelopeFields,
  dependencies: CreateEnvelopeDependencies = {},
): Envelope<TData> & { time: string } {
  const id = fields.id ?? (dependencies.generateId ?? randomUUID)();
  const givenTime = fields.time;
  const time =
    givenTime instanceof Date
      ? isoText(givenTime)
      : (givenTime ?? isoText(dependencies.now?.() ?? new Date()));
  const envelope: Envelope<TData> = {
    id,
    source,
    type,
    specversion: SPEC_VERSION,
    time,
    datacontenttype: fields.datacontenttype ?? JSON_CONTENT_TYPE,
    schemaversion,
    data,
  };
  // subject, dataschema, then EXTENSION_NAMES: the order envelopes have always had their keys in.
  const { subject, dataschema, sagaid, causationid, correlationid } = fields;
  const { producerservice, producerversion, partitionkey, extensions } = fields;
  if (subject !== undefined) envelope.subject = subject;
  if (dataschema !== undefined) envelope.dataschema = dataschema;
  if (sagaid !== undefined) envelope.sagaid = sagaid;
  if (causationid !== undefined) envelope.causationid = causationid;
  if (correlationid !== undefined) envelope.correlationid = correlationid;
  if (producerservice !== undefined) envelope.producerservice = producerservice;
  if (producerversion !== undefined) envelope.producerversion = producerversion;
  if (partitionkey !== undefined) envelope.partitionkey = partitionkey;
  if (extensions !== undefined && Object.keys(extensions).length > 0) {
    envelope.extensions = { ...extensions };
  }
  assertValidEnvelope(envelope);
  return envelope as Envelope<TData> & { time: string };
}

/** The last Date's millisecond and its `toISOString()` text (see {@link isoText}). */
let lastIsoMs = Number.NaN;
let lastIsoText = '';

/**
 * `date.toISOString()`, the text of the previous call reused within one millisecond (a publisher
 * stamps many events per millisecond; `toISOString` costs about a microsecond). A Date subclass
 * or a Date-like value that is not a Date takes its own `toISOString`. An invalid Date (NaN
 * time, never equal to the last) throws the RangeError of `toISOString`.
 */
function isoText(date: Date): string {
  if (Object.getPrototypeOf(date) !== Date.prototype) return date.toISOString();
  const ms = date.getTime();
  if (ms !== lastIsoMs) {
    lastIsoText = date.toISOString();
    lastIsoMs = ms;
  }
  return lastIsoText;
}

/** The last `time` text {@link isRfc3339Time} found valid (none yet: `''` would pass as valid). */
let lastValidTime: string | undefined;

/** {@link isRfc3339}, remembering the last valid text: the envelopes of one millisecond share it. */
function isRfc3339Time(time: string): boolean {
  if (time === lastValidTime) return true;
  if (!isRfc3339(time)) return false;
  lastValidTime = time;
  return true;
}

/**
 * The attribute names Backtrack knows by name (CloudEvents core attributes and Backtrack's own
 * extensions). Anything else with a valid name is an entry of `Envelope.extensions`.
 */
export const KNOWN_ATTRIBUTES: ReadonlySet<string> = new Set([
  'id',
  'source',
  'type',
  'specversion',
  'time',
  'datacontenttype',
  'subject',
  'dataschema',
  'schemaversion',
  ...EXTENSION_NAMES,
  // Reserved by the CloudEvents JSON format for the payload, never attributes.
  'data',
  'data_base64',
]);

/**
 * True when `name` may be the name of an extension attribute held in `Envelope.extensions`:
 * lower-case ASCII letters and digits (the CloudEvents naming rule), not a name Backtrack knows
 * ({@link KNOWN_ATTRIBUTES}), and not `constructor` or `prototype` (prototype-pollution guard).
 */
export function isExtensionName(name: string): boolean {
  return (
    // The Set first: nearly every header of a Backtrack message is a known attribute.
    !KNOWN_ATTRIBUTES.has(name) &&
    /^[a-z0-9]{1,64}$/.test(name) &&
    name !== 'constructor' &&
    name !== 'prototype'
  );
}

// `/v3`, `:v3`, `#v3` (optionally `.json`), `/versions/3` (Confluent-style registries) or a
// `version=3` query parameter, at the end of the URI.
const DATASCHEMA_VERSION =
  /(?:[/:#]v([1-9][0-9]{0,14})(?:\.json)?|\/versions\/([1-9][0-9]{0,14})|[?&;]version=([1-9][0-9]{0,14}))$/i;

/**
 * The schema version a `dataschema` URI names, or undefined when it names none. A URI names
 * version N when it ends with `/vN`, `:vN` or `#vN` (optionally followed by `.json`), with
 * `/versions/N`, or with a `version=N` query parameter.
 *
 * @example
 * schemaVersionFromDataschema('https://schemas.example.com/order.placed/v2'); // 2
 * schemaVersionFromDataschema('https://registry.example.com/subjects/orders-value/versions/3'); // 3
 * schemaVersionFromDataschema('https://schemas.example.com/order.placed.json'); // undefined
 */
export function schemaVersionFromDataschema(dataschema: string): number | undefined {
  const match = DATASCHEMA_VERSION.exec(dataschema);
  if (!match) return undefined;
  const version = Number(match[1] ?? match[2] ?? match[3]);
  return isSchemaVersion(version) ? version : undefined;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** True when `value` is an RFC 3339 timestamp (the form CloudEvents requires for `time`). */
export function isRfc3339(value: string): boolean {
  // The form nearly every producer writes (`toISOString`) is checked by its characters alone;
  // anything else (offsets, lower-case separators, days past the 28th, leap seconds) takes the
  // full test: the pattern, then whether the date exists.
  return isPlainUtcTimestamp(value) || (RFC3339.test(value) && !Number.isNaN(Date.parse(value)));
}

/**
 * `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with a month 01-12, a day that exists in that month (the 29th
 * to 31st by the month's length, leap years included), an hour 00-23, minutes and seconds 00-59:
 * a valid RFC 3339 timestamp, decided without a regular expression or a date parse. False means
 * only "not this form".
 */
function isPlainUtcTimestamp(value: string): boolean {
  const length = value.length;
  if (length < 20 || length > 64 || value.charCodeAt(length - 1) !== 90 /* Z */) return false;
  if (
    value.charCodeAt(4) !== 45 /* - */ ||
    value.charCodeAt(7) !== 45 ||
    value.charCodeAt(10) !== 84 /* T */ ||
    value.charCodeAt(13) !== 58 /* : */ ||
    value.charCodeAt(16) !== 58
  ) {
    return false;
  }
  if (digit(value, 0) < 0 || digit(value, 1) < 0 || digit(value, 2) < 0 || digit(value, 3) < 0) {
    return false;
  }
  const month = twoDigits(value, 5);
  const day = twoDigits(value, 8);
  const hour = twoDigits(value, 11);
  const minute = twoDigits(value, 14);
  const second = twoDigits(value, 17);
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return false;
  if (day > 28 && day > daysInMonth(value, month)) return false;
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  if (length === 20) return true;
  // A fraction: a dot and at least one digit, up to the Z.
  if (value.charCodeAt(19) !== 46 /* . */ || length === 21) return false;
  for (let i = 20; i < length - 1; i++) if (digit(value, i) < 0) return false;
  return true;
}

/** The days of `month` (1-12) in the year of the timestamp's first four characters (digits). */
function daysInMonth(value: string, month: number): number {
  if (month !== 2) return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  const year = twoDigits(value, 0) * 100 + twoDigits(value, 2);
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
}

function digit(value: string, at: number): number {
  const code = value.charCodeAt(at) - 48;
  return code >= 0 && code <= 9 ? code : -1;
}

/** The two-digit number at `at`, or -1. */
function twoDigits(value: string, at: number): number {
  const tens = digit(value, at);
  const ones = digit(value, at + 1);
  return tens < 0 || ones < 0 ? -1 : tens * 10 + ones;
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
  // Allocation-free when valid (it runs on every publish), and unrolled: one property read per
  // attribute, in the order of the checks (the first bad attribute is the one reported).
  requiredString(envelope, envelope.id, 'id');
  requiredString(envelope, envelope.source, 'source');
  requiredString(envelope, envelope.type, 'type');
  if (envelope.specversion !== SPEC_VERSION) {
    invalidAttribute(envelope, 'specversion', `must be "${SPEC_VERSION}"`);
  }
  const time = envelope.time;
  if (time !== undefined && (typeof time !== 'string' || !isRfc3339Time(time))) {
    invalidAttribute(envelope, 'time', 'must be an RFC 3339 timestamp when present');
  }
  if (!isSchemaVersion(envelope.schemaversion)) {
    invalidAttribute(envelope, 'schemaversion', 'must be a positive integer');
  }
  const datacontenttype = envelope.datacontenttype;
  if (typeof datacontenttype !== 'string' || datacontenttype.length === 0) {
    invalidAttribute(envelope, 'datacontenttype', 'must be a non-empty string');
  }
  // subject, dataschema, then EXTENSION_NAMES in their order.
  optionalString(envelope, envelope.subject, 'subject');
  optionalString(envelope, envelope.dataschema, 'dataschema');
  optionalString(envelope, envelope.sagaid, 'sagaid');
  optionalString(envelope, envelope.causationid, 'causationid');
  optionalString(envelope, envelope.correlationid, 'correlationid');
  optionalString(envelope, envelope.producerservice, 'producerservice');
  optionalString(envelope, envelope.producerversion, 'producerversion');
  optionalString(envelope, envelope.partitionkey, 'partitionkey');
  const extensions = envelope.extensions;
  if (extensions !== undefined) assertValidExtensions(envelope, extensions);
}

function requiredString(envelope: Envelope<unknown>, value: unknown, name: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    invalidAttribute(envelope, name, 'must be a non-empty string');
  }
}

function optionalString(envelope: Envelope<unknown>, value: unknown, name: string): void {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
    invalidAttribute(envelope, name, 'must be a non-empty string when present');
  }
}

function assertValidExtensions(envelope: Envelope<unknown>, extensions: unknown): void {
  if (typeof extensions !== 'object' || extensions === null || Array.isArray(extensions)) {
    invalidAttribute(envelope, 'extensions', 'must be an object when present');
  }
  for (const [name, value] of Object.entries(extensions)) {
    if (!isExtensionName(name)) {
      invalidAttribute(
        envelope,
        `extensions.${name}`,
        KNOWN_ATTRIBUTES.has(name)
          ? 'is an attribute Backtrack knows: set it on the envelope itself'
          : 'is not a CloudEvents attribute name (lower-case letters and digits)',
      );
    }
    if (!isExtensionValue(value)) {
      invalidAttribute(
        envelope,
        `extensions.${name}`,
        'must be a non-empty string, a boolean or a safe integer',
      );
    }
  }
}

function invalidAttribute(envelope: Envelope<unknown>, attribute: string, problem: string): never {
  throw new InvalidEnvelopeError(`envelope attribute "${attribute}" ${problem}`, {
    details: { attribute, id: envelope.id, type: envelope.type },
  });
}

/** True when `value` may be the value of an extension attribute in `Envelope.extensions`. */
export function isExtensionValue(value: unknown): value is ExtensionValue {
  return (
    (typeof value === 'string' && value.length > 0) ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isSafeInteger(value))
  );
}

/**
 * `dataschema` for the same event converted from version `from` to `to` (a replay at another
 * version): when it names `from` (see {@link schemaVersionFromDataschema}) the version in it is
 * replaced by `to`; otherwise it is returned unchanged.
 *
 * @example
 * withDataschemaVersion('https://schemas.example.com/order.placed/v2', 2, 1); // '.../order.placed/v1'
 */
export function withDataschemaVersion(
  dataschema: string | undefined,
  from: number,
  to: number,
): string | undefined {
  if (dataschema === undefined || from === to) return dataschema;
  if (schemaVersionFromDataschema(dataschema) !== from) return dataschema;
  return dataschema.replace(DATASCHEMA_VERSION, (match) =>
    match.replace(/[1-9][0-9]{0,14}/, String(to)),
  );
}
