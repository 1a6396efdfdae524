/**
 * Stopping and starting the real services from the fault suite, with exactly the settings the
 * project's machines start them with. Every stop in the suite is paired with a start in a
 * `finally` block; {@link ensureServices} runs before the suite and after it, so a failed or
 * interrupted scenario never leaves a service down for whoever runs next.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import { canConnect, serviceUrl } from '../../support/services.js';
import { ROOT, sleep } from './child.js';

const exec = promisify(execFile);

/**
 * The project machines' Redis command line: nothing on disk, so a restart loses every key. The
 * port follows REDIS_URL (6379 on the machines), so a developer can point the suite at a private
 * Redis instead of the one other test runs share.
 */
export const redisStartArgs = (port = ports.redis().port): string[] => [
  '--daemonize',
  'yes',
  '--bind',
  '127.0.0.1',
  '-::1',
  '--port',
  String(port),
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  '/var/lib/redis',
  '--logfile',
  '/var/log/redis/ci.log',
];

function hostPort(url: string, fallbackPort: number): { host: string; port: number } {
  if (!url.includes('://')) {
    const [host, port] = url.split(',')[0]!.trim().split(':');
    return { host: host || '127.0.0.1', port: Number(port ?? fallbackPort) };
  }
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : fallbackPort };
}

export const ports = {
  redis: () => hostPort(serviceUrl('redis'), 6379),
  rabbitmq: () => hostPort(serviceUrl('rabbitmq'), 5672),
  postgres: () => hostPort(serviceUrl('postgres'), 5432),
  kafka: () => hostPort(serviceUrl('kafka'), 9092),
};

export async function isUp(name: keyof typeof ports): Promise<boolean> {
  const { host, port } = ports[name]();
  return canConnect(host, port, 1000);
}

/** Polls until the port answers (or stops answering), for at most `timeoutMs`. */
export async function waitPort(
  name: keyof typeof ports,
  up: boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await isUp(name)) === up) return;
    await sleep(100);
  }
  throw new Error(`${name} did not ${up ? 'come up' : 'go down'} within ${timeoutMs} ms`);
}

async function run(cmd: string, args: string[], timeoutMs = 180_000): Promise<string> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { cwd: ROOT, timeout: timeoutMs });
    return `${stdout}${stderr}`;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`,
    );
  }
}

/**
 * Makes sure Redis, RabbitMQ, PostgreSQL and Kafka answer, starting any that does not with the
 * project's own scripts. Throws when one cannot be started: the fault suite never skips a
 * scenario for want of a service.
 */
export async function ensureServices(): Promise<void> {
  if (!(await isUp('postgres'))) await run('bash', ['scripts/services/ensure']);
  if (!(await isUp('redis'))) await startRedis();
  if (!(await isUp('rabbitmq'))) await startRabbit();
  if (!(await isUp('kafka'))) await startKafka();
  for (const name of ['redis', 'rabbitmq', 'postgres', 'kafka'] as const) {
    await waitPort(name, true, 60_000);
  }
  await checkAmqpHandshake();
}

/**
 * An open port is not a working broker: a RabbitMQ node out of file handles (every quorum queue
 * holds some; the default limit is 1024 descriptors) accepts TCP connections and never answers
 * the AMQP handshake. Fail the suite at once with the reason rather than time out scenario by
 * scenario.
 */
export async function checkAmqpHandshake(timeoutMs = 20_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = amqplib.connect(serviceUrl('rabbitmq')).then(async (c) => {
    await c.close();
    return true;
  });
  const ok = await Promise.race([
    attempt,
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ]).finally(() => clearTimeout(timer));
  if (!ok) {
    attempt.then(
      (c) => c,
      () => undefined,
    );
    throw new Error(
      `RabbitMQ accepts TCP on ${serviceUrl('rabbitmq')} but did not complete an AMQP handshake in ${timeoutMs} ms; ` +
        'check `rabbitmqctl eval "file_handle_cache:info()."` (leftover queues exhaust its file handles) and `rabbitmq-diagnostics alarms`',
    );
  }
}

/** `redis-cli shutdown nosave`: every key is gone (the server keeps nothing on disk). */
export async function stopRedis(): Promise<void> {
  const { port } = ports.redis();
  await run('redis-cli', ['-p', String(port), 'shutdown', 'nosave']).catch(() => undefined);
  await waitPort('redis', false, 20_000);
}

export async function startRedis(): Promise<void> {
  if (await isUp('redis')) return;
  await run('mkdir', ['-p', '/var/lib/redis', '/var/log/redis']);
  await run('redis-server', redisStartArgs());
  await waitPort('redis', true, 30_000);
}

/**
 * Stops the RabbitMQ application but keeps the Erlang node (`rabbitmqctl stop_app`): clients see
 * the broker go away exactly as in a full stop (connections closed, port 5672 closed), and the
 * start takes a couple of seconds instead of a node boot. Durable queues and persistent messages
 * survive either way.
 */
export async function stopRabbit(): Promise<void> {
  await run('rabbitmqctl', ['stop_app'], 120_000);
  await waitPort('rabbitmq', false, 30_000);
}

export async function startRabbit(): Promise<void> {
  if (await isUp('rabbitmq')) return;
  // The node may be gone entirely (a full `rabbitmqctl stop` or a crash): then boot it.
  const nodeUp = await run('rabbitmqctl', ['-q', 'ping'], 30_000).then(
    () => true,
    () => false,
  );
  if (nodeUp) await run('rabbitmqctl', ['start_app'], 120_000);
  else await run('rabbitmq-server', ['-detached'], 60_000);
  await waitPort('rabbitmq', true, 120_000);
}

export async function stopKafka(): Promise<void> {
  await run('bash', ['scripts/kafka/stop'], 120_000);
}

export async function startKafka(): Promise<void> {
  await run('bash', ['scripts/kafka/start'], 300_000);
}

/** Runs `body` with the service stopped, and starts it again whatever happens. */
export async function withServiceStopped<T>(
  stop: () => Promise<void>,
  start: () => Promise<void>,
  body: () => Promise<T>,
): Promise<T> {
  try {
    await stop();
    return await body();
  } finally {
    await start();
  }
}
