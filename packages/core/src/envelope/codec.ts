import {
  assertValidEnvelope,
  isExtensionName,
  isRfc3339,
  JSON_CONTENT_TYPE,
  schemaVersionFromDataschema,
  SPEC_VERSION,
} from './envelope.js';
import {
  BatchModeUnsupportedError,
  InvalidEnvelopeError,
  MALFORMED_REASONS,
  MalformedMessageError,
} from './errors.js';
import type { MalformedReason } from './errors.js';
import { handedOver } from '../transport/sealedMessage.js';
import type { ContentMode, EncodedMessage, Envelope, ExtensionValue } from './types.js';

/** Size limits of the envelope codec. */
export interface EnvelopeLimits {
  /**
   * Largest body (the encoded `data`) accepted, in bytes. `decodeEnvelope` rejects a larger body
   * as malformed before looking at it; `encodeEnvelope` refuses to produce one.
   * @default 1_048_576 (1 MiB, the Kafka default `max.message.bytes` neighbourhood)
   */
  maxBytes: number;
}

/** Options of {@link encodeEnvelope}. */
export interface EncodeOptions extends EnvelopeLimits {
  /**
   * `binary`: `data` in the body, every other attribute a header. `structured`: the whole event
   * in the CloudEvents JSON format in the body, `content-type: application/cloudevents+json`.
   * @default 'binary'
   */
  mode: ContentMode;
}

/** Options of {@link decodeEnvelope}. */
export interface DecodeOptions extends EnvelopeLimits {
  /**
   * The schema version of a message that carries neither `schemaversion` nor a `dataschema`
   * naming a version (a foreign CloudEvents producer), per event type. The consumer pipeline
   * passes the registry's `defaultSchemaVersion`.
   * @default () => 1
   */
  defaultSchemaVersion: (type: string) => number;
}

/** The media type of the CloudEvents JSON format (structured content mode). */
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json' as const;

/** The media type of the CloudEvents JSON batch format (batched content mode, not consumed). */
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json' as const;

/** Defaults for {@link EnvelopeLimits}. */
export const DEFAULT_ENVELOPE_LIMITS: Readonly<EnvelopeLimits> = Object.freeze({
  maxBytes: 1_048_576,
});

/**
 * The header names of the binary content mode, one per envelope attribute (CloudEvents attribute
 * names; `content-type` carries `datacontenttype`). Adapters prefix them for their protocol
 * (`ce_` on Kafka, `cloudEvents_` on AMQP).
 */
export const ENVELOPE_HEADERS = {
  id: 'id',
  source: 'source',
  type: 'type',
  specversion: 'specversion',
  time: 'time',
  subject: 'subject',
  dataschema: 'dataschema',
  schemaversion: 'schemaversion',
  sagaid: 'sagaid',
  causationid: 'causationid',
  correlationid: 'correlationid',
  producerservice: 'producerservice',
  producerversion: 'producerversion',
  partitionkey: 'partitionkey',
  datacontenttype: 'content-type',
} as const;

/**
 * JSON keys the decoder refuses. A payload that carries them is almost always an attack on code
 * that deep-merges data (`lodash.merge`, `Object.assign` into a prototype); rejecting (rather
 * than silently stripping) keeps the data meaning unchanged and sends the message, with its
 * original bytes, to the dead-letter destination where someone can look at it.
 */
export const FORBIDDEN_JSON_KEYS: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
]);

const STRING_ATTRIBUTES = [
  'time',
  'subject',
  'dataschema',
  'sagaid',
  'causationid',
  'correlationid',
  'producerservice',
  'producerversion',
  'partitionkey',
] as const;
const OPTIONAL = STRING_ATTRIBUTES.filter(
  (name): name is Exclude<(typeof STRING_ATTRIBUTES)[number], 'time'> => name !== 'time',
);

/**
 * UTF-8 bytes of `text`. `Buffer.from`, not a TextEncoder: a small string is written into Node's
 * shared 8 KiB pool (a view, no ArrayBuffer and no allocation outside the heap per message), about
 * twice as fast in Node 20 and lighter on the collector. The bytes are the same (lone surrogates
 * become U+FFFD either way); a Buffer is a Uint8Array.
 */
