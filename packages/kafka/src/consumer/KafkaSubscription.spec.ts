/**
 * The runner's offset and disposition rules, driven batch by batch through a fake client (no
 * broker): what is committed, what is rewound, what is published, in which order.
 */
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { InMemoryDedupeStore, createConsumerPipeline, defineEvent, handle } from '@backtrack/core';
import type { Disposition, IncomingMessage, MessageProcessor } from '@backtrack/core';
import type {
  BatchControls,
  ConsumedBatch,
  ConsumedRecord,
  KafkaAdminClient,
  KafkaConsumerClient,
  KafkaHeaderValue,
  KafkaProducerClient,
  TopicPartitions,
  TopicRecords,
} from '../client/KafkaClient.js';
import { NULL_HEADERS_HEADER, restoreNullHeaders } from '../envelope/deadLetter.js';
import { BACKTRACK_HEADERS } from '../envelope/kafkaBinding.js';
import { resolveConsumerOptions, type KafkaConsumerOptions } from '../options.js';
import { KafkaPublisher } from '../publisher/KafkaPublisher.js';
import { KafkaSubscription, type SubscriptionErrorEvent } from './KafkaSubscription.js';
import { typeFilterOf, type TypeFilter } from './typeFilter.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

const logger = pino({ level: 'silent' });
type Handler = (batch: ConsumedBatch, controls: BatchControls) => Promise<void>;

function harness(
  decide: (m: IncomingMessage) => Disposition | Disposition[],
  options: Partial<KafkaConsumerOptions> = {},
  batchProcessor = false,
  processorOverride?: MessageProcessor,
  typeFilter?: TypeFilter,
) {
  let handler!: Handler;
  const log: string[] = [];
  let crash!: (error: unknown, restarting: boolean) => void;
  let runs = 0;
  let failConnects = 0;
  const errors: SubscriptionErrorEvent[] = [];
  const consumer: KafkaConsumerClient = {
    connect: async () => {
      if (failConnects > 0) {
        failConnects--;
        throw new Error('broker unreachable');
      }
    },
    subscribe: async () => {},
    run: async (h) => {
      runs++;
      handler = h;
    },
    pause: (tps: TopicPartitions[]) => void log.push(`pause ${JSON.stringify(tps)}`),
    resume: () => {},
    seek: (topic, partition, offset) => void log.push(`seek ${topic}/${partition}@${offset}`),
    stop: async () => {},
    disconnect: async () => {},
    onCrash: (l) => void (crash = l),
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
    processor: processorOverride ?? processor,
    options: resolveConsumerOptions({ createTopics: false, ...options }),
    typeFilter,
    consumer,
    admin: {} as KafkaAdminClient,
    publisher: new KafkaPublisher(producer, logger, 1000),
    logger,
    now: () => now,
    onError: (e) => void errors.push(e),
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
    processor,
    log,
    sent,
    calls,
    now,
    deliver,
    errors,
    crash: (error: unknown, restarting: boolean) => crash(error, restarting),
    runs: () => runs,
    failConnects: (n: number) => (failConnects = n),
    failSends: (v: boolean) => (failSends = v),
  };
}

const rec = (
  offset: number,
  body: string,
  headers: Record<string, KafkaHeaderValue> = {},
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

  it('commits in the background by default: the batch returns before the commit is acknowledged, close() waits for it', async () => {
    const h = harness(() => ACK, {}, true);
    await h.sub.start();
    let acknowledge!: () => void;
    const commit = (o: string) =>
      new Promise<void>((resolve) => {
        h.log.push(`commit ${o} sent`);
        acknowledge = () => {
          h.log.push(`commit ${o} acknowledged`);
          resolve();
        };
      });
    await h.deliver('orders', [rec(0, 'a'), rec(1, 'b')], { commit });
    // The batch is done (the partition may move on) while its commit is still in flight.
    expect(h.log).toEqual(['resolve 1', 'commit 2 sent']);
    expect(h.sub.stats().commits).toBe(0);
    let closed = false;
    const closing = h.sub.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(false);
    acknowledge();
    await closing;
    expect(h.log.at(-1)).toBe('commit 2 acknowledged');
    expect(h.sub.stats().commits).toBe(1);
  });

  it('with awaitCommits the batch returns only once its commit is acknowledged', async () => {
    const h = harness(() => ACK, { awaitCommits: true }, true);
    await h.sub.start();
    const commit = (o: string) =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          h.log.push(`commit ${o} acknowledged`);
          resolve();
        }, 5),
      );
    await h.deliver('orders', [rec(0, 'a'), rec(1, 'b')], { commit });
    expect(h.log).toEqual(['resolve 1', 'commit 2 acknowledged']);
    expect(h.sub.stats().commits).toBe(1);
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
    // (backoff: publishFailureBackoffMs, doubled per failure; the first rewind waits 5..10 ms)
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
    expect(h.errors).toMatchObject([{ kind: 'publish-failed', attempt: 1, offset: '5' }]);
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

