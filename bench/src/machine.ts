/**
 * What the results were measured on: CPU, memory, Node, and the versions of the brokers.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { SERVICES } from './common.js';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  kernel: string;
  node: string;
  v8: string;
  loadAverage: number[];
  kafka: { version: string; source: string; brokers: string[] };
  rabbitmq: Record<string, string> | { error: string };
  redis: Record<string, string> | { error: string };
}

/** The Kafka version the project's start script pins (or KAFKA_VERSION when it overrides it). */
export function kafkaVersion(): { version: string; source: string } {
  if (process.env.KAFKA_VERSION)
    return { version: process.env.KAFKA_VERSION, source: 'KAFKA_VERSION' };
  const script = fileURLToPath(new URL('../../scripts/kafka/start', import.meta.url));
  try {
    const match = /KAFKA_VERSION:-([0-9][^}"]*)/.exec(readFileSync(script, 'utf8'));
    if (match) return { version: match[1]!, source: 'pinned in scripts/kafka/start' };
  } catch {
    // fall through
  }
  return { version: 'unknown', source: 'scripts/kafka/start not readable' };
}

async function rabbitProperties(): Promise<MachineInfo['rabbitmq']> {
  try {
    const model = await amqplib.connect(SERVICES.amqp);
    model.on('error', () => undefined);
    try {
      const props = (model.connection as unknown as { serverProperties?: Record<string, unknown> })
        .serverProperties;
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(props ?? {})) {
        if (typeof v === 'string' || typeof v === 'number') out[k] = String(v);
      }
      return out;
    } finally {
      await model.close().catch(() => undefined);
    }
  } catch (error) {
    return { error: (error as Error).message };
  }
}

async function redisInfo(): Promise<MachineInfo['redis']> {
  const redis = new Redis(SERVICES.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const text = await redis.info('server');
    const out: Record<string, string> = {};
    for (const line of text.split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    redis.disconnect();
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  const [rabbitmq, redis] = await Promise.all([rabbitProperties(), redisInfo()]);
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    node: process.version,
    v8: process.versions.v8,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    kafka: { ...kafkaVersion(), brokers: SERVICES.kafka },
    rabbitmq,
    redis,
  };
}

/** One line per service for the console and the README. */
export function describeMachine(m: MachineInfo): string {
  const rabbit =
    'error' in m.rabbitmq
      ? `unreachable (${m.rabbitmq.error})`
      : `${m.rabbitmq.product ?? 'RabbitMQ'} ${m.rabbitmq.version ?? '?'}`;
  const redis =
    'error' in m.redis ? `unreachable (${m.redis.error})` : `Redis ${m.redis.redis_version ?? '?'}`;
  return [
    `${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.platform} ${m.kernel}`,
    `Node ${m.node} (V8 ${m.v8}); load average at start ${m.loadAverage.join(' / ')}`,
    `Kafka ${m.kafka.version} (${m.kafka.source}) at ${m.kafka.brokers.join(',')}; ${rabbit}; ${redis}`,
  ].join('\n');
}
