/**
 * The load driver's `--processes K` on the real brokers: inventory, payments and shipping as K
 * child processes each (one consumer group per service), the orders service in the driver. The
 * driver runs as a user runs it (its own process under tsx), and no child outlives it: not after
 * a normal end, not after Ctrl-C (SIGINT), not after the driver is killed (SIGKILL).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { createRuntime } from './infra/runtime.js';

const redis = await probeService('redis');
const kafka = await probeService('kafka');
const rabbitmq = await probeService('rabbitmq');

const examples = fileURLToPath(new URL('../../', import.meta.url));
const env = {
  ...process.env,
  REDIS_URL: redis.url,
  AMQP_URL: rabbitmq.url,
  KAFKA_BROKERS: `${kafka.host}:${kafka.port}`,
};

interface Started {
  /** Resolves with the children's pids and the run's prefix once the driver has started them. */
  started: Promise<{ pids: number[]; prefix: string }>;
  exited: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
}

function runLoad(args: string[]): Started {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'order-saga/src/bin/load.ts', ...args],
    { cwd: examples, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  let onStarted: (value: { pids: number[]; prefix: string }) => void;
  let notStarted: (error: Error) => void;
  const started = new Promise<{ pids: number[]; prefix: string }>((resolve, reject) => {
    onStarted = resolve;
    notStarted = reject;
  });
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    const match = /processes (?:each|in all) \(prefix (\S+), pids ([\d ]+)\)/.exec(stderr);
    if (match) onStarted({ prefix: match[1]!, pids: match[2]!.trim().split(' ').map(Number) });
  });
  const exited = new Promise<{
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
  }>((resolve) =>
    child.once('exit', (code, signal) => {
      notStarted(new Error(`the load driver exited (${signal ?? code}) first:\n${stderr}`));
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { started, exited, kill: (signal) => child.kill(signal) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function allExit(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(alive);
}

for (const transport of ['kafka', 'rabbitmq'] as const) {
  const up = redis.available && (transport === 'kafka' ? kafka : rabbitmq).available;
  describe.skipIf(!up)(`load driver --processes on ${transport}`, () => {
    it('runs 20 orders with two processes per service, consistent, and leaves no child', async () => {
      const run = runLoad([
        ...['--transport', transport, '--prefix', uniqueName(`proc-${transport}`)],
        ...['--orders', '20', '--concurrency', '8', '--processes', '2', '--json'],
      ]);
      const { pids } = await run.started;
      expect(pids).toHaveLength(6);
      const { code, stdout, stderr } = await run.exited;
      expect(code, stderr).toBe(0);
      const line = stdout.split('\n').find((l) => l.startsWith('{"transport"'));
      const result = JSON.parse(line!) as Record<string, unknown>;
      expect(result).toMatchObject({ transport, orders: 20, processes: 2, consistent: true });
      expect(result.surprises).toBe(0);
      expect(Object.keys(result.cpuUsPerOrderByProcess as object).sort()).toEqual([
        'inventory',
        'orders',
        'payments',
        'shipping',
      ]);
      // The driver waited for its children before it exited.
      expect(pids.filter(alive)).toEqual([]);
    }, 60_000);
  });
}

describe.skipIf(!redis.available || !rabbitmq.available)(
  'load driver --processes: no orphans',
  () => {
    /** Deletes what a run that was stopped early left on RabbitMQ and in Redis. */
    async function cleanUp(prefix: string) {
      const runtime = await createRuntime({ transport: 'rabbitmq', prefix });
      await runtime.connect();
      await runtime.destroy();
      await runtime.close();
    }

    it('Ctrl-C (SIGINT to the driver alone) stops every child, then the driver', async () => {
      const run = runLoad([
        ...['--transport', 'rabbitmq', '--prefix', uniqueName('proc-int')],
        ...['--orders', '100000', '--processes', '1', '--layout', 'shared'],
      ]);
      const { pids, prefix } = await run.started;
      run.kill('SIGINT');
      const { code } = await run.exited;
      expect(code).toBe(130);
      expect(pids.filter(alive)).toEqual([]);
      await cleanUp(prefix);
    }, 60_000);

    it('a killed driver (SIGKILL) leaves no child: they stop when the IPC channel closes', async () => {
      const run = runLoad([
        ...['--transport', 'rabbitmq', '--prefix', uniqueName('proc-kill')],
        ...['--orders', '100000', '--processes', '1', '--layout', 'shared'],
      ]);
      const { pids, prefix } = await run.started;
      run.kill('SIGKILL');
      await run.exited;
      expect(await allExit(pids, 15_000)).toEqual([]);
      await cleanUp(prefix);
    }, 60_000);
  },
);