describe('KafkaSubscription hardening (issue 15)', () => {
  it('dead-letters a record it cannot read, byte for byte, without the processor, and goes on', async () => {
    const h = harness(() => ACK);
    await h.sub.start();
    const hostile: ConsumedRecord = {
      offset: '0',
      key: Buffer.from([0xff, 0x00]),
      value: Buffer.from([0x00, 0xfe]),
      // a header value no client should deliver (not bytes, not text, not null)
      headers: { ce_id: 42 as unknown as Buffer, empty: null, bin: Buffer.from([0xc3]) },
      timestamp: '0',
    };
    await expect(h.deliver('orders', [hostile, rec(1, 'next')])).resolves.toBeUndefined();
    expect(h.calls.map(bodyOf)).toEqual(['next']);
    const [batch] = h.sent;
    expect(batch!.topic).toBe('orders.dlq');
    const dl = batch!.records[0]!;
    expect(dl.key).toEqual(Buffer.from([0xff, 0x00]));
    expect(dl.value).toEqual(Buffer.from([0x00, 0xfe]));
    expect(dl.headers).toMatchObject({
      ce_id: '42',
      empty: Buffer.alloc(0),
      bin: Buffer.from([0xc3]),
      [NULL_HEADERS_HEADER]: '{"empty":[0]}',
      [DEAD_LETTER_REASON_HEADER]: 'undecodable',
      [BACKTRACK_HEADERS.deadLetterCode]: 'BT_ERR_KAFKA_RECORD_UNDECODABLE',
    });
    expect(h.log).toEqual(['resolve 1', 'commit 2']);
    expect(h.sub.stats()).toMatchObject({ undecodable: 1, deadLettered: 1, acked: 1 });
    await h.sub.close();
  });

  it('reads a null-valued header as absent and keeps it as null in the dead letter', async () => {
    const h = harness(() => ({
      kind: 'dead-letter',
      reason: 'no',
      code: 'BT_ERR_SCHEMA_VALIDATION',
    }));
    await h.sub.start();
    await h.deliver('orders', [rec(0, 'a', { ce_subject: null, ce_type: [null, 't'] })]);
    expect(h.calls[0]!.message.headers).toEqual({ id: 'id-0', type: 't' });
    const dl = h.sent[0]!.records[0]!;
    expect(dl.headers).toMatchObject({
      ce_subject: Buffer.alloc(0),
      ce_type: [Buffer.alloc(0), 't'],
      [NULL_HEADERS_HEADER]: '{"ce_subject":[0],"ce_type":[0]}',
      [DEAD_LETTER_REASON_HEADER]: 'schema-validation',
    });
    // read back (a redriven or retried copy): the nulls come back, the marker goes
    expect(restoreNullHeaders(dl.headers)).toEqual(
      expect.objectContaining({ ce_subject: null, ce_type: [null, 't'] }),
    );
    await h.sub.close();
  });

  it('dead-letters and retries a tombstone with a null value', async () => {
    let n = 0;
    const h = harness(() =>
      n++ === 0
        ? { kind: 'dead-letter', reason: 'empty', code: 'BT_ERR_MALFORMED_MESSAGE' }
        : { kind: 'retry', reason: 'later', delayMs: 10 },
    );
    await h.sub.start();
    const tombstone = (offset: number): ConsumedRecord => ({ ...rec(offset, ''), value: null });
    await h.deliver('orders', [tombstone(0), tombstone(1)]);
    const values = h.sent.flatMap((b) => b.records.map((r) => r.value));
    expect(values).toEqual([null, null]);
    await h.sub.close();
  });

  it('truncates reason and error headers to 1,000 characters', async () => {
    const h = harness(() => ({
      kind: 'dead-letter',
      reason: 'r'.repeat(5000),
      code: 'X',
      error: new Error('e'.repeat(5000)),
    }));
    await h.sub.start();
    await h.deliver('orders', [rec(0, 'a')]);
    const headers = h.sent[0]!.records[0]!.headers;
    expect(String(headers[BACKTRACK_HEADERS.reason])).toHaveLength(1000);
    expect(String(headers[BACKTRACK_HEADERS.error])).toHaveLength(1000);
    expect(headers[DEAD_LETTER_REASON_HEADER]).toBe('handler-failed');
    await h.sub.close();
  });

  it('bounds publish failures: after publishFailureAttempts it pauses the partition and reports, committing nothing', async () => {
    const h = harness(() => ({ kind: 'dead-letter', reason: 'bad', code: 'X' }), {
      publishFailureBackoffMs: 10,
      publishFailureAttempts: 3,
      publishFailurePauseMs: 60_000,
    });
    await h.sub.start();
    h.failSends(true);
    for (let i = 0; i < 4; i++) await h.deliver('orders', [rec(5, 'a'), rec(6, 'b')]);
    expect(h.errors.map((e) => [e.kind, e.attempt])).toEqual([
      ['publish-failed', 1],
      ['publish-failed', 2],
      ['partition-paused', 3],
      ['publish-failed', 1],
    ]);
    expect(h.errors[2]!.retryInMs).toBe(60_000);
    expect(h.errors[1]!.retryInMs).toBeGreaterThanOrEqual(10);
    expect(h.log.filter((l) => l.startsWith('commit') || l.startsWith('resolve'))).toEqual([]);
    expect(h.sub.stats()).toMatchObject({ pausedPartitions: 1, publishFailures: 4 });
    await h.sub.close();
  });

  it('a batch that throws unexpectedly is rewound with a backoff and reported; the handler never throws', async () => {
    const h = harness(() => ACK, { publishFailureBackoffMs: 10 });
    await h.sub.start();
    await expect(
      h.deliver('orders', [rec(3, 'a'), rec(4, 'b')], {
        resolveOffset: () => {
          throw new TypeError('client bug');
        },
      }),
    ).resolves.toBeUndefined();
    expect(h.log).toEqual(['seek orders/0@3', 'pause [{"topic":"orders","partitions":[0]}]']);
    expect(h.errors).toMatchObject([
      { kind: 'batch-failed', topic: 'orders', partition: 0, offset: '3', attempt: 1 },
    ]);
    expect(h.sub.stats().batchFailures).toBe(1);
    await h.sub.close();
  });

  it('restarts the consumer with a backoff after a crash the client does not restart, and reports it', async () => {
    const h = harness(() => ACK, { publishFailureBackoffMs: 10, failureMaxBackoffMs: 40 });
    await h.sub.start();
    expect(h.runs()).toBe(1);
    h.failConnects(1);
    h.crash(new TypeError("Cannot read properties of null (reading 'toString')"), false);
    await vi.waitFor(() => expect(h.runs()).toBe(2), { timeout: 2000, interval: 5 });
    expect(h.errors.map((e) => e.kind)).toEqual(['consumer-crashed', 'restart-failed']);
    expect(h.errors[0]).toMatchObject({ restarting: false, attempt: 1 });
    expect(h.sub.stats()).toMatchObject({ crashes: 1, restarts: 1 });
    // a crash the client restarts itself is only reported
    h.crash(new Error('retriable'), true);
    expect(h.errors[2]).toMatchObject({ kind: 'consumer-crashed', restarting: true });
    await h.sub.close();
    h.crash(new Error('after close'), false);
    await new Promise((r) => setTimeout(r, 60));
    expect(h.runs()).toBe(2);
  });
});