function utf8Bytes(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}
// Stateless between calls (no `stream` option), so one instance serves every decode.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes an envelope. Binary content mode (the default): `data` as UTF-8 JSON bytes in the body,
 * every other attribute as a string header (see {@link ENVELOPE_HEADERS}; unknown extensions
 * under their own names, as their canonical strings). Absent optional attributes produce no
 * header. Structured content mode (`{ mode: 'structured' }`): the body is the event in the
 * CloudEvents JSON format, `content-type` is `application/cloudevents+json; charset=utf-8`, and
 * the binary-mode headers other than `content-type` are kept as routing copies.
 *
 * @throws {InvalidEnvelopeError} when an attribute is invalid, the content type is not JSON,
 *   `data` cannot be represented as JSON (undefined, a BigInt, a cycle), or the body exceeds
 *   `limits.maxBytes`.
 */
export function encodeEnvelope(
  envelope: Envelope<unknown>,
  options: Partial<EncodeOptions> = {},
): EncodedMessage {
  assertValidEnvelope(envelope);
  return encodeCheckedEnvelope(envelope, options);
}

/**
 * {@link encodeEnvelope} of an envelope already checked by `assertValidEnvelope` (one
 * `createEnvelope` made): the journaling publisher encodes what it just built, without checking
 * every attribute a second time. Internal: not exported from the package.
 */
export function encodeCheckedEnvelope(
  envelope: Envelope<unknown>,
  options: Partial<EncodeOptions> = {},
): EncodedMessage {
  const maxBytes = options.maxBytes ?? DEFAULT_ENVELOPE_LIMITS.maxBytes;
  const mode = options.mode ?? 'binary';
  if (!isJsonContentType(envelope.datacontenttype)) {
    throw new InvalidEnvelopeError(
      `datacontenttype "${envelope.datacontenttype}" is not supported; Backtrack encodes JSON`,
      { details: { attribute: 'datacontenttype', id: envelope.id, type: envelope.type } },
    );
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(envelope.data);
  } catch (cause) {
    throw new InvalidEnvelopeError(
      `data of ${envelope.type} ${envelope.id} is not JSON-serialisable`,
      {
        cause,
        details: { id: envelope.id, type: envelope.type },
      },
    );
  }
  if (json === undefined) {
    throw new InvalidEnvelopeError(`data of ${envelope.type} ${envelope.id} is undefined`, {
      details: { id: envelope.id, type: envelope.type },
    });
  }
  const body = utf8Bytes(json);
  if (body.byteLength > maxBytes) {
    throw new InvalidEnvelopeError(
      `data of ${envelope.type} ${envelope.id} is ${body.byteLength} bytes, over the ${maxBytes}-byte limit`,
      { details: { id: envelope.id, type: envelope.type, bytes: body.byteLength, maxBytes } },
    );
  }
  const headers: Record<string, string> = {
    id: envelope.id,
    source: envelope.source,
    type: envelope.type,
    specversion: envelope.specversion,
    schemaversion: String(envelope.schemaversion),
    'content-type': envelope.datacontenttype,
  };
  if (envelope.time !== undefined) headers['time'] = envelope.time;
  // OPTIONAL, unrolled (one property read each, in its order: the order of the headers).
  const { subject, dataschema, sagaid, causationid, correlationid } = envelope;
  const { producerservice, producerversion, partitionkey } = envelope;
  if (subject !== undefined) headers['subject'] = subject;
  if (dataschema !== undefined) headers['dataschema'] = dataschema;
  if (sagaid !== undefined) headers['sagaid'] = sagaid;
  if (causationid !== undefined) headers['causationid'] = causationid;
  if (correlationid !== undefined) headers['correlationid'] = correlationid;
  if (producerservice !== undefined) headers['producerservice'] = producerservice;
  if (producerversion !== undefined) headers['producerversion'] = producerversion;
  if (partitionkey !== undefined) headers['partitionkey'] = partitionkey;
  const extensions = envelope.extensions;
  if (extensions !== undefined) {
    for (const name of Object.keys(extensions)) headers[name] = String(extensions[name]);
  }
  if (mode !== 'structured') return { headers, body };
  return { headers: structuredHeaders(headers), body: structuredBody(envelope, json) };
}

