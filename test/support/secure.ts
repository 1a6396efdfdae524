/**
 * The secured services of scripts/secure/start (TLS everywhere, credentials, ACLs), for the
 * tests in test/integration/secure. `secureServices()` runs the start script (idempotent: a few
 * seconds when they are up) and reads what it wrote to .cache/secure/connection.json.
 *
 * Under CI=true a service that does not come up fails the test file; elsewhere the file skips
 * with a loud message (the same rule as services.ts).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isCI } from './services.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const START = fileURLToPath(new URL('../../scripts/secure/start', import.meta.url));
const CONNECTION = fileURLToPath(new URL('../../.cache/secure/connection.json', import.meta.url));

export interface SecureConnection {
  certs: {
    dir: string;
    ca: string;
    rogueCa: string;
    clientCert: string;
    clientKey: string;
    rogueClientCert: string;
    rogueClientKey: string;
  };
  redis: {
    host: string;
    port: number;
    user: string;
    password: string;
    adminUser: string;
    adminPassword: string;
    keyPrefix: string;
  };
  rabbitmq: {
    host: string;
    port: number;
    vhost: string;
    user: string;
    password: string;
    namePrefix: string;
  };
  kafka: {
    broker: string;
    adminBroker: string;
    mechanism: 'scram-sha-512';
    user: string;
    revocableUser: string;
    password: string;
    namePrefix: string;
  };
  postgres: {
    host: string;
    port: number;
    database: string;
    user: string;
    password: string;
    certUser: string;
    adminUser: string;
    adminPassword: string;
    schema: string;
  };
}

export interface SecureServices {
  available: boolean;
  conn: SecureConnection;
  /** PEM bytes of a file of `certs`. */
  pem(name: keyof SecureConnection['certs']): Buffer;
  redisUrl(password?: string, user?: string): string;
  amqpsUrl(password?: string, vhost?: string): string;
  postgresUrl(options?: { password?: string; root?: string; user?: string }): string;
}

let started: Promise<boolean> | undefined;

/** Starts (or finds) the secured services. */
export async function secureServices(): Promise<SecureServices> {
  started ??= promisify(execFile)('bash', [START], { cwd: ROOT, timeout: 300_000 }).then(
    () => true,
    (error: { stderr?: string; message: string }) => {
      const why = `scripts/secure/start failed: ${error.stderr?.trim() || error.message}`;
      if (isCI()) throw new Error(`${why} (CI=true: secured-service tests never skip)`);
      console.warn(`\n!!! secure integration tests SKIPPED: ${why}\n`);
      return false;
    },
  );
  const available = await started;
  const conn = available
    ? (JSON.parse(readFileSync(CONNECTION, 'utf8')) as SecureConnection)
    : (undefined as unknown as SecureConnection);
  const enc = encodeURIComponent;
  return {
    available,
    conn,
    pem: (name) => readFileSync(conn.certs[name]),
    redisUrl: (password = conn.redis.password, user = conn.redis.user) =>
      `rediss://${enc(user)}:${enc(password)}@localhost:${conn.redis.port}`,
    amqpsUrl: (password = conn.rabbitmq.password, vhost = conn.rabbitmq.vhost) =>
      `amqps://${enc(conn.rabbitmq.user)}:${enc(password)}@localhost:${conn.rabbitmq.port}/${enc(vhost)}`,
    postgresUrl: ({
      password = conn.postgres.password,
      root = conn.certs.ca,
      user = conn.postgres.user,
    } = {}) =>
      `postgres://${enc(user)}:${enc(password)}@${conn.postgres.host}:${conn.postgres.port}/${conn.postgres.database}?sslmode=verify-full&sslrootcert=${enc(root)}`,
  };
}
