/**
 * Where the integration tests find the real services, and what happens when one is missing.
 *
 * Each service URL comes from an environment variable, with the project machines' defaults.
 * A service that does not answer at its default address, with its variable unset, outside CI
 * and with a Docker engine reachable, is started for the test file by testcontainers (Redis,
 * RabbitMQ, PostgreSQL here; Kafka in packages/kafka/test/broker.ts) and its variable set to
 * the container's URL. That path is not exercised on the project machines (no Docker there).
 * Otherwise a missing service makes the test file skip with a loud message on a developer's
 * machine, and FAIL under CI=true: integration tests never skip in CI.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';

export interface ServiceInfo {
  name: ServiceName;
  url: string;
  host: string;
  port: number;
  available: boolean;
}

export type ServiceName = 'redis' | 'rabbitmq' | 'postgres' | 'kafka';

const DEFAULTS: Record<ServiceName, { env: string; url: string }> = {
  redis: { env: 'REDIS_URL', url: 'redis://127.0.0.1:6379' },
  rabbitmq: { env: 'AMQP_URL', url: 'amqp://guest:guest@127.0.0.1:5672' },
  postgres: { env: 'DATABASE_URL', url: 'postgres://postgres@127.0.0.1:5432/test' },
  kafka: { env: 'KAFKA_BROKERS', url: '127.0.0.1:9092' },
};

export function serviceUrl(name: ServiceName): string {
  const d = DEFAULTS[name];
  return process.env[d.env] ?? d.url;
}

function hostPort(name: ServiceName, url: string): { host: string; port: number } {
  if (name === 'kafka') {
    const first = url.split(',')[0]!.trim();
    const [host, port] = first.split(':');
    return { host: host ?? '127.0.0.1', port: Number(port ?? 9092) };
  }
  const u = new URL(url);
  const fallback = { redis: 6379, rabbitmq: 5672, postgres: 5432 }[name];
  return { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : fallback };
}

export function canConnect(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * The one rule for "running in CI", shared by the service probe, the CLI tests and
 * scripts/test-all: CI=true or CI=1 (what CI systems set). Under CI, integration tests never skip.
 */
export function isCI(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/**
 * Probes a service. Under CI=true a missing service throws (the test file fails); elsewhere it
 * prints a loud warning and returns `available: false` so the caller can `describe.skipIf`.
 */
export async function probeService(name: ServiceName): Promise<ServiceInfo> {
  let url = serviceUrl(name);
  let { host, port } = hostPort(name, url);
  let available = await canConnect(host, port);
  if (!available && name !== 'kafka' && !process.env[DEFAULTS[name].env] && !isCI()) {
    const started = await startContainer(name);
    if (started) {
      process.env[DEFAULTS[name].env] = url = started;
      ({ host, port } = hostPort(name, url));
      available = true;
    }
  }
  if (!available) {
    const message = `${name} is not reachable at ${url} (set ${DEFAULTS[name].env})`;
    if (isCI()) {
      throw new Error(`${message}: integration tests never skip under CI=true`);
    }
    console.warn(`\n!!!!!!!!!! SKIPPING ${name} integration tests: ${message} !!!!!!!!!!\n`);
  }
  return { name, url, host, port, available };
}

/** Images testcontainers starts, overridable like KAFKA_TEST_IMAGE. */
const IMAGES = {
  redis: process.env.REDIS_TEST_IMAGE ?? 'redis:7.4',
  rabbitmq: process.env.RABBITMQ_TEST_IMAGE ?? 'rabbitmq:4.1-management',
  postgres: process.env.POSTGRES_TEST_IMAGE ?? 'postgres:17',
};

function dockerReachable(): boolean {
  if (process.env.DOCKER_HOST) return true;
  return ['/var/run/docker.sock', `${process.env.HOME ?? ''}/.docker/run/docker.sock`].some((p) =>
    existsSync(p),
  );
}

/**
 * Starts a throw-away container for the service and resolves with its URL, or undefined when
 * Docker is not there or the start fails (the caller then skips loudly). testcontainers' reaper
 * removes the container when the test process ends.
 */
async function startContainer(name: Exclude<ServiceName, 'kafka'>): Promise<string | undefined> {
  if (!dockerReachable()) return undefined;
  try {
    if (name === 'redis') {
      const { RedisContainer } = await import('@testcontainers/redis');
      return (await new RedisContainer(IMAGES.redis).start()).getConnectionUrl();
    }
    if (name === 'rabbitmq') {
      const { RabbitMQContainer } = await import('@testcontainers/rabbitmq');
      return (await new RabbitMQContainer(IMAGES.rabbitmq).start()).getAmqpUrl();
    }
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer(IMAGES.postgres)
      .withDatabase('test')
      .withUsername('postgres')
      .start();
    return container.getConnectionUri();
  } catch (error) {
    console.warn(`testcontainers could not start ${name}: ${(error as Error).message}`);
    return undefined;
  }
}

/** A name unique to this test run, for topics, queues, key prefixes and tables. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