/**
 * Turns a binary-mode message (as {@link encodeEnvelope} makes) into the same event in
 * structured content mode. A message already in structured mode is returned unchanged.
 * Transports use it for their `contentMode: 'structured'` option.
 *
 * @throws {MalformedMessageError} when the message cannot be decoded.
 * @throws {InvalidEnvelopeError} when it cannot be encoded again (a body over `maxBytes`).
 */
export function toStructuredMessage(
  message: EncodedMessage,
  limits: Partial<EnvelopeLimits> = {},
): EncodedMessage {
  if (contentModeOf(message.headers) !== 'binary') return message;
  return encodeEnvelope(decodeEnvelope(message, limits), { ...limits, mode: 'structured' });
}

/**
 * The content mode a message's headers announce, from its `content-type` (matched
 * case-insensitively): `structured` for `application/cloudevents...`, `batch` for
 * `application/cloudevents-batch...`, else `binary`.
 */
export function contentModeOf(headers: Record<string, unknown>): ContentMode | 'batch' {
  let contentType: unknown;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'content-type') contentType = value;
  }
  return typeof contentType === 'string' ? modeOfContentType(contentType) : 'binary';
}

function modeOfContentType(contentType: string): ContentMode | 'batch' {
  const media = contentType.trim().toLowerCase();
  if (media.startsWith('application/cloudevents-batch')) return 'batch';
  if (media.startsWith('application/cloudevents')) return 'structured';
  return 'binary';
}

function structuredHeaders(binary: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = { ...binary };
  headers['content-type'] = `${STRUCTURED_CONTENT_TYPE}; charset=utf-8`;
  return headers;
}

function structuredBody(envelope: Envelope<unknown>, dataJson: string): Uint8Array {
  const event: Record<string, unknown> = {
    specversion: envelope.specversion,
    id: envelope.id,
    source: envelope.source,
    type: envelope.type,
  };
  if (envelope.time !== undefined) event['time'] = envelope.time;
  event['datacontenttype'] = envelope.datacontenttype;
  for (const name of OPTIONAL) {
    const value = envelope[name];
    if (value !== undefined) event[name] = value;
  }
  event['schemaversion'] = envelope.schemaversion;
  for (const [name, value] of Object.entries(envelope.extensions ?? {})) event[name] = value;
  // `data` is spliced in as the JSON already made, not stringified a second time.
  const attributes = JSON.stringify(event);
  return utf8Bytes(`${attributes.slice(0, -1)},"data":${dataJson}}`);
}

/**
 * Decodes a received message into an envelope with untyped `data` (validate it against the
 * event's schema next: see `EventRegistry.read`).
 *
 * - **Binary content mode**: attributes from the headers (names matched case-insensitively),
 *   `data` from the body. A missing `content-type` means `application/json` (CloudEvents makes
 *   `datacontenttype` optional). Headers whose names cannot be CloudEvents attributes are
 *   ignored; any other header Backtrack does not know is kept in `extensions`.
 * - **Structured content mode** (`content-type: application/cloudevents+json`): the body is the
 *   event in the CloudEvents JSON format; the headers are not read.
 * - **Batched content mode** (`application/cloudevents-batch+json`): not consumed, see
 *   {@link BatchModeUnsupportedError}.
 *
 * Required: `id`, `source`, `type`, `specversion` (1.0). `time` is optional. `schemaversion`,
 * when absent, comes from a `dataschema` that names a version, else from
 * `options.defaultSchemaVersion(type)` (default 1).
 *
 * @throws {MalformedMessageError} (never retriable, keeps the original bytes and headers) on a
 *   missing or ill-typed required attribute, a specversion other than 1.0, a non-integer or
 *   non-positive schemaversion, a bad `time`, a non-JSON content type, a body over `maxBytes`,
 *   invalid UTF-8, invalid JSON, or a `__proto__`/`constructor`/`prototype` key anywhere in the
 *   JSON; {@link BatchModeUnsupportedError} for a batch.
 */
