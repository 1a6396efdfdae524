/**
 * Shared pieces of the benchmarks: service URLs, the benchmark event, timing and statistics.
 */
import { randomUUID } from 'node:crypto';
import {
  defineCompensations,
  defineEvent,
  emit,
  encodeEnvelope,
  EventRegistry,
  type EncodedMessage,
} from '@backtrack/core';
import pino from 'pino';
import { z } from 'zod';

export const SERVICES = {
  redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  amqp: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  kafka: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((b) => b.trim()),
};

/** Silent logger for every Backtrack component: the benchmarks measure the work, not the logs. */
export const silentLogger = pino({ level: 'silent' });

/** A unique name for topics, queues, groups and key prefixes of this bench process. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/**
 * The event every benchmark sends. Messages are written at version 1 and consumers ask for
 * version 2, so the Backtrack consumer pays for validation AND an upcast on every message.
 */
export const BenchOrderPlaced = defineEvent('bench.order.placed')
  .version(
    1,
    z.object({ orderId: z.string(), amount: z.number(), customer: z.string(), sku: z.string() }),
  )
  .version(
    2,
    z.object({
      orderId: z.string(),
      amountCents: z.number().int(),
      currency: z.string(),
      customer: z.string(),
      sku: z.string(),
    }),
    {
      up: (v1) => ({
        orderId: v1.orderId,
        amountCents: Math.round(v1.amount * 100),
        currency: 'EUR',
        customer: v1.customer,
        sku: v1.sku,
      }),
      down: (v2) => ({
        orderId: v2.orderId,
        amount: v2.amountCents / 100,
        customer: v2.customer,
        sku: v2.sku,
      }),
    },
  );

/** Its compensating event (rollback benchmark). */
export const BenchOrderCancelled = defineEvent('bench.order.cancelled').version(
  1,
  z.object({ orderId: z.string(), reason: z.string() }),
);

export const benchRegistry = new EventRegistry().with(BenchOrderPlaced).with(BenchOrderCancelled);

/** What the rollback benchmarks reverse: a placed order is cancelled. */
export const benchCompensations = defineCompensations().reversible(BenchOrderPlaced, (d) =>
  emit(BenchOrderCancelled, { orderId: d.orderId, reason: 'rollback of a bad deploy' }),
);

/**
 * `count` compensating events encoded up front, as a rollback of `service` publishes them: what
 * the raw side of a rollback benchmark sends.
 */
export function encodedCancellations(count: number, service: string): EncodedMessage[] {
  return Array.from({ length: count }, (_, i) =>
    encodeEnvelope(
      BenchOrderCancelled.envelope(
        { orderId: `o-${i}`, reason: 'rollback of a bad deploy' },
        { source: `//bench/${service}`, partitionkey: `o-${i}` },
      ),
    ),
  );
}

/** Version-1 data of message `i`. */
export function orderData(i: number) {
  return {
    orderId: `o-${i}`,
    amount: 10 + (i % 1000) / 100,
    customer: `c-${i % 997}`,
    sku: `sku-${i % 101}`,
  };
}

/** `count` encoded version-1 envelopes (about 400 bytes each with headers). */
export function encodedOrders(count: number, source = '//bench/orders'): EncodedMessage[] {
  const out: EncodedMessage[] = [];
  for (let i = 0; i < count; i++) {
    out.push(
      encodeEnvelope(
        BenchOrderPlaced.envelope(orderData(i), {
          source,
          version: 1,
          id: randomUUID(),
          producerservice: 'bench',
          producerversion: '1.0.0',
          partitionkey: `o-${i}`,
        }),
      ),
    );
  }
  return out;
}

/** Resolves when `check()` is true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function waitFor(
  check: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs `task(i)` for i in [0, total) with at most `concurrency` at once. */
export async function runConcurrently(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

/** CPU time (user + system) this process used since `start` (a `process.cpuUsage()` value), in seconds. */
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** Seconds since `start` (a `performance.now()` value). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** Median, min and max of a sample. */
export interface Stats {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median =
    n === 0 ? NaN : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[n - 1] ?? NaN, samples: [...samples] };
}
