/**
 * The runner's offset and disposition rules, driven batch by batch through a fake client (no
 * broker): what is committed, what is rewound, what is published, in which order.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Disposition, IncomingMessage, MessageProcessor } from '@backtrack/core';
import type {
  BatchControls,
  ConsumedBatch,
  ConsumedRecord,
  KafkaAdminClient,
  KafkaConsumerClient,
  KafkaProducerClient,
  TopicPartitions,
  TopicRecords,
} from '../client/KafkaClient.js';
import { BACKTRACK_HEADERS } from '../envelope/kafkaBinding.js';
import { resolveConsumerOptions, type KafkaConsumerOptions } from '../options.js';
import { KafkaPublisher } from '../publisher/KafkaPublisher.js';
import { KafkaSubscription } from './KafkaSubscription.js';

const logger = pino({ level: 'silent' });
type Handler = (batch: ConsumedBatch, controls: BatchControls) => Promise<void>;

function harness(
  decide: (m: IncomingMessage) => Disposition | Disposition[],
  options: Partial<KafkaConsumerOptions> = {},
  batchProcessor = false,
) {
  let handler!: Handler;
  const log: string[] = [];
  const consumer: KafkaConsumerClient = {
    connect: async () => {},
    subscribe: async () => {},
    run: async (h) => void (handler = h),
    pause: (tps: TopicPartitions[]) => void log.push(`pause ${JSON.stringify(tps)}`),
    resume: () => {},
    seek: (topic, partition, offset) => void log.push(`seek ${topic}/${partition}@${offset}`),
    stop: async () => {},
    disconnect: async () => {},
    onCrash: () => {},
    onGroupJoin: (l) => queueMicrotask(() => l({})),
  };
  const sent: TopicRecords[] = [];
  let failSends = false;
  const producer: KafkaProducerClient = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (batches) => {
      if (failSends) throw new Error('broker gone');
      sent.push(...batches);
    },
  };
  const calls: IncomingMessage[] = [];
  const processor: MessageProcessor = batchProcessor
    ? {
        process: () => Promise.reject(new Error('unused')),
        processBatch: async (ms) => {
          calls.push(...ms);
          return ms.map((m) => decide(m) as Disposition);
        },
      }
    : {
        process: async (m) => {
          calls.push(m);
          return decide(m) as Disposition;
        },
      };
  const now = 1_000_000;
  const sub = new KafkaSubscription({
    topics: ['orders'],
    group: 'g',
    processor,
    options: resolveConsumerOptions({ createTopics: false, ...options }),
    consumer,
    admin: {} as KafkaAdminClient,
    publisher: new KafkaPublisher(producer, logger, 1000),
    logger,
    now: () => now,
  });
  const deliver = async (
    topic: string,
    records: ConsumedRecord[],
    overrides: Partial<BatchControls> = {},
  ) => {
    await handler(
      { topic, partition: 0, records, highWatermark: '100' },
      {
        resolveOffset: (o) => void log.push(`resolve ${o}`),
        commit: async (o) => void log.push(`commit ${o}`),
        heartbeat: async () => {},
        isRunning: () => true,
        isStale: () => false,
        ...overrides,
      },
    );
  };
  return {
    sub,
    log,
    sent,
    calls,
    now,
    deliver,
    failSends: (v: boolean) => (failSends = v),
  };
}

const rec = (
  offset: number,
  body: string,
  headers: Record<string, string> = {},
): ConsumedRecord => ({
  offset: String(offset),
  key: Buffer.from('k'),
  value: Buffer.from(JSON.stringify(body)),
  headers: { ce_id: `id-${offset}`, ...headers },
  timestamp: '0',
});
const bodyOf = (m: IncomingMessage) => JSON.parse(Buffer.from(m.message.body).toString()) as string;
const ACK: Disposition = { kind: 'ack', outcome: 'handled' };

describe('KafkaSubscription batch rules', () => {
  it('commits the prefix before a redeliver, rewinds to it and pauses everything when asked', async () => {
    const h = harness(
      (m) =>
        bodyOf(m) === 'b'
          ? { kind: 'redeliver', reason: 'store down', delayMs: 50, pause: true }
          : ACK,
      {},
      true,
    );
    await h.sub.start();
    await h.deliver('orders', [rec(10, 'a'), rec(11, 'b'), rec(12, 'c')]);
    expect(h.log).toEqual([
      'resolve 10',
      'commit 11',
      'seek orders/0@11',
      'pause [{"topic":"orders"},{"topic":"orders.retry"}]',
    ]);
    await h.sub.close();
  });

  it('stops processing at a redeliver when processing one by one', async () => {
    const h = harness((m) =>
      bodyOf(m) === 'b'
        ? { kind: 'redeliver', reason: 'lease held', delayMs: 0, pause: false }
        : ACK,
    );
    await h.sub.start();
    await h.deliver('orders', [rec(0, 'a'), rec(1, 'b'), rec(2, 'c')]);
    expect(h.calls.map(bodyOf)).toEqual(['a', 'b']);
    expect(h.log).toEqual(['resolve 0', 'commit 1', 'seek orders/0@1']);
  });

  it('does not move the offset when the retry/dead-letter publish fails: rewinds the whole batch', async () => {
    const h = harness(
      (m) => (bodyOf(m) === 'b' ? { kind: 'dead-letter', reason: 'bad', code: 'X' } : ACK),
      {
        publishFailureBackoffMs: 10,
      },
    );
    await h.sub.start();
    h.failSends(true);
    await h.deliver('orders', [rec(5, 'a'), rec(6, 'b'), rec(7, 'c')]);
    expect(h.log).toEqual(['seek orders/0@5', 'pause [{"topic":"orders","partitions":[0]}]']);
    expect(h.sub.stats()).toMatchObject({ publishFailures: 1, acked: 0, deadLettered: 0 });
    h.failSends(false);
    await h.deliver('orders', [rec(5, 'a'), rec(6, 'b'), rec(7, 'c')]);
    expect(h.log.slice(2)).toEqual(['resolve 7', 'commit 8']);
    expect(h.sent.map((b) => b.topic)).toEqual(['orders.dlq']);
    await h.sub.close();
  });

  it('on the retry topic: passes over other groups, processes due records with their attempt and origin, waits for the first not due', async () => {
    const h = harness(() => ACK);
    await h.sub.start();
    const retry = (offset: number, body: string, group: string, dueAt: number) =>
      rec(offset, body, {
        [BACKTRACK_HEADERS.group]: group,
        [BACKTRACK_HEADERS.retryDueAt]: String(dueAt),
        [BACKTRACK_HEADERS.attempt]: '3',
        [BACKTRACK_HEADERS.originalTopic]: 'orders',
        [BACKTRACK_HEADERS.originalPartition]: '4',
        [BACKTRACK_HEADERS.originalOffset]: '99',
      });
    await h.deliver('orders.retry', [
      retry(0, 'other', 'someone-else', 0),
      retry(1, 'due', 'g', h.now - 1),
      retry(2, 'later', 'g', h.now + 5_000),
      retry(3, 'after', 'g', h.now - 1),
    ]);
    expect(h.calls.map(bodyOf)).toEqual(['due']);
    expect(h.calls[0]).toMatchObject({
      attempt: 3,
      origin: { topic: 'orders', partition: 4, offset: '99', group: 'g' },
    });
    expect(h.log).toEqual([
      'resolve 1',
      'commit 2',
      'seek orders.retry/0@2',
      'pause [{"topic":"orders.retry","partitions":[0]}]',
    ]);
    expect(h.sub.stats().skipped).toBe(1);
    await h.sub.close();
  });

  it('writes retry records with attempt + 1, due time and origin, without stacking old Backtrack headers', async () => {
    const h = harness(() => ({
      kind: 'retry',
      delayMs: 250,
      reason: 'timeout',
      error: new Error('ETIMEDOUT'),
    }));
    await h.sub.start();
    await h.deliver('orders', [
      rec(3, 'a', { traceparent: 't', [BACKTRACK_HEADERS.redrivenFrom]: 'orders.dlq' }),
    ]);
    const [batch] = h.sent;
    expect(batch!.topic).toBe('orders.retry');
    expect(batch!.records[0]!.headers).toEqual({
      ce_id: 'id-3',
      traceparent: 't',
      [BACKTRACK_HEADERS.attempt]: '2',
      [BACKTRACK_HEADERS.retryDueAt]: String(h.now + 250),
      [BACKTRACK_HEADERS.retryDelayMs]: '250',
      [BACKTRACK_HEADERS.reason]: 'timeout',
      [BACKTRACK_HEADERS.error]: 'ETIMEDOUT',
      [BACKTRACK_HEADERS.group]: 'g',
      [BACKTRACK_HEADERS.originalTopic]: 'orders',
      [BACKTRACK_HEADERS.originalPartition]: '0',
      [BACKTRACK_HEADERS.originalOffset]: '3',
    });
    expect(h.log).toEqual(['resolve 3', 'commit 4']);
    await h.sub.close();
  });

  it('ends the batch when a heartbeat fails (rebalance): commits what is done, rewinds to the rest', async () => {
    const h = harness(() => ACK);
    await h.sub.start();
    await h.deliver('orders', [rec(0, 'a'), rec(1, 'b'), rec(2, 'c')], {
      heartbeat: () => Promise.reject(new Error('The group is rebalancing')),
    });
    expect(h.calls.map(bodyOf)).toEqual(['a']);
    expect(h.log).toEqual(['resolve 0', 'commit 1', 'seek orders/0@1']);
    await h.sub.close();
  });
});