export function decodeEnvelope(
  message: EncodedMessage,
  options: Partial<DecodeOptions> = {},
): Envelope<unknown> {
  const maxBytes = options.maxBytes ?? DEFAULT_ENVELOPE_LIMITS.maxBytes;

  if (typeof message !== 'object' || message === null) {
    return malformed(message, MALFORMED_REASONS.INVALID_SHAPE, 'message is not an object');
  }
  const { headers: rawHeaders, body } = message;
  if (!(body instanceof Uint8Array)) {
    return malformed(message, MALFORMED_REASONS.INVALID_SHAPE, 'message body is not a Uint8Array');
  }
  if (typeof rawHeaders !== 'object' || rawHeaders === null) {
    return malformed(message, MALFORMED_REASONS.INVALID_SHAPE, 'message headers are not an object');
  }

  const headers = lowerCaseHeaders(rawHeaders, message);
  const contentTypeHeader = own(headers, 'content-type');
  const mode =
    contentTypeHeader === JSON_CONTENT_TYPE
      ? 'binary'
      : typeof contentTypeHeader === 'string'
        ? modeOfContentType(contentTypeHeader)
        : 'binary';
  if (mode === 'batch') throw new BatchModeUnsupportedError(message, contentTypeHeader as string);

  if (body.byteLength > maxBytes) {
    const where = mode === 'structured' ? 'structured event' : 'body';
    malformed(
      message,
      MALFORMED_REASONS.TOO_LARGE,
      `${where} is ${body.byteLength} bytes, over the ${maxBytes}-byte limit`,
      { bytes: body.byteLength, maxBytes },
    );
  }

  if (mode === 'structured') {
    return decodeStructured(body, contentTypeHeader as string, options, message);
  }
  // The data is read after the attributes (a bad attribute is reported before a bad body).
  // Headers used as they came: their names were just listed, list them once.
  const names = headers === rawHeaders ? lowerCaseNames : undefined;
  return buildEnvelope(headers, 'header', options, message, body, undefined, names);
}

/**
 * {@link decodeEnvelope} of a message an in-process transport handed over as a copy of a message
 * the journaling publisher encoded from a checked envelope (see `deliveredCopy` in
 * `transport/sealedMessage.ts`), or undefined for any other message (decode it). The attributes
 * are read from the publisher's sealed headers, which `createEnvelope` checked by the rules decode
 * checks them by (non-empty strings, an RFC 3339 time, a positive schema version, the JSON content
 * type): no header is parsed or checked again. The body is still decoded as UTF-8 and parsed as
 * JSON with the same forbidden-key guard, so the data is the consumer's own and a bad body fails
 * as it would; a body over `maxBytes` is left to decodeEnvelope (which reports it). The result
 * equals decodeEnvelope's, key order included.
 */
export function decodeHandedOver(
  message: EncodedMessage,
  options: Partial<DecodeOptions> = {},
): Envelope<unknown> | undefined {
  const sealed = handedOver(message);
  if (sealed === undefined) return undefined;
  const { headers, body } = sealed;
  if (body.byteLength > (options.maxBytes ?? DEFAULT_ENVELOPE_LIMITS.maxBytes)) return undefined;
  const data = parseJson(decodeUtf8(body, message), message, '');
  const time = headers['time'];
  const envelope: Envelope<unknown> =
    time === undefined
      ? {
          id: headers['id']!,
          source: headers['source']!,
          type: headers['type']!,
          specversion: SPEC_VERSION,
          datacontenttype: JSON_CONTENT_TYPE,
          schemaversion: sealed.checkedVersion,
          data,
        }
      : {
          id: headers['id']!,
          source: headers['source']!,
          type: headers['type']!,
          specversion: SPEC_VERSION,
          time,
          datacontenttype: JSON_CONTENT_TYPE,
          schemaversion: sealed.checkedVersion,
          data,
        };
  // In the order of OPTIONAL, as buildEnvelope (no dataschema: such messages are not handed over).
  const { subject, sagaid, causationid, correlationid } = headers;
  const { producerservice, producerversion, partitionkey } = headers;
  if (subject !== undefined) envelope.subject = subject;
  if (sagaid !== undefined) envelope.sagaid = sagaid;
  if (causationid !== undefined) envelope.causationid = causationid;
  if (correlationid !== undefined) envelope.correlationid = correlationid;
  if (producerservice !== undefined) envelope.producerservice = producerservice;
  if (producerversion !== undefined) envelope.producerversion = producerversion;
  if (partitionkey !== undefined) envelope.partitionkey = partitionkey;
  return envelope;
}

