import net from 'node:net';
import tls from 'node:tls';
import { ConnectionAccessError, type AccessFailureReason } from '@backtrack/core';
import { errorChain, tlsFailureOf, accessCodeOf } from '@backtrack/core/adapter';
import type { ISocketFactory } from 'kafkajs';

/**
 * Codes of {@link KafkaAccessError} (listed in docs/errors.md): bad credentials, missing ACLs and
 * certificates that do not verify. Never retriable.
 */
export const KAFKA_ACCESS_ERROR_CODES = {
  /** SASL authentication failed: wrong user name, password or mechanism. */
  AUTHENTICATION_FAILED: 'BT_ERR_KAFKA_AUTHENTICATION_FAILED',
  /** An ACL does not allow the operation on the topic, group, cluster or transactional id. */
  NOT_AUTHORIZED: 'BT_ERR_KAFKA_NOT_AUTHORIZED',
  /** The TLS handshake failed on a certificate (untrusted, expired, other host, mTLS refused). */
  TLS_FAILED: 'BT_ERR_KAFKA_TLS_FAILED',
} as const;

/** The broker refused the client for a reason retrying cannot fix (see {@link ConnectionAccessError}). */
export class KafkaAccessError extends ConnectionAccessError {
  static override readonly brand: string = '@backtrack/kafka.KafkaAccessError';
  constructor(
    reason: AccessFailureReason,
    detail: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(
      accessCodeOf(reason, KAFKA_ACCESS_ERROR_CODES),
      'kafka',
      reason,
      `kafka: ${LABEL[reason]}: ${detail}`,
      options,
    );
  }
}

const LABEL: Record<AccessFailureReason, string> = {
  authentication: 'authentication failed',
  authorization: 'not authorized',
  'tls-untrusted': 'TLS certificate not trusted',
  'tls-expired': 'TLS certificate expired',
  'tls-hostname': 'TLS certificate host name mismatch',
  'tls-rejected': 'TLS client certificate rejected',
};

// Kafka protocol error codes and kafkajs' names for them.
const AUTHORIZATION = new Map<string, string>([
  ['TOPIC_AUTHORIZATION_FAILED', 'topic'],
  ['GROUP_AUTHORIZATION_FAILED', 'consumer group'],
  ['CLUSTER_AUTHORIZATION_FAILED', 'cluster'],
  ['TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'transactional id'],
]);
const AUTHORIZATION_CODES = new Map<number, string>([
  [29, 'topic'],
  [30, 'consumer group'],
  [31, 'cluster'],
  [53, 'transactional id'],
]);

/**
 * Maps what kafkajs threw to a {@link KafkaAccessError} when it is an access failure (SASL
 * authentication, an ACL, a certificate), or undefined for anything else (outages stay retriable).
 */
export function classifyKafkaError(error: unknown): KafkaAccessError | undefined {
  for (const e of errorChain(error)) {
    if (e instanceof KafkaAccessError) return e;
    const o = e as { name?: unknown; type?: unknown; code?: unknown; retriable?: unknown };
    if (o.name === 'KafkaJSSASLAuthenticationError' || o.type === 'SASL_AUTHENTICATION_FAILED') {
      return new KafkaAccessError(
        'authentication',
        'the broker rejected the SASL credentials (check sasl.username, password and mechanism)',
        { cause: error },
      );
    }
    const resource =
      (typeof o.type === 'string' ? AUTHORIZATION.get(o.type) : undefined) ??
      (typeof o.code === 'number' ? AUTHORIZATION_CODES.get(o.code) : undefined);
    if (resource !== undefined) {
      return new KafkaAccessError(
        'authorization',
        `an ACL does not allow this client on the ${resource} (ask for the right, or use another ${resource})`,
        { cause: error, details: { resource } },
      );
    }
    // kafkajs reports GROUP_AUTHORIZATION_FAILED on FindCoordinator only as this, non-retriable.
    if (o.name === 'KafkaJSGroupCoordinatorNotFound' && o.retriable === false) {
      return new KafkaAccessError(
        'authorization',
        'the broker refused to find a coordinator for the consumer group (an ACL on the group is missing)',
        { cause: error, details: { resource: 'consumer group' } },
      );
    }
  }
  const failure = tlsFailureOf(error);
  if (failure === undefined) return undefined;
  return new KafkaAccessError(failure.reason, failure.detail, {
    cause: error,
    details: { tlsCode: failure.tlsCode },
  });
}

/**
 * Reports certificate failures of any connection of one kafkajs client as they happen. kafkajs
 * retries a failed TLS handshake like an outage (for many seconds); with this, `connect` fails at
 * the first handshake that cannot verify. Use {@link socketFactory} as the client's socket factory.
 */
export class KafkaTlsWatch {
  #last: KafkaAccessError | undefined;
  readonly #waiters = new Set<(error: KafkaAccessError) => void>();

  /** kafkajs' default socket factory plus the watch. */
  readonly socketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    const socket = ssl
      ? tls.connect(
          {
            host,
            port,
            ...(net.isIP(host) ? {} : { servername: host }),
            ...(typeof ssl === 'object' ? ssl : {}),
          },
          onConnect,
        )
      : net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    socket.on('error', (error) => {
      const failure = tlsFailureOf(error);
      if (failure === undefined) return;
      this.#last = new KafkaAccessError(failure.reason, failure.detail, {
        cause: error,
        details: { tlsCode: failure.tlsCode, broker: `${host}:${port}` },
      });
      for (const w of this.#waiters) w(this.#last);
    });
    return socket;
  };

  /**
   * Runs `connecting`, failing at once with the certificate error when one of the client's
   * handshakes fails meanwhile; any access failure it throws is classified.
   */
  async guard<T>(connecting: Promise<T>): Promise<T> {
    let waiter!: (error: KafkaAccessError) => void;
    const failed = new Promise<never>((_, reject) => (waiter = reject));
    this.#waiters.add(waiter);
    connecting.catch(() => {}); // may lose the race and fail later
    try {
      return await Promise.race([connecting, failed]);
    } catch (error) {
      throw classifyKafkaError(error) ?? error;
    } finally {
      this.#waiters.delete(waiter);
    }
  }
}