describe('KafkaSubscription with the pipeline running keys concurrently', () => {
  const Ping = defineEvent('test.ping').version(1, z.object({ n: z.number() }));
  const ping = (offset: number, key: string): ConsumedRecord => ({
    offset: String(offset),
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify({ n: offset })),
    headers: {
      ce_id: `p-${offset}`,
      ce_source: '//test',
      ce_type: 'test.ping',
      ce_specversion: '1.0',
      ce_schemaversion: '1',
      'content-type': 'application/json',
    },
    timestamp: '0',
  });

  it('commits only up to the lowest unfinished record; what ran past it is absorbed on redelivery', async () => {
    const store = new InMemoryDedupeStore();
    const runs = new Map<number, number>();
    let running = 0;
    let peak = 0;
    const pipeline = createConsumerPipeline(
      {
        name: 'g',
        handlers: [
          handle(Ping, async ({ data }) => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((resolve) => setTimeout(resolve, 5));
            runs.set(data.n, (runs.get(data.n) ?? 0) + 1);
            running--;
          }),
        ],
      },
      { dedupeStore: store, logger },
    );
    const h = harness(() => ACK, {}, false, pipeline);
    await h.sub.start();
    // Another member still holds the lease of offset 1 (key a, behind offset 0): it is
    // redelivered once offset 0 ran, and the rest of key a with it; keys c and b ran meanwhile.
    const held = await store.claim('g:%2F%2Ftest:p-1', { leaseMs: 60_000 });
    const batch = [ping(0, 'a'), ping(1, 'a'), ping(2, 'c'), ping(3, 'b'), ping(4, 'a')];
    await h.deliver('orders', batch);
    // Keys a, c, b ran at once; nothing at or after offset 1 is committed.
    expect(peak).toBeGreaterThan(1);
    expect(h.log).toEqual([
      'resolve 0',
      'commit 1',
      'seek orders/0@1',
      'pause [{"topic":"orders","partitions":[0]}]',
    ]);
    expect(runs.get(1)).toBeUndefined();
    expect(runs.get(4)).toBeUndefined();
    // The lease is let go; the rewound partition comes again from offset 1.
    if (held.status === 'claimed') await store.release('g:%2F%2Ftest:p-1', held.token);
    await h.deliver('orders', batch.slice(1));
    expect(h.log.slice(4)).toEqual(['resolve 4', 'commit 5']);
    // Every record's handler ran exactly once.
    expect([...runs.entries()].sort(([a], [b]) => a - b)).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    await h.sub.close();
  });
});

