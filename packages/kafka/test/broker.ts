/**
 * Where the Kafka integration tests find a broker.
 *
 * 1. `KAFKA_BROKERS` set: that broker (comma-separated `host:port` list), probed like every other
 *    service in `test/support/services.ts`.
 * 2. Otherwise 127.0.0.1:9092, the broker `bash scripts/kafka/start` runs (Apache Kafka from Maven
 *    Central, see packages/kafka/README.md).
 * 3. Nothing answers there, CI is not set and a Docker engine is reachable: a throw-away broker
 *    from testcontainers' Kafka module (Confluent Platform 8.x = Apache Kafka 4.x, KRaft).
 * 4. Neither: the file skips with a loud message on a developer machine and FAILS under CI=true.
 *
 * Use it at the top level of a test file:
 * ```ts
 * const kafka = await kafkaBroker();
 * describe.skipIf(!kafka.available)('...', () => { ... });
 * afterAll(() => kafka.stop());
 * ```
 */
import { existsSync } from 'node:fs';
import { canConnect, probeService } from '../../../test/support/services.js';

export interface KafkaTestBroker {
  /** Bootstrap brokers, `host:port`. Empty when `available` is false. */
  brokers: string[];
  available: boolean;
  /** Where the broker came from. */
  source: 'env' | 'local' | 'testcontainers' | 'none';
  /** Stops a broker this helper started (testcontainers); a no-op otherwise. */
  stop(): Promise<void>;
}

/** The Confluent Platform image used when testcontainers starts the broker (Kafka 4.1). */
export const KAFKA_TEST_IMAGE = process.env.KAFKA_TEST_IMAGE ?? 'confluentinc/cp-kafka:8.1.0';

const noop = async (): Promise<void> => {};

function dockerReachable(): boolean {
  if (process.env.DOCKER_HOST) return true;
  return ['/var/run/docker.sock', `${process.env.HOME ?? ''}/.docker/run/docker.sock`].some((p) =>
    existsSync(p),
  );
}

function isCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

let shared: Promise<KafkaTestBroker> | undefined;

/** Finds (or, with Docker, starts) a Kafka broker for this test file. Memoised per module. */
export function kafkaBroker(): Promise<KafkaTestBroker> {
  shared ??= resolveBroker();
  return shared;
}

async function resolveBroker(): Promise<KafkaTestBroker> {
  const fromEnv = process.env.KAFKA_BROKERS;
  if (fromEnv) {
    const info = await probeService('kafka');
    return {
      brokers: fromEnv
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      available: info.available,
      source: info.available ? 'env' : 'none',
      stop: noop,
    };
  }
  if (await canConnect('127.0.0.1', 9092)) {
    return { brokers: ['127.0.0.1:9092'], available: true, source: 'local', stop: noop };
  }
  if (!isCi() && dockerReachable()) {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const container = await new KafkaContainer(KAFKA_TEST_IMAGE).start();
    const broker = `${container.getHost()}:${container.getMappedPort(9093)}`;
    return {
      brokers: [broker],
      available: true,
      source: 'testcontainers',
      stop: async () => {
        await container.stop();
      },
    };
  }
  // Throws under CI=true; warns loudly and reports unavailable elsewhere.
  const info = await probeService('kafka');
  return {
    brokers: info.available ? [`${info.host}:${info.port}`] : [],
    available: info.available,
    source: info.available ? 'local' : 'none',
    stop: noop,
  };
}
