import { ConnectionAccessError, type AccessFailureReason } from '@backtrack/core';
import { errorChain, tlsFailureOf, accessCodeOf } from '@backtrack/core/adapter';

/**
 * Codes of {@link RedisAccessError} (listed in docs/errors.md): bad credentials, missing ACL
 * permissions and certificates that do not verify. Never retriable.
 */
export const REDIS_ACCESS_ERROR_CODES = {
  /** `WRONGPASS`/`NOAUTH`: wrong user name or password, disabled user, or no credentials. */
  AUTHENTICATION_FAILED: 'BT_ERR_REDIS_AUTHENTICATION_FAILED',
  /** `NOPERM`: the ACL user may not run that command or touch those keys (key prefix). */
  NOT_AUTHORIZED: 'BT_ERR_REDIS_NOT_AUTHORIZED',
  /** The TLS handshake failed on a certificate (untrusted, expired, other host, mTLS refused). */
  TLS_FAILED: 'BT_ERR_REDIS_TLS_FAILED',
} as const;

/** Redis refused the client for a reason retrying cannot fix (see {@link ConnectionAccessError}). */
export class RedisAccessError extends ConnectionAccessError {
  static override readonly brand: string = '@backtrack/redis.RedisAccessError';
  constructor(
    reason: AccessFailureReason,
    detail: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(
      accessCodeOf(reason, REDIS_ACCESS_ERROR_CODES),
      'redis',
      reason,
      `redis: ${detail}`,
      options,
    );
  }
}

/** Maps an ioredis error to a {@link RedisAccessError}, or undefined when it is something else. */
export function classifyRedisError(error: unknown): RedisAccessError | undefined {
  for (const e of errorChain(error)) {
    if (e instanceof RedisAccessError) return e;
    const message = e instanceof Error ? e.message : '';
    if (/^(WRONGPASS|NOAUTH)\b/.test(message)) {
      return new RedisAccessError(
        'authentication',
        'authentication failed: wrong user name or password, or the user is disabled (check the URL credentials)',
        { cause: error },
      );
    }
    if (/^NOPERM\b/.test(message)) {
      return new RedisAccessError(
        'authorization',
        "not authorized: the ACL user may not run this command or touch these keys (check the user's ACL and the store's keyPrefix)",
        { cause: error },
      );
    }
  }
  const failure = tlsFailureOf(error);
  if (failure === undefined) return undefined;
  return new RedisAccessError(failure.reason, `TLS failed: ${failure.detail}`, {
    cause: error,
    details: { tlsCode: failure.tlsCode },
  });
}

interface Watchable {
  on(event: 'error', listener: (error: unknown) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
}

const lastDenied = new WeakMap<object, RedisAccessError>();
const watched = new WeakSet<object>();
/** Sockets whose later `error` events are absorbed (see `watchRedisAccess`). */
const absorbing = new WeakSet<object>();

/**
 * Remembers a client's last connection-level access failure (ioredis reports a failed TLS
 * handshake or AUTH only as an `error` event; the command itself fails with a generic
 * "max retries" error). Cleared when the client is ready again. Idempotent per client.
 *
 * Also keeps a failed socket from crashing the process: ioredis listens to its socket's first
 * `error` only (`stream.once`, redis/ioredis#961), and a TLS socket can emit a second one after a
 * failed handshake (the server's alert, e.g. `ERR_SSL_TLSV1_ALERT_DECODE_ERROR`), which Node
 * would throw as an uncaught exception. The client has reported the failure by then (this
 * listener runs inside that report, before the socket's next event), so the socket's later
 * errors are dropped; ioredis still reconnects on its `close`.
 */
export function watchRedisAccess(client: object): void {
  if (watched.has(client) || typeof (client as Partial<Watchable>).on !== 'function') return;
  watched.add(client);
  const c = client as Watchable;
  c.on('error', (error) => {
    const denied = classifyRedisError(error);
    if (denied) lastDenied.set(client, denied);
    const stream = (client as { stream?: { on?: unknown } }).stream;
    if (stream && typeof stream.on === 'function' && !absorbing.has(stream)) {
      absorbing.add(stream);
      (stream as Watchable).on('error', () => undefined);
    }
  });
  c.on('ready', () => lastDenied.delete(client));
}

/** The access failure a watched client saw last, while it is not connected. */
export function redisAccessFailure(client: object | undefined): RedisAccessError | undefined {
  if (client === undefined) return undefined;
  const status = (client as { status?: unknown }).status;
  return status === 'ready' ? undefined : lastDenied.get(client);
}
