import { assertValidEnvelope, isRfc3339, JSON_CONTENT_TYPE, SPEC_VERSION } from './envelope.js';
import { InvalidEnvelopeError, MALFORMED_REASONS, MalformedMessageError } from './errors.js';
import type { MalformedReason } from './errors.js';
import type { EncodedMessage, Envelope } from './types.js';

/** Size limits of the envelope codec. */
export interface EnvelopeLimits {
  /**
   * Largest body (the encoded `data`) accepted, in bytes. `decodeEnvelope` rejects a larger body
   * as malformed before looking at it; `encodeEnvelope` refuses to produce one.
   * @default 1_048_576 (1 MiB, the Kafka default `max.message.bytes` neighbourhood)
   */
  maxBytes: number;
}

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

const REQUIRED = ['id', 'source', 'type', 'specversion', 'time', 'schemaversion'] as const;
const OPTIONAL = [
  'sagaid',
  'causationid',
  'correlationid',
  'producerservice',
  'producerversion',
  'partitionkey',
] as const;

const encoder = new TextEncoder();
// Stateless between calls (no `stream` option), so one instance serves every decode.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes an envelope in binary content mode: `data` as UTF-8 JSON bytes in the body, every
 * other attribute as a string header (see {@link ENVELOPE_HEADERS}). Absent optional attributes
 * produce no header.
 *
 * @throws {InvalidEnvelopeError} when an attribute is invalid, the content type is not JSON,
 *   `data` cannot be represented as JSON (undefined, a BigInt, a cycle), or the body exceeds
 *   `limits.maxBytes`.
 */
export function encodeEnvelope(
  envelope: Envelope<unknown>,
  limits: Partial<EnvelopeLimits> = {},
): EncodedMessage {
  const { maxBytes } = { ...DEFAULT_ENVELOPE_LIMITS, ...limits };
  assertValidEnvelope(envelope);
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
  const body = encoder.encode(json);
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
    time: envelope.time,
    schemaversion: String(envelope.schemaversion),
    'content-type': envelope.datacontenttype,
  };
  for (const name of OPTIONAL) {
    const value = envelope[name];
    if (value !== undefined) headers[name] = value;
  }
  return { headers, body };
}

/**
 * Decodes a message received in binary content mode into an envelope with untyped `data`
 * (validate it against the event's schema next: see `EventRegistry.read`).
 *
 * Header names are matched case-insensitively. Headers that are not envelope attributes are
 * ignored. A missing `content-type` means `application/json` (CloudEvents makes
 * `datacontenttype` optional).
 *
 * @throws {MalformedMessageError} (never retriable, keeps the original bytes and headers) on a
 *   missing or ill-typed required attribute, a specversion other than 1.0, a non-integer or
 *   non-positive schemaversion, a non-JSON content type, a body over `maxBytes`, invalid UTF-8,
 *   invalid JSON, or a `__proto__`/`constructor`/`prototype` key anywhere in the data.
 */
