/**
 * The Kafka transport against the real broker, with hand-written processors: wire format,
 * acknowledgement and commit rules, every disposition, ordering, redrive, shutdown.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel } from 'kafkajs';
import type { Disposition, IncomingMessage } from '@backtrack/core';
import {
  KAFKA_ERROR_CODES,
  KafkaConfigError,
  redriveDeadLetters,
  type DispositionEvent,
} from '@backtrack/kafka';
import { BACKTRACK_HEADERS } from '@backtrack/kafka/adapter';
import { kafkaBroker } from './broker.js';
import {
  ACK,
  bodyOf,
  committedOffsets,
  makeTransport,
  message,
  readTopic,
  recordingProcessor,
  uniqueName,
  waitFor,
} from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

describe.skipIf(!broker.available)('KafkaTransport (real broker)', () => {
  const brokers = broker.brokers;

  it('publishes with ce_ headers, content-type, the value as body and the key defaulting to sagaid', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-wire');
    try {
      await transport.ensureTopics({
        topics: [topic],
        partitions: 1,
        retry: false,
        deadLetter: false,
      });
      const m = message({ n: 1 }, { sagaid: 'saga-42' });
      const explicit = message({ n: 2 }, { sagaid: 'saga-42', partitionkey: 'order-7' });
      await transport.publish([
        { topic, message: m },
        { topic, key: 'explicit-key', message: explicit },
      ]);
      const [r1, r2] = await readTopic(brokers, topic, 2);
      expect(r1!.key).toBe('saga-42');
      expect(r2!.key).toBe('explicit-key');
      expect(r1!.headers).toMatchObject({
        ce_id: m.headers.id,
        ce_type: 'test.event',
        ce_specversion: '1.0',
        ce_source: '//backtrack/test',
        ce_schemaversion: '1',
        ce_sagaid: 'saga-42',
        'content-type': 'application/json',
      });
      expect(r1!.headers['ce_content-type']).toBeUndefined();
      expect(JSON.parse(r1!.value!.toString())).toEqual({ n: 1 });
    } finally {
      await transport.close();
    }
  });

  it('hands the processor the neutral message with attempt 1 and origin, and commits after ack', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-ack');
    const group = uniqueName('g');
    const processor = recordingProcessor(() => ACK);
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      const sent = [message({ i: 0 }), message({ i: 1 }), message({ i: 2 })];
      await transport.publish(sent.map((m, i) => ({ topic, key: `k${i}`, message: m })));
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => processor.calls.length === 3, '3 messages');
      await sub.close();
      const byId = new Map(processor.calls.map((c) => [c.message.headers.id, c]));
      for (const m of sent) {
        const got = byId.get(m.headers.id)!;
        expect(got.message.headers).toEqual(m.headers);
        expect(Buffer.from(got.message.body).equals(Buffer.from(m.body))).toBe(true);
        expect(got.attempt).toBe(1);
        expect(got.origin).toMatchObject({ transport: 'kafka', topic, group });
        expect(typeof got.origin.offset).toBe('string');
      }
      const offsets = await committedOffsets(brokers, group, topic);
      const total = Object.values(offsets).reduce((n, o) => n + Math.max(0, Number(o)), 0);
      expect(total).toBe(3);
    } finally {
      await transport.close();
    }
  });

  it('with bindingKeys hands the processor only the bound types, in order per key, and commits past the others', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-bind');
    const group = uniqueName('g');
    const processor = recordingProcessor(() => ACK);
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      const types = ['order.placed', 'order.cancelled', 'payment.charged', 'shipping.shipped'];
      const sent = Array.from({ length: 12 }, (_, i) => message({ i }, { type: types[i % 4]! }));
      await transport.publish(sent.map((m, i) => ({ topic, key: `k${i % 3}`, message: m })));
      const sub = await transport.subscribe({
        topics: [topic],
        group,
        processor,
        bindingKeys: ['order.placed', 'payment.*'],
      });
      await waitFor(() => sub.stats().acked + sub.stats().skipped === 12, '12 records');
      await sub.close();
      expect(sub.stats()).toMatchObject({ acked: 6, skipped: 6 });
      const seen = processor.calls.map((c) => bodyOf(c) as { i: number });
      expect(new Set(processor.calls.map((c) => c.message.headers.type))).toEqual(
        new Set(['order.placed', 'payment.charged']),
      );
      // Per key in publish order.
      for (const k of [0, 1, 2]) {
        const ofKey = seen.filter((b) => b.i % 3 === k).map((b) => b.i);
        expect(ofKey).toEqual([...ofKey].sort((a, b) => a - b));
      }
      const offsets = await committedOffsets(brokers, group, topic);
      const total = Object.values(offsets).reduce((n, o) => n + Math.max(0, Number(o)), 0);
      expect(total).toBe(12);
    } finally {
      await transport.close();
    }
  });

  it('retries through the retry topic with attempt + 1 after the delay, then acks', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-retry');
    const group = uniqueName('g');
    const events: DispositionEvent[] = [];
    const processor = recordingProcessor((m) =>
      m.attempt < 3
        ? { kind: 'retry', delayMs: 300, reason: 'downstream 503', error: new Error('503') }
        : ACK,
    );
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      const m = message({ pay: 1 });
      await transport.publish([{ topic, key: 'a', message: m }]);
      const started = Date.now();
      const sub = await transport.subscribe({
        topics: [topic],
        group,
        processor,
        onDisposition: (e) => events.push(e),
      });
      await waitFor(() => events.some((e) => e.action === 'acked'), 'the final ack');
      expect(processor.calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
      expect(processor.calls.every((c) => c.message.headers.id === m.headers.id)).toBe(true);
      expect(processor.calls[1]!.origin.topic).toBe(topic);
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
      expect(events.filter((e) => e.action === 'retried').map((e) => e.destination)).toEqual([
        `${topic}.retry`,
        `${topic}.retry`,
      ]);
      const retryRecords = await readTopic(brokers, `${topic}.retry`, 2);
      expect(retryRecords[0]!.key).toBe('a');
      expect(retryRecords[0]!.headers).toMatchObject({
        ce_id: m.headers.id,
        [BACKTRACK_HEADERS.attempt]: '2',
        [BACKTRACK_HEADERS.reason]: 'downstream 503',
        [BACKTRACK_HEADERS.error]: '503',
        [BACKTRACK_HEADERS.group]: group,
        [BACKTRACK_HEADERS.originalTopic]: topic,
      });
      expect(retryRecords[1]!.headers[BACKTRACK_HEADERS.attempt]).toBe('3');
      expect(sub.stats()).toMatchObject({ acked: 1, retried: 2, deadLettered: 0 });
    } finally {
      await transport.close();
    }
  });

  it('dead-letters with reason, code, original headers and bytes, and goes on with the next message', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-dlq');
    const group = uniqueName('g');
    const processor = recordingProcessor((m) =>
      bodyOf(m) === 'poison'
        ? {
            kind: 'dead-letter',
            reason: 'data does not match schema',
            code: 'BT_ERR_SCHEMA_VALIDATION',
            error: new Error('amount: expected number'),
          }
        : ACK,
    );
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      const poison = message('poison', { traceparent: '00-abc-def-01' });
      await transport.publish([
        { topic, key: 'k', message: message('before') },
        { topic, key: 'k', message: poison },
        { topic, key: 'k', message: message('after') },
      ]);
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => processor.calls.length === 3, 'all three messages');
      const [dl] = await readTopic(brokers, `${topic}.dlq`, 1);
      expect(dl!.key).toBe('k');
      expect(dl!.value!.equals(Buffer.from(poison.body))).toBe(true);
      expect(dl!.headers).toMatchObject({
        ce_id: poison.headers.id,
        ce_traceparent: '00-abc-def-01',
        'content-type': 'application/json',
        [BACKTRACK_HEADERS.reason]: 'data does not match schema',
        [BACKTRACK_HEADERS.deadLetterCode]: 'BT_ERR_SCHEMA_VALIDATION',
        [BACKTRACK_HEADERS.error]: 'amount: expected number',
        [BACKTRACK_HEADERS.originalTopic]: topic,
        [BACKTRACK_HEADERS.originalOffset]: '1',
        [BACKTRACK_HEADERS.group]: group,
      });
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '3',
        'commit past the dead letter',
      );
      expect(sub.stats()).toMatchObject({ acked: 2, deadLettered: 1 });
    } finally {
      await transport.close();
    }
  });

  it('redeliver pauses and rewinds: nothing is skipped and nothing past it is committed meanwhile', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-redeliver');
    const group = uniqueName('g');
    let storeDown = true;
    const processor = recordingProcessor((m) =>
      storeDown && bodyOf(m) === 2
        ? { kind: 'redeliver', reason: 'dedupe store unavailable', delayMs: 200, pause: true }
        : ACK,
    );
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish([1, 2, 3].map((n) => ({ topic, key: 'k', message: message(n) })));
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(
        () => processor.calls.filter((c) => bodyOf(c) === 2).length >= 3,
        'message 2 offered three times',
      );
      // While 2 keeps coming back, 3 has not been processed and the commit stays at 1.
      expect(processor.calls.some((c) => bodyOf(c) === 3)).toBe(false);
      expect((await committedOffsets(brokers, group, topic))[0]).toBe('1');
      storeDown = false;
      await waitFor(() => processor.calls.some((c) => bodyOf(c) === 3), 'message 3');
      expect(processor.calls.map((c) => bodyOf(c)).filter((n) => n !== 2)).toEqual([1, 3]);
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '3',
        'commit to 3',
      );
      expect(sub.stats().redelivered).toBeGreaterThanOrEqual(3);
    } finally {
      await transport.close();
    }
  });

  it('keeps the order per key while another key goes through retries', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-order');
    const group = uniqueName('g');
    const seen: { key: string; n: number; attempt: number }[] = [];
    const processor = recordingProcessor((m) => {
      const { key, n } = bodyOf(m) as { key: string; n: number };
      seen.push({ key, n, attempt: m.attempt });
      if (key === 'flaky' && m.attempt < 3) return { kind: 'retry', delayMs: 100, reason: 'flaky' };
      return ACK;
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      const messages = [];
      for (let n = 0; n < 20; n++) {
        for (const key of ['a', 'b', 'flaky'])
          messages.push({ topic, key, message: message({ key, n }) });
      }
      await transport.publish(messages);
      await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(
        () => seen.filter((s) => s.key === 'flaky' && s.attempt === 3).length === 20,
        'every flaky message done',
      );
      await waitFor(
        () => seen.filter((s) => s.key !== 'flaky').length === 40,
        'every a and b message',
      );
      for (const key of ['a', 'b']) {
        expect(seen.filter((s) => s.key === key).map((s) => s.n)).toEqual([...Array(20).keys()]);
      }
      // The retried key keeps its order within each attempt round.
      for (const attempt of [1, 2, 3]) {
        expect(
          seen.filter((s) => s.key === 'flaky' && s.attempt === attempt).map((s) => s.n),
        ).toEqual([...Array(20).keys()]);
      }
    } finally {
      await transport.close();
    }
  });

  it('in-place retry mode keeps strict order per partition through a retry', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-inplace');
    const group = uniqueName('g');
    const order: string[] = [];
    const processor = recordingProcessor((m) => {
      const n = bodyOf(m) as number;
      order.push(`${n}@${m.attempt}`);
      return n === 2 && m.attempt < 3 ? { kind: 'retry', delayMs: 100, reason: 'later' } : ACK;
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1, retry: false });
      await transport.publish([1, 2, 3, 4].map((n) => ({ topic, key: 'k', message: message(n) })));
      await transport.subscribe({ topics: [topic], group, processor, retryMode: 'in-place' });
      await waitFor(() => order.includes('4@1'), 'message 4');
      expect(order).toEqual(['1@1', '2@1', '2@2', '2@3', '3@1', '4@1']);
    } finally {
      await transport.close();
    }
  });

  it('dead-letters after maxAttempts retries, and after a processor that keeps throwing', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-backstop');
    const group = uniqueName('g');
    const processor = recordingProcessor((m) => {
      if (bodyOf(m) === 'throws') throw new Error('bug in handler');
      return { kind: 'retry', delayMs: 10, reason: 'always failing' };
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish([
        { topic, key: 'k', message: message('retries') },
        { topic, key: 'k', message: message('throws') },
      ]);
      await transport.subscribe({
        topics: [topic],
        group,
        processor,
        maxAttempts: 3,
        processorErrorDelayMs: 10,
      });
      const dls = await readTopic(brokers, `${topic}.dlq`, 2);
      const byBody = new Map(dls.map((d) => [JSON.parse(d.value!.toString()), d.headers]));
      expect(byBody.get('retries')).toMatchObject({
        [BACKTRACK_HEADERS.deadLetterCode]: KAFKA_ERROR_CODES.RETRIES_EXHAUSTED,
        [BACKTRACK_HEADERS.attempt]: '3',
      });
      expect(byBody.get('throws')).toMatchObject({
        [BACKTRACK_HEADERS.deadLetterCode]: KAFKA_ERROR_CODES.PROCESSOR_FAILED,
        [BACKTRACK_HEADERS.error]: 'bug in handler',
      });
      expect(processor.calls.filter((c) => bodyOf(c) === 'retries').map((c) => c.attempt)).toEqual([
        1, 2, 3,
      ]);
    } finally {
      await transport.close();
    }
  });

  it('uses processBatch when the processor has it, with dispositions in input order', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-batch');
    const group = uniqueName('g');
    const batches: number[][] = [];
    const processor = {
      process: () => Promise.reject(new Error('process must not be called')),
      processBatch: async (ms: IncomingMessage[]): Promise<Disposition[]> => {
        batches.push(ms.map((m) => bodyOf(m) as number));
        return ms.map((m) =>
          bodyOf(m) === 5
            ? { kind: 'dead-letter' as const, reason: 'five', code: 'TEST_FIVE' }
            : ACK,
        );
      },
    };
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish(
        [...Array(10).keys()].map((n) => ({ topic, key: 'k', message: message(n) })),
      );
      await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => batches.flat().length >= 10, 'ten messages');
      expect(batches.flat()).toEqual([...Array(10).keys()]);
      const [dl] = await readTopic(brokers, `${topic}.dlq`, 1);
      expect(JSON.parse(dl!.value!.toString())).toBe(5);
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '10',
        'commit to 10',
      );
    } finally {
      await transport.close();
    }
  });

  it('re-drives dead letters to their source topic, with a filter and a limit', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-redrive');
    const group = uniqueName('g');
    let accept = false;
    const processor = recordingProcessor((m) =>
      accept
        ? ACK
        : { kind: 'dead-letter', reason: 'not yet', code: (bodyOf(m) as { code: string }).code },
    );
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      await transport.publish([
        { topic, key: 'a', message: message({ code: 'A' }) },
        { topic, key: 'b', message: message({ code: 'B' }) },
        { topic, key: 'c', message: message({ code: 'A' }) },
      ]);
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => sub.stats().deadLettered === 3, 'three dead letters');
      accept = true;
      const first = await redriveDeadLetters(transport, {
        from: `${topic}.dlq`,
        filter: (d) => d.code === 'A',
        limit: 1,
      });
      expect(first).toMatchObject({ redriven: 1, complete: false });
      const all = await redriveDeadLetters(transport, {
        from: `${topic}.dlq`,
        filter: (d) => d.code === 'A',
      });
      expect(all).toMatchObject({
        redriven: 2,
        skipped: 1,
        complete: true,
        byTopic: { [topic]: 2 },
      });
      await waitFor(() => sub.stats().acked === 3, 'three re-driven deliveries acked');
      const redriven = processor.calls.filter((c) => c.attempt === 1).slice(3);
      expect(redriven.map((c) => (bodyOf(c) as { code: string }).code)).toEqual(['A', 'A', 'A']);
    } finally {
      await transport.close();
    }
  });

  it('close() finishes the message in flight and commits it', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-close');
    const group = uniqueName('g');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let finished = false;
    const processor = recordingProcessor(async () => {
      await gate;
      finished = true;
      return ACK;
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish([{ topic, key: 'k', message: message(1) }]);
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => processor.calls.length === 1, 'the handler to start');
      const closing = sub.close();
      setTimeout(release, 300);
      await closing;
      expect(finished).toBe(true);
      expect((await committedOffsets(brokers, group, topic))[0]).toBe('1');
    } finally {
      await transport.close();
    }
  });

  it('commitIntervalMs: later commits wait for the interval and go out on close, past every acked message', async () => {
    const transport = makeTransport(brokers, { consumer: { commitIntervalMs: 60_000 } });
    const topic = uniqueName('bt-interval');
    const group = uniqueName('g');
    const processor = recordingProcessor(() => ACK);
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish([{ topic, key: 'k', message: message(0) }]);
      const sub = await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => processor.calls.length === 1, 'the first message');
      // The first commit goes out at once.
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '1',
        'the first commit',
      );
      await transport.publish([1, 2, 3].map((i) => ({ topic, key: 'k', message: message(i) })));
      await waitFor(() => processor.calls.length === 4, 'three more messages');
      await new Promise((r) => setTimeout(r, 500));
      // Handled, but their commit waits for the interval (a crash now redelivers them).
      expect((await committedOffsets(brokers, group, topic))[0]).toBe('1');
      await sub.close();
      expect((await committedOffsets(brokers, group, topic))[0]).toBe('4');
    } finally {
      await transport.close();
    }
  });

  it('subscribe creates what is missing: the source topic with createPartitions, retry and dead-letter topics with its partitions', async () => {
    const transport = makeTransport(brokers, { consumer: { createPartitions: 3 } });
    const missing = uniqueName('bt-create');
    const existing = uniqueName('bt-create');
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await transport.ensureTopics({
        topics: [existing],
        partitions: 2,
        retry: false,
        deadLetter: false,
      });
      const sub = await transport.subscribe({
        topics: [missing, existing],
        group: uniqueName('g'),
        processor: recordingProcessor(() => ACK),
      });
      await sub.close();
      const { topics } = await admin.fetchTopicMetadata({
        topics: [missing, existing].flatMap((t) => [t, `${t}.retry`, `${t}.dlq`]),
      });
      const counts = Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]));
      expect(counts).toEqual({
        [missing]: 3,
        [`${missing}.retry`]: 3,
        [`${missing}.dlq`]: 3,
        [existing]: 2,
        [`${existing}.retry`]: 2,
        [`${existing}.dlq`]: 2,
      });
    } finally {
      await admin.disconnect();
      await transport.close();
    }
  });

  it('validates options at construction with coded errors', () => {
    expect(() => makeTransport([])).toThrow(KafkaConfigError);
    expect(() => makeTransport(brokers, { consumer: { maxAttempts: 0 } })).toThrow(/maxAttempts/);
    expect(() => makeTransport(brokers, { producer: { maxInFlightRequests: 6 } })).toThrow(
      /maxInFlightRequests/,
    );
  });
});