/**
 * Throws the {@link MalformedMessageError} of the message being decoded (a plain function, not
 * a closure made per decode).
 */
function malformed(
  message: EncodedMessage,
  reason: MalformedReason,
  text: string,
  extra: Record<string, unknown> = {},
  cause?: unknown,
): never {
  throw new MalformedMessageError(reason, text, message, { details: extra, cause });
}

/**
 * Structured content mode: the body is the event in the CloudEvents JSON format. Its members
 * are the attributes (JSON null meaning absent, `datacontenttype` renamed `content-type`).
 */
function decodeStructured(
  body: Uint8Array,
  contentTypeHeader: string,
  options: Partial<DecodeOptions>,
  message: EncodedMessage,
): Envelope<unknown> {
  if (!isJsonContentType(contentTypeHeader)) {
    malformed(
      message,
      MALFORMED_REASONS.UNSUPPORTED_CONTENT_TYPE,
      `structured event format "${contentTypeHeader}" is not supported (Backtrack reads ${STRUCTURED_CONTENT_TYPE})`,
      { attribute: 'content-type', value: contentTypeHeader },
    );
  }
  const event = parseJson(decodeUtf8(body, message), message, 'structured event: ');
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return malformed(
      message,
      MALFORMED_REASONS.INVALID_SHAPE,
      'structured event is not a JSON object',
    );
  }
  const members = event as Record<string, unknown>;
  if (Object.hasOwn(members, 'data_base64')) {
    malformed(
      message,
      MALFORMED_REASONS.UNSUPPORTED_CONTENT_TYPE,
      'structured event carries binary data (data_base64); Backtrack reads JSON data',
      { attribute: 'data_base64' },
    );
  }
  const attributes: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const name of Object.keys(members)) {
    const value = members[name];
    // JSON null means absent (CloudEvents JSON format). `content-type` is not an attribute
    // name: a member spelled so must not pass for datacontenttype.
    if (name === 'data' || name === 'content-type' || value === null) continue;
    attributes[name === 'datacontenttype' ? 'content-type' : name] = value;
  }
  return buildEnvelope(
    attributes,
    'attribute',
    options,
    message,
    undefined,
    own(members, 'data'),
    undefined,
  );
}

/**
 * Reads the attributes (binary headers, or the members of a structured event with
 * `datacontenttype` renamed `content-type`) and then the data: parsed from `body` (binary mode)
 * or, without a body, `structuredData` as it is.
 *
 * The values are taken in one pass over the own names (no lookup per attribute), then checked
 * in a fixed order, so the error a message with several bad attributes gets is stable.
 */