export function decodeEnvelope(
  message: EncodedMessage,
  limits: Partial<EnvelopeLimits> = {},
): Envelope<unknown> {
  const { maxBytes } = { ...DEFAULT_ENVELOPE_LIMITS, ...limits };
  const fail = (
    reason: MalformedReason,
    text: string,
    extra: Record<string, unknown> = {},
    cause?: unknown,
  ): never => {
    throw new MalformedMessageError(reason, text, message, { details: extra, cause });
  };

  if (typeof message !== 'object' || message === null) {
    return fail(MALFORMED_REASONS.INVALID_SHAPE, 'message is not an object');
  }
  const { headers: rawHeaders, body } = message;
  if (!(body instanceof Uint8Array)) {
    return fail(MALFORMED_REASONS.INVALID_SHAPE, 'message body is not a Uint8Array');
  }
  if (typeof rawHeaders !== 'object' || rawHeaders === null) {
    return fail(MALFORMED_REASONS.INVALID_SHAPE, 'message headers are not an object');
  }

  // Own entries only, keyed lower-case: an inherited property is never mistaken for a header.
  const headers = new Map<string, unknown>();
  for (const [key, value] of Object.entries(rawHeaders)) {
    const name = key.toLowerCase();
    if (headers.has(name) && headers.get(name) !== value) {
      fail(
        MALFORMED_REASONS.INVALID_ATTRIBUTE,
        `header "${name}" appears twice with different values`,
        {
          attribute: name,
        },
      );
    }
    headers.set(name, value);
  }
  const attribute = (name: string, required: boolean): string | undefined => {
    const value = headers.get(name);
    if (value === undefined) {
      return required
        ? fail(MALFORMED_REASONS.MISSING_ATTRIBUTE, `required header "${name}" is missing`, {
            attribute: name,
          })
        : undefined;
    }
    if (typeof value !== 'string') {
      return fail(MALFORMED_REASONS.INVALID_ATTRIBUTE, `header "${name}" is not a string`, {
        attribute: name,
        valueType: typeof value,
      });
    }
    if (value.length === 0) {
      return required
        ? fail(MALFORMED_REASONS.MISSING_ATTRIBUTE, `required header "${name}" is empty`, {
            attribute: name,
          })
        : fail(MALFORMED_REASONS.INVALID_ATTRIBUTE, `header "${name}" is empty`, {
            attribute: name,
          });
    }
    return value;
  };

  const values = {} as Record<(typeof REQUIRED)[number], string>;
  for (const name of REQUIRED) values[name] = attribute(name, true) as string;

  if (values.specversion !== SPEC_VERSION) {
    fail(
      MALFORMED_REASONS.UNSUPPORTED_SPECVERSION,
      `specversion "${values.specversion}" is not supported (expected "${SPEC_VERSION}")`,
      {
        attribute: 'specversion',
        value: values.specversion,
      },
    );
  }
  if (!isRfc3339(values.time)) {
    fail(MALFORMED_REASONS.INVALID_ATTRIBUTE, `header "time" is not an RFC 3339 timestamp`, {
      attribute: 'time',
      value: values.time,
    });
  }
  if (!/^[1-9][0-9]{0,14}$/.test(values.schemaversion)) {
    fail(MALFORMED_REASONS.INVALID_ATTRIBUTE, `header "schemaversion" is not a positive integer`, {
      attribute: 'schemaversion',
      value: values.schemaversion,
    });
  }
  const contentType = attribute('content-type', false) ?? JSON_CONTENT_TYPE;
  if (!isJsonContentType(contentType)) {
    fail(MALFORMED_REASONS.UNSUPPORTED_CONTENT_TYPE, `content type "${contentType}" is not JSON`, {
      attribute: 'content-type',
      value: contentType,
    });
  }
  const extensions: Partial<Record<(typeof OPTIONAL)[number], string>> = {};
  for (const name of OPTIONAL) {
    const value = attribute(name, false);
    if (value !== undefined) extensions[name] = value;
  }

  if (body.byteLength > maxBytes) {
    fail(
      MALFORMED_REASONS.TOO_LARGE,
      `body is ${body.byteLength} bytes, over the ${maxBytes}-byte limit`,
      {
        bytes: body.byteLength,
        maxBytes,
      },
    );
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch (cause) {
    return fail(MALFORMED_REASONS.INVALID_UTF8, 'body is not valid UTF-8', {}, cause);
  }
  const data = parseJson(text, (reason, why, cause) => fail(reason, why, {}, cause));

  return {
    id: values.id,
    source: values.source,
    type: values.type,
    specversion: SPEC_VERSION,
    time: values.time,
    datacontenttype: contentType,
    schemaversion: Number(values.schemaversion),
    ...extensions,
    data,
  };
}

/** `application/json` or any `application/*+json`, with at most a UTF-8 charset parameter. */
export function isJsonContentType(contentType: string): boolean {
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

function parseJson(
  text: string,
  fail: (reason: MalformedReason, why: string, cause?: unknown) => never,
): unknown {
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
    return fail(
      MALFORMED_REASONS.INVALID_JSON,
      `body is not valid JSON: ${(cause as Error).message}`,
      cause,
    );
  }
  if (forbidden !== undefined) {
    return fail(MALFORMED_REASONS.FORBIDDEN_KEY, `body contains the forbidden key "${forbidden}"`);
  }
  return data;
}
