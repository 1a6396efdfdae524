/**
 * Consumer processes against the real broker and Redis: SIGTERM closes gracefully (in-flight
 * work finished and committed, nothing handled twice afterwards); kill -9 mid-batch loses nothing
 * and applies nothing twice (a restarted consumer gets the uncommitted records: dedupe acks what
 * was done, the lease of the killed in-flight message expires and it is processed again).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineEvent, encodeEnvelope } from '@backtrack/core';
import { createRedisClient } from '@backtrack/redis';
import { probeService } from '../../../test/support/services.js';
import { kafkaBroker } from './broker.js';
import { committedOffsets, makeTransport, uniqueName, waitFor } from './helpers.js';

const broker = await kafkaBroker();
const redis = await probeService('redis');
afterAll(() => broker.stop());

const CHILD = fileURLToPath(new URL('./fixtures/consumerProcess.ts', import.meta.url));
const TSCONFIG = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));
const OrderPlaced = defineEvent('order.placed').version(1, z.object({ orderId: z.string() }));

interface Child {
  process: ChildProcess;
  handled: string[];
  exited: Promise<number | null>;
}

async function startConsumer(args: string[]): Promise<Child> {
  const child = fork(CHILD, args, {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TSX_TSCONFIG_PATH: TSCONFIG, BACKTRACK_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const handled: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('consumer child never got ready')), 60_000);
    child.on('message', (m: { kind: string; orderId?: string }) => {
      if (m.kind === 'ready') {
        clearTimeout(timer);
        resolve();
      } else if (m.kind === 'handled') handled.push(m.orderId!);
    });
    void exited.then((code) => reject(new Error(`consumer child exited early (${code})`)));
  });
  return { process: child, handled, exited };
}

describe.skipIf(!broker.available || !redis.available)(
  'consumer processes (real broker and Redis)',
  () => {
    const brokers = broker.brokers;
    const client = createRedisClient(redis.url);
    afterAll(() => client.quit());

    async function publishOrders(topic: string, n: number): Promise<string[]> {
      const transport = makeTransport(brokers);
      try {
        await transport.ensureTopics({ topics: [topic], partitions: 1 });
        const ids = Array.from({ length: n }, (_, i) => `o-${i}`);
        await transport.publish(
          ids.map((orderId) => ({
            topic,
            key: 'one-key',
            message: encodeEnvelope(OrderPlaced.envelope({ orderId }, { source: '//test' })),
          })),
        );
        return ids;
      } finally {
        await transport.close();
      }
    }

    async function counts(
      prefix: string,
      field: 'runs' | 'effects',
    ): Promise<Record<string, number>> {
      const raw = await client.hgetall(`${prefix}${field}`);
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
    }

    it('SIGTERM: finishes the in-flight work, commits it and exits 0; a successor handles only the rest', async () => {
      const topic = uniqueName('bt-sigterm');
      const group = uniqueName('g');
      const prefix = `${uniqueName('bt-sigterm')}:`;
      const ids = await publishOrders(topic, 30);
      const child = await startConsumer([brokers.join(','), topic, group, redis.url, prefix, '50']);
      await waitFor(() => child.handled.length >= 3, 'three handled before SIGTERM', 60_000);
      child.process.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      const handledByChild = child.handled.length;
      expect(handledByChild).toBeLessThan(30);
      expect(Number((await committedOffsets(brokers, group, topic))[0])).toBe(handledByChild);

      const successor = await startConsumer([
        brokers.join(','),
        topic,
        group,
        redis.url,
        prefix,
        '0',
      ]);
      await waitFor(
        async () => Object.keys(await counts(prefix, 'runs')).length === 30,
        'all 30 handled',
        60_000,
      );
      successor.process.kill('SIGTERM');
      expect(await successor.exited).toBe(0);
      const runs = await counts(prefix, 'runs');
      expect(Object.keys(runs).sort()).toEqual([...ids].sort());
      expect(Object.values(runs).every((n) => n === 1)).toBe(true);
      expect(successor.handled).toEqual(ids.slice(handledByChild));
    });

    it('kill -9 mid-batch: nothing lost, every effect exactly once', async () => {
      const topic = uniqueName('bt-kill');
      const group = uniqueName('g');
      const prefix = `${uniqueName('bt-kill')}:`;
      const ids = await publishOrders(topic, 40);
      const doomed = await startConsumer([
        brokers.join(','),
        topic,
        group,
        redis.url,
        prefix,
        '30',
      ]);
      await waitFor(() => doomed.handled.length >= 12, 'a dozen handled', 60_000);
      doomed.process.kill('SIGKILL');
      await doomed.exited;

      const successor = await startConsumer([
        brokers.join(','),
        topic,
        group,
        redis.url,
        prefix,
        '0',
      ]);
      await waitFor(
        async () => Object.keys(await counts(prefix, 'effects')).length === 40,
        'all 40 effects',
        90_000,
      );
      await waitFor(
        async () => Number((await committedOffsets(brokers, group, topic))[0]) === 40,
        'commit to 40',
        30_000,
      );
      successor.process.kill('SIGTERM');
      await successor.exited;
      const effects = await counts(prefix, 'effects');
      expect(Object.keys(effects).sort()).toEqual([...ids].sort());
      expect(Object.values(effects).every((n) => n === 1)).toBe(true);
      // Handlers re-ran at most for the one batch in flight at the kill: its done marks are
      // written together after its handlers (one completeMany), so a kill before that write
      // leaves up to a batch (batchSize 5) handled but unmarked; their leases expire and they
      // run again, absorbed by the idempotency key (effects above stay at exactly 1).
      const runs = await counts(prefix, 'runs');
      expect(Object.values(runs).filter((n) => n > 1).length).toBeLessThanOrEqual(5);
    });
  },
);