function buildEnvelope(
  values: Record<string, unknown>,
  noun: 'header' | 'attribute',
  options: Partial<DecodeOptions>,
  message: EncodedMessage,
  body: Uint8Array | undefined,
  structuredData: unknown,
  ownNames: string[] | undefined,
): Envelope<unknown> {
  const structured = noun === 'attribute';
  let rawId: unknown;
  let rawSource: unknown;
  let rawType: unknown;
  let rawSpecversion: unknown;
  let rawTime: unknown;
  let rawSubject: unknown;
  let rawDataschema: unknown;
  let rawSagaid: unknown;
  let rawCausationid: unknown;
  let rawCorrelationid: unknown;
  let rawProducerservice: unknown;
  let rawProducerversion: unknown;
  let rawPartitionkey: unknown;
  let rawSchemaversion: unknown;
  let rawContentType: unknown;
  let others = false;
  // Own names only (an inherited `id` is not a header).
  const names = ownNames ?? Object.keys(values);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    switch (name) {
      case 'id':
        rawId = values[name];
        break;
      case 'source':
        rawSource = values[name];
        break;
      case 'type':
        rawType = values[name];
        break;
      case 'specversion':
        rawSpecversion = values[name];
        break;
      case 'time':
        rawTime = values[name];
        break;
      case 'subject':
        rawSubject = values[name];
        break;
      case 'dataschema':
        rawDataschema = values[name];
        break;
      case 'sagaid':
        rawSagaid = values[name];
        break;
      case 'causationid':
        rawCausationid = values[name];
        break;
      case 'correlationid':
        rawCorrelationid = values[name];
        break;
      case 'producerservice':
        rawProducerservice = values[name];
        break;
      case 'producerversion':
        rawProducerversion = values[name];
        break;
      case 'partitionkey':
        rawPartitionkey = values[name];
        break;
      case 'schemaversion':
        rawSchemaversion = values[name];
        break;
      case 'content-type':
        rawContentType = values[name];
        break;
      default:
        others = true;
    }
  }
  const id = readAttribute(rawId, 'id', true, noun, message) as string;
  const source = readAttribute(rawSource, 'source', true, noun, message) as string;
  const type = readAttribute(rawType, 'type', true, noun, message) as string;
  const specversion = readAttribute(rawSpecversion, 'specversion', true, noun, message) as string;
  if (specversion !== SPEC_VERSION) {
    malformed(
      message,
      MALFORMED_REASONS.UNSUPPORTED_SPECVERSION,
      `specversion "${specversion}" is not supported (expected "${SPEC_VERSION}")`,
      { attribute: 'specversion', value: specversion },
    );
  }
  // The optional string attributes, in a fixed order (so errors are stable).
  const time = readAttribute(rawTime, 'time', false, noun, message);
  const subject = readAttribute(rawSubject, 'subject', false, noun, message);
  const dataschema = readAttribute(rawDataschema, 'dataschema', false, noun, message);
  const sagaid = readAttribute(rawSagaid, 'sagaid', false, noun, message);
  const causationid = readAttribute(rawCausationid, 'causationid', false, noun, message);
  const correlationid = readAttribute(rawCorrelationid, 'correlationid', false, noun, message);
  const producerservice = readAttribute(
    rawProducerservice,
    'producerservice',
    false,
    noun,
    message,
  );
  const producerversion = readAttribute(
    rawProducerversion,
    'producerversion',
    false,
    noun,
    message,
  );
  const partitionkey = readAttribute(rawPartitionkey, 'partitionkey', false, noun, message);
  if (time !== undefined && !isRfc3339(time)) {
    malformed(
      message,
      MALFORMED_REASONS.INVALID_ATTRIBUTE,
      `${noun} "time" is not an RFC 3339 timestamp`,
      {
        attribute: 'time',
        value: time,
      },
    );
  }
  const schemaversion = readSchemaVersion(
    rawSchemaversion,
    noun,
    dataschema,
    type,
    options,
    message,
  );

  const contentType =
    readAttribute(rawContentType, 'content-type', false, noun, message) ?? JSON_CONTENT_TYPE;
  if (!isJsonContentType(contentType)) {
    malformed(
      message,
      MALFORMED_REASONS.UNSUPPORTED_CONTENT_TYPE,
      `content type "${contentType}" is not JSON`,
      {
        attribute: structured ? 'datacontenttype' : 'content-type',
        value: contentType,
      },
    );
  }
  const extensions = others ? readExtensions(values, noun, message) : undefined;

  const data =
    body === undefined ? structuredData : parseJson(decodeUtf8(body, message), message, '');
  const envelope: Envelope<unknown> =
    time === undefined
      ? {
          id,
          source,
          type,
          specversion: SPEC_VERSION,
          datacontenttype: contentType,
          schemaversion,
          data,
        }
      : {
          id,
          source,
          type,
          specversion: SPEC_VERSION,
          time,
          datacontenttype: contentType,
          schemaversion,
          data,
        };
  // In the order of OPTIONAL (the order envelopes have always had their keys in).
  if (subject !== undefined) envelope.subject = subject;
  if (dataschema !== undefined) envelope.dataschema = dataschema;
  if (sagaid !== undefined) envelope.sagaid = sagaid;
  if (causationid !== undefined) envelope.causationid = causationid;
  if (correlationid !== undefined) envelope.correlationid = correlationid;
  if (producerservice !== undefined) envelope.producerservice = producerservice;
  if (producerversion !== undefined) envelope.producerversion = producerversion;
  if (partitionkey !== undefined) envelope.partitionkey = partitionkey;
  if (extensions !== undefined) envelope.extensions = extensions;
  return envelope;
}

