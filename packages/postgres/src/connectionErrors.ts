import { ConnectionAccessError, type AccessFailureReason } from '@backtrack/core';
import { errorChain, tlsFailureOf, accessCodeOf } from '@backtrack/core/adapter';

/**
 * Codes of {@link PostgresAccessError} (listed in docs/errors.md): bad credentials, missing
 * privileges and certificates that do not verify. Never retriable.
 */
export const POSTGRES_ACCESS_ERROR_CODES = {
  /** SQLSTATE 28P01/28000: wrong password, no pg_hba.conf entry, or a refused client certificate. */
  AUTHENTICATION_FAILED: 'BT_ERR_PG_AUTHENTICATION_FAILED',
  /** SQLSTATE 42501: the role lacks a privilege on the schema, table or database. */
  NOT_AUTHORIZED: 'BT_ERR_PG_NOT_AUTHORIZED',
  /** The TLS handshake failed on a certificate (untrusted, expired, other host, mTLS refused). */
  TLS_FAILED: 'BT_ERR_PG_TLS_FAILED',
} as const;

/** PostgreSQL refused the client for a reason retrying cannot fix (see {@link ConnectionAccessError}). */
export class PostgresAccessError extends ConnectionAccessError {
  static override readonly brand: string = '@backtrack/postgres.PostgresAccessError';
  constructor(
    reason: AccessFailureReason,
    detail: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(
      accessCodeOf(reason, POSTGRES_ACCESS_ERROR_CODES),
      'postgres',
      reason,
      `postgres: ${detail}`,
      options,
    );
  }
}

/** Maps a `pg` error to a {@link PostgresAccessError}, or undefined when it is something else. */
export function classifyPostgresError(error: unknown): PostgresAccessError | undefined {
  for (const e of errorChain(error)) {
    if (e instanceof PostgresAccessError) return e;
    const code = (e as { code?: unknown } | null)?.code;
    if (code === '28P01' || code === '28000') {
      return new PostgresAccessError(
        'authentication',
        'authentication failed: wrong user name or password, or no pg_hba.conf entry allows this connection (check the URL credentials and sslmode)',
        { cause: error, details: { sqlState: code } },
      );
    }
    if (code === '42501') {
      return new PostgresAccessError(
        'authorization',
        'not authorized: the role lacks a privilege on the schema or table (grant it, or set the store schema the role owns)',
        { cause: error, details: { sqlState: code } },
      );
    }
  }
  const failure = tlsFailureOf(error);
  if (failure === undefined) return undefined;
  return new PostgresAccessError(failure.reason, `TLS failed: ${failure.detail}`, {
    cause: error,
    details: { tlsCode: failure.tlsCode },
  });
}
