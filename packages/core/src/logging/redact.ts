/**
 * Secret redaction: the one place that decides what a secret looks like, used by Backtrack's
 * errors, its loggers, the adapters and the CLI, so that no connection password, SASL setting or
 * private key leaves the process in an error, a log line or a command's output.
 */

/** What a redacted secret is replaced with (a URL's password becomes `***`). */
export const REDACTED = '[redacted]';

/** Keys whose value is a secret wherever they appear (compared case-insensitively). */
const SECRET_KEYS = new Set(
  [
    'password',
    'passwd',
    'passphrase',
    'pfx',
    'secret',
    'clientSecret',
    'secretAccessKey',
    'sessionToken',
    'accessToken',
    'oauthBearerToken',
    'authorization',
    'privateKey',
    'apiKey',
  ].map((k) => k.toLowerCase()),
);

/** Under these keys (TLS settings), `key` is a private key. */
const TLS_PARENTS = new Set(['ssl', 'tls', 'socketoptions']);
/** Fields of a SASL setting that are not secret; every other field is. */
const SASL_PUBLIC = new Set(['mechanism', 'username', 'authorizationidentity']);
/** Redis commands whose arguments carry credentials (ioredis puts `command.args` on errors). */
const AUTH_COMMANDS = /^(auth|hello|migrate)$/i;

const PEM_PRIVATE_KEY =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
// `password=...` in a query string or a libpq key/value connection string (quoted or not).
const KEY_VALUE_SECRET =
  /\b(password|passwd|pwd|sslpassword|passphrase|secret|access_token|accesstoken)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s"'`;,]+)/gi;
// `"password":"..."` inside JSON text (a log line, a stringified options object).
const JSON_SECRET =
  /("(?:password|passwd|passphrase|pfx|secret|clientSecret|secretAccessKey|sessionToken|accessToken|oauthBearerToken|authorization|privateKey|apiKey)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;
// ioredis' `command` of a failed AUTH or HELLO, serialized.
const JSON_AUTH_COMMAND = /("name"\s*:\s*"(?:auth|hello|migrate)"\s*,\s*"args"\s*:\s*)\[[^\]]*\]/gi;
const SCHEME = /[a-z][a-z0-9+.-]*:\/\//gi;
const TOKEN_END = /[\s"'`<>]/;

/**
 * The text with every secret it carries hidden: the password of each
 * `scheme://user:password@host` URL (`scheme://user:***@host`: the user name stays), `password=` parameters of query
 * strings and connection strings, `"password": "..."` fields of JSON text and PEM private keys.
 * Cheap when there is nothing to hide.
 */
export function redactText(text: string): string {
  let out = text.includes('://') ? redactUrlCredentials(text) : text;
  if (out.includes('PRIVATE KEY-----')) out = out.replace(PEM_PRIVATE_KEY, REDACTED);
  if (out.includes('=')) out = out.replace(KEY_VALUE_SECRET, `$1$2${REDACTED}`);
  if (out.includes('"')) {
    out = out.replace(JSON_SECRET, `$1"${REDACTED}"`);
    out = out.replace(JSON_AUTH_COMMAND, `$1["${REDACTED}"]`);
  }
  return out;
}

/**
 * Hides the password in the user info of every URL in `text`. The user info runs to the LAST
 * `@` of the URL, so a password with an unencoded `@` or `/` is hidden whole.
 */
function redactUrlCredentials(text: string): string {
  let out = '';
  let last = 0;
  for (const match of text.matchAll(SCHEME)) {
    const start = match.index + match[0].length;
    if (start < last) continue;
    let end = start;
    while (end < text.length && !TOKEN_END.test(text[end]!)) end += 1;
    const token = text.slice(start, end);
    const at = token.lastIndexOf('@');
    const colon = at < 0 ? -1 : token.indexOf(':');
    // No `user:password@` (a `/` before the colon: the `@` is in a path, not credentials).
    if (colon < 0 || colon > at || token.slice(0, colon).includes('/')) continue;
    out += `${text.slice(last, start)}${token.slice(0, colon)}:***${token.slice(at)}`;
    last = end;
  }
  return last === 0 ? text : out + text.slice(last);
}

/**
 * A copy of `value` with secrets hidden: strings through {@link redactText}; the values of
 * secret keys (`password`, `passphrase`, `pfx`, `accessToken`, ...), of `key` under `ssl`/`tls`,
 * and of every SASL field but `mechanism` and `username` replaced by {@link REDACTED}. Plain
 * objects and arrays are copied (only where something changed); other objects are kept as they
 * are, errors are scrubbed in place with {@link redactError}.
 */
export function redactSecrets<T>(value: T): T {
  // The common case (an error's details): a plain object of strings and numbers. No walk state
  // (a WeakMap costs more to collect than the whole check).
  if (isFlatPlainObject(value)) return redactFlat(value) as T;
  return redactValue(value, undefined, new WeakMap(), 0) as T;
}

function isFlatPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) return false;
    const item = (value as Record<string, unknown>)[key];
    if (typeof item === 'object' && item !== null) return false;
  }
  return true;
}