/**
 * A string attribute's value: absent (`undefined`) is `undefined`, or a failure when required;
 * empty or not a string is a failure.
 */
function readAttribute(
  value: unknown,
  name: string,
  required: boolean,
  noun: 'header' | 'attribute',
  message: EncodedMessage,
): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value; // the common case
  if (value === undefined) {
    return required
      ? malformed(
          message,
          MALFORMED_REASONS.MISSING_ATTRIBUTE,
          `required ${noun} "${name}" is missing`,
          { attribute: name },
        )
      : undefined;
  }
  if (typeof value !== 'string') {
    return malformed(
      message,
      MALFORMED_REASONS.INVALID_ATTRIBUTE,
      `${noun} "${name}" is not a string`,
      { attribute: name, valueType: typeof value },
    );
  }
  return required
    ? malformed(
        message,
        MALFORMED_REASONS.MISSING_ATTRIBUTE,
        `required ${noun} "${name}" is empty`,
        {
          attribute: name,
        },
      )
    : malformed(message, MALFORMED_REASONS.INVALID_ATTRIBUTE, `${noun} "${name}" is empty`, {
        attribute: name,
      });
}

const SCHEMA_VERSION_TEXT = /^[1-9][0-9]{0,14}$/;

/**
 * `schemaversion` (a JSON number is accepted in a structured event); when absent, the version a
 * `dataschema` names, else `options.defaultSchemaVersion(type)`, else 1.
 */
function readSchemaVersion(
  rawVersion: unknown,
  noun: 'header' | 'attribute',
  dataschema: string | undefined,
  type: string,
  options: Partial<DecodeOptions>,
  message: EncodedMessage,
): number {
  if (rawVersion !== undefined) {
    const text =
      noun === 'attribute' && typeof rawVersion === 'number'
        ? String(rawVersion)
        : (readAttribute(rawVersion, 'schemaversion', false, noun, message) as string);
    // One digit 1-9 (nearly every message) needs no pattern.
    if (text.length === 1) {
      const digit = text.charCodeAt(0) - 48;
      if (digit >= 1 && digit <= 9) return digit;
    }
    if (!SCHEMA_VERSION_TEXT.test(text)) {
      malformed(
        message,
        MALFORMED_REASONS.INVALID_ATTRIBUTE,
        `${noun} "schemaversion" is not a positive integer`,
        {
          attribute: 'schemaversion',
          value: text,
        },
      );
    }
    return Number(text);
  }
  return (
    (dataschema === undefined ? undefined : schemaVersionFromDataschema(dataschema)) ??
    (options.defaultSchemaVersion === undefined ? 1 : options.defaultSchemaVersion(type))
  );
}

/** Every other attribute with a valid CloudEvents name is an extension Backtrack keeps. */
function readExtensions(
  values: Record<string, unknown>,
  noun: 'header' | 'attribute',
  message: EncodedMessage,
): Record<string, ExtensionValue> | undefined {
  const structured = noun === 'attribute';
  let extensions: Record<string, ExtensionValue> | undefined;
  for (const name of Object.keys(values)) {
    if (!isExtensionName(name)) continue;
    const value = values[name];
    const kept = extensionValue(value, structured);
    if (kept === undefined) {
      malformed(
        message,
        MALFORMED_REASONS.INVALID_ATTRIBUTE,
        `${noun} "${name}" is not a valid extension value (a non-empty string${structured ? ', a boolean or an integer' : ''})`,
        { attribute: name, valueType: typeof value },
      );
    }
    (extensions ??= {})[name] = kept as ExtensionValue;
  }
  return extensions;
}

