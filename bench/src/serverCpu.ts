/**
 * CPU time of the service processes on this machine (the Kafka broker's JVM, RabbitMQ's
 * `beam.smp`, the Redis server), read from `/proc`: what a run costs beside its own process.
 * On a 2-core machine every one of them competes with the client for the same cores, so an
 * end-to-end rate is only understood with them (bench/scripts/server-cpu.sh does the same in
 * bash for one load-driver run).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SERVICES } from './common.js';

export type ServerName = 'kafka' | 'rabbitmq' | 'redis';

/** The pid of each service running on this machine; absent when it is not a local process. */
export function localServerPids(): Partial<Record<ServerName, number>> {
  const redisPort = new URL(SERVICES.redis).port || '6379';
  const patterns: Record<ServerName, string[]> = {
    kafka: ['-f', 'kafka\\.Kafka'],
    rabbitmq: ['-x', 'beam.smp'],
    redis: ['-f', `redis-server .*:${redisPort}`],
  };
  const pids: Partial<Record<ServerName, number>> = {};
  for (const [name, args] of Object.entries(patterns) as [ServerName, string[]][]) {
    try {
      const first = execFileSync('pgrep', args, { encoding: 'utf8' }).trim().split('\n')[0];
      if (first) pids[name] = Number(first);
    } catch {
      // pgrep exits 1 when nothing matches (a remote or containerised service): not measured
    }
  }
  return pids;
}

let ticksPerSecond: number | undefined;

/** User + system CPU of each pid so far, in µs. */
export function serverCpuUs(
  pids: Partial<Record<ServerName, number>>,
): Partial<Record<ServerName, number>> {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  const used: Partial<Record<ServerName, number>> = {};
  for (const [name, pid] of Object.entries(pids) as [ServerName, number][]) {
    try {
      // Fields 14 and 15 (utime, stime); the command name in field 2 has no spaces here.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ');
      used[name] = ((Number(fields[13]) + Number(fields[14])) / ticksPerSecond!) * 1e6;
    } catch {
      // the process ended (a restarted broker): not measured
    }
  }
  return used;
}