describe('KafkaSubscription bindingKeys (type filter)', () => {
  it('hands the processor only the bound types (and untyped records), in order, and commits past the rest', async () => {
    for (const batchProcessor of [true, false]) {
      const h = harness(
        () => ACK,
        {},
        batchProcessor,
        undefined,
        typeFilterOf(['order.placed', 'payment.*']),
      );
      await h.sub.start();
      await h.deliver('orders', [
        rec(0, 'placed', { ce_type: Buffer.from('order.placed') }),
        rec(1, 'cancelled', { ce_type: Buffer.from('order.cancelled') }),
        rec(2, 'charged', { ce_type: 'payment.charged' }),
        rec(3, 'untyped'),
        rec(4, 'shipped', { ce_type: Buffer.from('shipping.shipped') }),
      ]);
      expect(h.calls.map(bodyOf)).toEqual(['placed', 'charged', 'untyped']);
      // The passed-over last record is committed with the batch.
      expect(h.log).toEqual(['resolve 4', 'commit 5']);
      expect(h.sub.stats()).toMatchObject({ acked: 3, skipped: 2 });
      await h.sub.close();
    }
  });

  it('commits a batch of unbound types without calling the processor', async () => {
    const h = harness(() => ACK, {}, true, undefined, typeFilterOf(['order.placed']));
    await h.sub.start();
    await h.deliver('orders', [
      rec(7, 'x', { ce_type: Buffer.from('order.cancelled') }),
      rec(8, 'y', { ce_type: Buffer.from('order.shipped') }),
    ]);
    expect(h.calls).toEqual([]);
    expect(h.log).toEqual(['resolve 8', 'commit 9']);
    expect(h.sub.stats().skipped).toBe(2);
    await h.sub.close();
  });

  it('still dead-letters a bound record it cannot read, byte for byte', async () => {
    const h = harness(() => ACK, {}, true, undefined, typeFilterOf(['order.placed']));
    await h.sub.start();
    const hostile = rec(0, 'bad', {
      ce_type: Buffer.from('order.placed'),
      ce_subject: 42 as unknown as Buffer,
    });
    await h.deliver('orders', [hostile]);
    expect(h.calls).toEqual([]);
    expect(h.sent.map((b) => b.topic)).toEqual(['orders.dlq']);
    expect(h.sent[0]!.records[0]!.value).toEqual(hostile.value);
    await h.sub.close();
  });
});
