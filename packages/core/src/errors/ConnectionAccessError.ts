import { BacktrackError, type BacktrackErrorOptions } from './BacktrackError.js';

/**
 * Why a service refused a connection or an operation for good (until someone fixes the
 * configuration): retrying the same thing cannot succeed.
 *
 * - `authentication`: wrong user name or password (SASL, AMQP login, Redis AUTH, PostgreSQL).
 * - `authorization`: authenticated, but not allowed (ACL, vhost or schema permission).
 * - `tls-untrusted`: the server's certificate is not signed by a trusted CA.
 * - `tls-expired`: the server's certificate is expired or not yet valid.
 * - `tls-hostname`: the server's certificate is for another host name.
 * - `tls-rejected`: the server refused the client's certificate (mTLS) or required one.
 */
export type AccessFailureReason =
  | 'authentication'
  | 'authorization'
  | 'tls-untrusted'
  | 'tls-expired'
  | 'tls-hostname'
  | 'tls-rejected';

/** What {@link tlsFailureOf} found in an error. */
export interface AccessFailure {
  reason: AccessFailureReason;
  /** Short, secret-free explanation. */
  detail: string;
  /** The TLS/OpenSSL error code, when there is one. */
  tlsCode?: string;
}

const TLS_CODES: Record<string, AccessFailureReason> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'tls-untrusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'tls-untrusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'tls-untrusted',
  UNABLE_TO_GET_ISSUER_CERT: 'tls-untrusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'tls-untrusted',
  CERT_SIGNATURE_FAILURE: 'tls-untrusted',
  CERT_UNTRUSTED: 'tls-untrusted',
  CERT_REJECTED: 'tls-untrusted',
  CERT_HAS_EXPIRED: 'tls-expired',
  CERT_NOT_YET_VALID: 'tls-expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'tls-hostname',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'tls-rejected',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'tls-rejected',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'tls-rejected',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'tls-rejected',
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: 'tls-rejected',
};

const TLS_DETAIL: Record<string, string> = {
  'tls-untrusted': 'the server certificate is not signed by a trusted CA (check `ca`)',
  'tls-expired': 'the server certificate is expired or not yet valid',
  'tls-hostname':
    'the server certificate is for another host name (check the host or `servername`)',
  'tls-rejected':
    'the server rejected the client certificate (mTLS: check `cert`/`key` and the server CA)',
};

/** The errors in a chain: `cause`, kafkajs' `originalError`, `AggregateError.errors`. */
export function errorChain(error: unknown, limit = 8): unknown[] {
  const out: unknown[] = [];
  const queue = [error];
  while (queue.length > 0 && out.length < limit) {
    const e = queue.shift();
    if (e === undefined || e === null || out.includes(e)) continue;
    out.push(e);
    if (typeof e === 'object') {
      const o = e as { cause?: unknown; originalError?: unknown; errors?: unknown };
      queue.push(o.cause, o.originalError);
      if (Array.isArray(o.errors)) queue.push(...(o.errors as unknown[]));
    }
  }
  return out;
}

/**
 * The certificate failure in `error` (or its causes), by Node's TLS error codes, or undefined.
 * Clients that wrap socket errors keep the code (`code` or `cause.code`), which is what this reads.
 */
export function tlsFailureOf(error: unknown): AccessFailure | undefined {
  for (const e of errorChain(error)) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code in TLS_CODES) {
      const reason = TLS_CODES[code]!;
      return { reason, detail: TLS_DETAIL[reason]!, tlsCode: code };
    }
  }
  return undefined;
}

/**
 * A service refused the connection or the operation for a reason retrying cannot fix: bad
 * credentials, missing rights, or a certificate that does not verify. Never retriable, so
 * callers fail at once instead of reconnecting in a loop that looks like an outage; consumers
 * stop (or redeliver without dead-lettering) instead of losing messages. Each adapter has its own
 * subclass and codes (`BT_ERR_<SERVICE>_AUTHENTICATION_FAILED`, `..._NOT_AUTHORIZED`,
 * `..._TLS_FAILED`); `details.service` and `details.reason` say which and why, without secrets.
 */
export class ConnectionAccessError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.ConnectionAccessError';
  readonly service: string;
  readonly reason: AccessFailureReason;

  constructor(
    code: string,
    service: string,
    reason: AccessFailureReason,
    message: string,
    options: Omit<BacktrackErrorOptions, 'retriable'> = {},
  ) {
    super(code, message, {
      ...options,
      details: { service, reason, ...options.details },
      retriable: false,
    });
    this.service = service;
    this.reason = reason;
  }
}

/** The three codes an adapter gives its {@link ConnectionAccessError}s. */
export interface AccessErrorCodes {
  AUTHENTICATION_FAILED: string;
  NOT_AUTHORIZED: string;
  TLS_FAILED: string;
}

/** An adapter's code for a reason: one for authentication, one for authorization, one for TLS. */
export function accessCodeOf<C extends AccessErrorCodes>(
  reason: AccessFailureReason,
  codes: C,
): C[keyof AccessErrorCodes] {
  return reason === 'authentication'
    ? codes.AUTHENTICATION_FAILED
    : reason === 'authorization'
      ? codes.NOT_AUTHORIZED
      : codes.TLS_FAILED;
}

/** The {@link ConnectionAccessError} in `error` or its causes, if any. */
export function accessErrorOf(error: unknown): ConnectionAccessError | undefined {
  return errorChain(error).find(
    (e): e is ConnectionAccessError => e instanceof ConnectionAccessError,
  );
}