/** {@link redactFresh} of a flat plain object: the same result, without the walk. */
function redactFlat(record: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(record)) {
    const next = isSecretKey(key, undefined, record)
      ? item === undefined || item === null
        ? item
        : REDACTED
      : typeof item === 'string'
        ? redactText(item)
        : item;
    if (next !== item) (copy ??= { ...record })[key] = next;
  }
  return copy ?? record;
}

/** How deep the walk goes; anything deeper is replaced, never passed through unredacted. */
const MAX_DEPTH = 16;
const TOO_DEEP = `[deeper than ${MAX_DEPTH} levels]`;
const CIRCULAR = '[Circular]';

/**
 * `done` maps each object already walked to what it became, so an object reached twice (a step
 * result shown in a record and in its timeline) is redacted both times; while an object is being
 * walked it maps to {@link CIRCULAR}, so a cycle never hands the original back.
 */
function redactValue(
  value: unknown,
  parent: string | undefined,
  done: WeakMap<object, unknown>,
  depth: number,
): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (done.has(value)) return done.get(value);
  if (depth > MAX_DEPTH) return TOO_DEEP;
  if (value instanceof Error) {
    done.set(value, value);
    return scrubError(value, done, depth);
  }
  done.set(value, CIRCULAR);
  const result = redactFresh(value, parent, done, depth);
  done.set(value, result);
  return result;
}

function redactFresh(
  value: object,
  parent: string | undefined,
  done: WeakMap<object, unknown>,
  depth: number,
): unknown {
  if (Array.isArray(value)) {
    let changed = false;
    const copy = value.map((item) => {
      const next = redactValue(item, parent, done, depth + 1);
      if (next !== item) changed = true;
      return next;
    });
    return changed ? copy : value;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(record)) {
    const next = isSecretKey(key, parent, record)
      ? item === undefined || item === null
        ? item
        : REDACTED
      : redactValue(item, key.toLowerCase(), done, depth + 1);
    if (next !== item) (copy ??= { ...record })[key] = next;
  }
  return copy ?? value;
}

function isSecretKey(
  key: string,
  parent: string | undefined,
  record: Record<string, unknown>,
): boolean {
  const k = key.toLowerCase();
  if (SECRET_KEYS.has(k)) return true;
  if (parent === 'sasl') return !SASL_PUBLIC.has(k);
  if (k === 'key' && parent !== undefined && TLS_PARENTS.has(parent)) return true;
  if (k === 'args') return typeof record.name === 'string' && AUTH_COMMANDS.test(record.name);
  // A config error's `{ field, value }`: the bad value of a secret option is not echoed.
  if (k === 'value' && typeof record.field === 'string') {
    const segments = record.field
      .toLowerCase()
      .split(/[.[\]]+/)
      .filter(Boolean);
    const name = segments.at(-1) ?? '';
    const owner = segments.at(-2);
    return (
      SECRET_KEYS.has(name) ||
      (owner === 'sasl' && !SASL_PUBLIC.has(name)) ||
      (name === 'key' && owner !== undefined && TLS_PARENTS.has(owner)) ||
      name === 'sasl'
    );
  }
  return false;
}

