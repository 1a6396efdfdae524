/**
 * The rollback drill shared by the per-transport integration tests and their child process:
 * an `inventory` service whose bad deploy 2.0.0 reserved stock it should not have; the rollback
 * compensates every reservation with a `stock.released`.
 */
import { z } from 'zod';
import {
  defineCompensations,
  defineEvent,
  emit,
  EventRegistry,
  type Transport,
} from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { createRabbitTransport } from '@backtrack/rabbitmq';
import type { Redis } from 'ioredis';

export const StockReserved = defineEvent('stock.reserved')
  .version(1, z.object({ sku: z.string(), qty: z.int() }))
  .version(2, z.object({ sku: z.string(), quantity: z.int(), warehouse: z.string() }), {
    up: (v1) => ({ sku: v1.sku, quantity: v1.qty, warehouse: 'main' }),
    down: (v2) => ({ sku: v2.sku, qty: v2.quantity }),
  });

export const StockReleased = defineEvent('stock.released').version(
  1,
  z.object({ sku: z.string(), quantity: z.int() }),
);

export const registry = new EventRegistry([StockReserved, StockReleased]);

export const compensations = defineCompensations().reversible(StockReserved, (d) =>
  emit(StockReleased, { sku: d.sku, quantity: d.quantity }),
);

export type TransportKind = 'kafka' | 'rabbitmq';

/** What the parent hands to the child runner (as JSON in ROLLBACK_DRILL). */
export interface DrillConfig {
  kind: TransportKind;
  brokerUrl: string;
  redisUrl: string;
  journalPrefix: string;
  progressPrefix: string;
  runId: string;
  leaseMs: number;
  waitForLeaseMs: number;
  /** Pause after the broker acknowledged each batch, before its journal mark: the crash window. */
  pauseAfterPublishMs: number;
}

export async function openTransport(kind: TransportKind, url: string): Promise<Transport> {
  if (kind === 'kafka') {
    return createKafkaTransport({
      brokers: url.split(','),
      clientId: 'backtrack-rollback-drill',
      clientLogLevel: 'nothing',
      consumer: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1_000, maxWaitTimeMs: 200 },
    });
  }
  return createRabbitTransport({
    url,
    connectionName: 'backtrack-rollback-drill',
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, initialMaxRetries: 2 },
  });
}

/** Deletes every Redis key whose name contains one of `prefixes` (a test's unique names). */
export async function deleteKeysContaining(
  redis: Redis,
  prefixes: readonly string[],
): Promise<void> {
  for (const prefix of prefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 500);
      if (keys.length) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
}