/** An own property's value (never an inherited one, so `constructor` is never a header). */
function own(values: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(values, name) ? values[name] : undefined;
}

/** The own names {@link lowerCaseHeaders} listed last (what `buildEnvelope` reads when it returned them as they came). */
let lowerCaseNames: string[] = [];

/** The header names of {@link ENVELOPE_HEADERS}, all lower-case. */
const LOWER_CASE_HEADERS: ReadonlySet<string> = new Set(Object.values(ENVELOPE_HEADERS));

/**
 * The headers keyed lower-case. Headers already all lower-case (what every Backtrack adapter
 * hands over) are used as they are, without a copy; otherwise a copy, refusing a name that
 * appears twice in different cases with different values.
 */
function lowerCaseHeaders(
  raw: Record<string, unknown>,
  message: EncodedMessage,
): Record<string, unknown> {
  const names = Object.keys(raw);
  lowerCaseNames = names;
  let lower = true;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // The names Backtrack writes are lower-case: a Set lookup instead of a lower-case copy.
    if (!LOWER_CASE_HEADERS.has(name) && name.toLowerCase() !== name) {
      lower = false;
      break;
    }
  }
  if (lower) return raw;
  const headers: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const key of names) {
    const name = key.toLowerCase();
    const value = raw[key];
    if (Object.hasOwn(headers, name) && headers[name] !== value) {
      malformed(
        message,
        MALFORMED_REASONS.INVALID_ATTRIBUTE,
        `header "${name}" appears twice with different values`,
        { attribute: name },
      );
    }
    headers[name] = value;
  }
  return headers;
}

function extensionValue(value: unknown, structured: boolean): ExtensionValue | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (!structured) return undefined;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return undefined;
}

function decodeUtf8(body: Uint8Array, message: EncodedMessage): string {
  try {
    return utf8.decode(body);
  } catch (cause) {
    return malformed(message, MALFORMED_REASONS.INVALID_UTF8, 'body is not valid UTF-8', {}, cause);
  }
}

/** `application/json` or any `application/*+json`, with at most a UTF-8 charset parameter. */
export function isJsonContentType(contentType: string): boolean {
  if (contentType === JSON_CONTENT_TYPE) return true;
  const [mediaType = '', ...parameters] = contentType
    .split(';')
    .map((part) => part.trim().toLowerCase());
  if (
    mediaType !== 'application/json' &&
    !/^application\/[a-z0-9!#$&^_.-]+\+json$/.test(mediaType)
  ) {
    return false;
  }
  return parameters.every((parameter) => {
    const [key, value] = parameter.split('=').map((part) => part.trim());
    return key !== 'charset' || value?.replace(/^"|"$/g, '') === 'utf-8';
  });
}

const FORBIDDEN_KEY_MARKERS = /__proto__|constructor|prototype|\\u/;

/** `prefix` goes before the failure's text (`structured event: `, or nothing). */
function parseJson(text: string, message: EncodedMessage, prefix: string): unknown {
  // The reviver costs a second walk of the tree; take it only when a forbidden key may be there
  // (a key spelled with \u escapes decodes to the same string, hence the `\u` marker).
  const guarded = FORBIDDEN_KEY_MARKERS.test(text);
  let forbidden: string | undefined;
  let data: unknown;
  try {
    data = guarded
      ? JSON.parse(text, function reviver(key: string, value: unknown) {
          if (FORBIDDEN_JSON_KEYS.has(key)) forbidden ??= key;
          return value;
        })
      : JSON.parse(text);
  } catch (cause) {
    // Deeply nested input overflows the parser's stack: still bad input, not a crash.
    return malformed(
      message,
      MALFORMED_REASONS.INVALID_JSON,
      `${prefix}body is not valid JSON: ${(cause as Error).message}`,
      {},
      cause,
    );
  }
  if (forbidden !== undefined) {
    return malformed(
      message,
      MALFORMED_REASONS.FORBIDDEN_KEY,
      `${prefix}body contains the forbidden key "${forbidden}"`,
    );
  }
  return data;
}
