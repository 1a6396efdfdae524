import { ConnectionAccessError, type AccessFailureReason } from '@backtrack/core';
import { errorChain, tlsFailureOf, accessCodeOf } from '@backtrack/core/adapter';

/**
 * Codes of {@link RabbitAccessError} (listed in docs/errors.md): bad credentials, missing
 * permissions and certificates that do not verify. Never retriable.
 */
export const RABBIT_ACCESS_ERROR_CODES = {
  /** The broker refused the login (403 ACCESS_REFUSED at the handshake): user or password. */
  AUTHENTICATION_FAILED: 'BT_ERR_AMQP_AUTHENTICATION_FAILED',
  /** The user may not use the vhost, or configure/write/read that exchange or queue (403). */
  NOT_AUTHORIZED: 'BT_ERR_AMQP_NOT_AUTHORIZED',
  /** The TLS handshake failed on a certificate (untrusted, expired, other host, mTLS refused). */
  TLS_FAILED: 'BT_ERR_AMQP_TLS_FAILED',
} as const;

/** The broker refused the client for a reason retrying cannot fix (see {@link ConnectionAccessError}). */
export class RabbitAccessError extends ConnectionAccessError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitAccessError';
  constructor(
    reason: AccessFailureReason,
    detail: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(
      accessCodeOf(reason, RABBIT_ACCESS_ERROR_CODES),
      'rabbitmq',
      reason,
      `rabbitmq: ${detail}`,
      options,
    );
  }
}

/**
 * Maps what amqplib threw (or closed a connection or channel with) to a {@link RabbitAccessError}
 * when it is an access failure, or undefined for anything else (outages stay retriable).
 */
export function classifyRabbitError(error: unknown): RabbitAccessError | undefined {
  for (const e of errorChain(error)) {
    if (e instanceof RabbitAccessError) return e;
    const message = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
    if (/Handshake terminated by server: 403|Login was refused/.test(message)) {
      return new RabbitAccessError(
        'authentication',
        'authentication failed: the broker refused the login (check the user name and password)',
        { cause: error },
      );
    }
    // amqplib reports a refused vhost (530 NOT_ALLOWED at connection.open) only like this.
    if (
      /Expected ConnectionOpenOk; got <ConnectionClose|NOT_ALLOWED - access to vhost/.test(message)
    ) {
      return new RabbitAccessError(
        'authorization',
        'not authorized: the user may not use this vhost (check the vhost in the URL and its permissions)',
        { cause: error, details: { resource: 'vhost' } },
      );
    }
    const refused = /ACCESS_REFUSED - access to (\w+) '([^']*)' in vhost '([^']*)' refused/.exec(
      message,
    );
    if (refused || (e as { code?: unknown } | null)?.code === 403) {
      return new RabbitAccessError(
        'authorization',
        refused
          ? `not authorized: the user may not use ${refused[1]} '${refused[2]}' in vhost '${refused[3]}' (check its configure/write/read permissions)`
          : 'not authorized: the broker refused the operation (403 ACCESS_REFUSED)',
        {
          cause: error,
          details: refused ? { resource: refused[1], name: refused[2], vhost: refused[3] } : {},
        },
      );
    }
  }
  const failure = tlsFailureOf(error);
  if (failure === undefined) return undefined;
  return new RabbitAccessError(failure.reason, `TLS failed: ${failure.detail}`, {
    cause: error,
    details: { tlsCode: failure.tlsCode },
  });
}