/**
 * Hides the secrets an error carries, in place (its identity, class and `code` stay): the
 * message and stack through {@link redactText}, its own fields through {@link redactSecrets}, and
 * the same for its `cause` chain and an `AggregateError`'s errors. Returns the error.
 */
export function redactError<T>(error: T): T {
  if (error instanceof Error) scrubError(error, new WeakMap([[error, error]]), 0);
  return error;
}

function scrubError(error: Error, seen: WeakMap<object, unknown>, depth: number): Error {
  const self = error as unknown as Record<string, unknown>;
  let messageChanged = false;
  for (const key of new Set([...Object.keys(error), 'message', 'cause', 'errors'])) {
    const changed = scrubField(error, key, seen, depth);
    if (key === 'message') messageChanged = changed;
  }
  // Reading `stack` formats it (costly), and it only repeats the message: scrub it when the
  // message had something to hide.
  if (messageChanged && !Object.keys(error).includes('stack'))
    scrubField(error, 'stack', seen, depth);
  return error;

  function scrubField(
    target: Error,
    key: string,
    seen: WeakMap<object, unknown>,
    depth: number,
  ): boolean {
    const descriptor = Object.getOwnPropertyDescriptor(target, key);
    if (!descriptor) return false;
    // `stack` is an accessor on some V8 versions: read and write it through the property.
    const accessor = !('value' in descriptor);
    if (accessor && !descriptor.set) return false;
    const value = accessor ? self[key] : (descriptor.value as unknown);
    if (value === undefined || value === null) return false;
    const next = isSecretKey(key, undefined, self)
      ? REDACTED
      : redactValue(value, key.toLowerCase(), seen, depth + 1);
    if (next === value) return false;
    try {
      if (accessor) self[key] = next;
      else Object.defineProperty(target, key, { ...descriptor, value: next });
    } catch {
      // a frozen error: leave it
    }
    return true;
  }
}

/**
 * Top-level paths pino's `redact` censors. Deeper secrets are found by the `formatters.log` of
 * {@link redactionLoggerOptions} instead: pino's wildcard paths (`*.password`) cost about five
 * times a plain log line, a walk with {@link redactSecrets} about half of one.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'password',
  'passphrase',
  'pfx',
  'ssl.key',
  'tls.key',
  'sasl.password',
  'sasl.accessToken',
  'sasl.secretAccessKey',
  'sasl.sessionToken',
]);

/**
 * pino options that keep secrets out of every line a logger writes: `redact` censors
 * {@link REDACT_PATHS}, `formatters.log` passes each logged object through {@link redactSecrets}
 * (secret fields at any depth, TLS keys in Buffers, errors scrubbed), and a `streamWrite` hook
 * passes each finished line through {@link redactText} (URL passwords, `password=` parameters,
 * PEM keys, in messages, bindings and serialized errors alike). Backtrack's default logger and
 * the CLI's use them; spread them into your own `pino({...})` to get the same (if you have a
 * `formatters.log` of your own, call `redactSecrets` in it).
 *
 * @example
 * const logger = pino({ level: 'info', ...redactionLoggerOptions() });
 */
export function redactionLoggerOptions(): {
  redact: { paths: string[]; censor: string };
  formatters: { log: (object: Record<string, unknown>) => Record<string, unknown> };
  hooks: { streamWrite: (line: string) => string };
} {
  return {
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    formatters: { log: redactSecrets },
    hooks: { streamWrite: redactText },
  };
}
