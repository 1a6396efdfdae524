/**
 * Transport events on the real broker (issue 20, item 5): `consumer.rebalancing` when a second
 * member joins the group, `consumer.crashed` when the client gives up on a consumer and the
 * subscription restarts it.
 */
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { TransportEventMap } from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { createKafkajsClient, type KafkaClient } from '@backtrack/kafka/adapter';
import type { KafkaTransport } from '@backtrack/kafka';
import { kafkaBroker } from './broker.js';
import { ACK, makeTransport, message, recordingProcessor, uniqueName, waitFor } from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

type Rebalancing = TransportEventMap['consumer.rebalancing'];
type Crashed = TransportEventMap['consumer.crashed'];

describe.skipIf(!broker.available)('Kafka transport events', () => {
  const brokers = broker.brokers;
  const topics: string[] = [];
  const transports: KafkaTransport[] = [];
  afterAll(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
    const admin = makeTransport(brokers).admin();
    await admin.connect();
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.disconnect();
  });

  it('a second member joining the group is consumer.rebalancing (rebalancing, then joined with the new assignment)', async () => {
    const topic = uniqueName('bt-events-rebalance');
    const group = uniqueName('g');
    topics.push(topic, `${topic}.dlq`);
    const first = makeTransport(brokers);
    const second = makeTransport(brokers);
    transports.push(first, second);
    await first.ensureTopics({ topics: [topic], partitions: 2, retry: false });
    const seen: Rebalancing[] = [];
    first.on('consumer.rebalancing', (e) => seen.push(e));
    await first.subscribe({ topics: [topic], group, processor: recordingProcessor(() => ACK) });
    expect(seen).toEqual([expect.objectContaining({ transport: 'kafka', group, phase: 'joined' })]);
    expect(seen[0]!.assignment?.[topic]?.sort()).toEqual([0, 1]);
    const memberId = seen[0]!.memberId;
    expect(memberId).toEqual(expect.any(String));

    await second.subscribe({ topics: [topic], group, processor: recordingProcessor(() => ACK) });
    await waitFor(() => seen.length >= 3, 'the first member to rejoin', 45_000);
    expect(seen.slice(1).map((e) => e.phase)).toEqual(['rebalancing', 'joined']);
    expect(seen[1]).toMatchObject({ group, memberId });
    expect(seen[2]!.assignment?.[topic]).toHaveLength(1);
  });

  it('a consumer the client gives up on is consumer.crashed with its restart, then joins again', async () => {
    // A client whose batch handler throws once after the subscription's own handler: kafkajs
    // crashes the consumer with restart: false and the subscription restarts it.
    const base = createKafkajsClient(
      { brokers, clientId: 'events-crash-test', clientLogLevel: 'nothing' },
      pino({ level: 'silent' }),
    );
    let injected = false;
    const client: KafkaClient = {
      name: base.name,
      consumer: (settings) => {
        const real = base.consumer(settings);
        return {
          connect: () => real.connect(),
          subscribe: (t) => real.subscribe(t),
          pause: (p) => real.pause(p),
          resume: (p) => real.resume(p),
          seek: (t, p, o) => real.seek(t, p, o),
          stop: () => real.stop(),
          disconnect: () => real.disconnect(),
          onCrash: (l) => real.onCrash(l),
          onGroupJoin: (l) => real.onGroupJoin(l),
          onGroupEvent: (l) => real.onGroupEvent!(l),
          run: (handler) =>
            real.run(async (batch, controls) => {
              await handler(batch, controls);
              if (!injected) {
                injected = true;
                throw new TypeError("Cannot read properties of null (reading 'toString')");
              }
            }),
        };
      },
      producer: (s) => base.producer(s),
      admin: () => base.admin(),
    };
    const transport = createKafkaTransport(
      {
        brokers,
        clientId: 'events-crash-test',
        clientLogLevel: 'nothing',
        consumer: {
          maxWaitTimeMs: 200,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 1_000,
          failureMaxBackoffMs: 500,
        },
      },
      { client },
    );
    transports.push(transport);
    const topic = uniqueName('bt-events-crash');
    const group = uniqueName('g');
    topics.push(topic, `${topic}.dlq`);
    const crashed: Crashed[] = [];
    const joins: Rebalancing[] = [];
    const disconnected: unknown[] = [];
    transport.on('consumer.crashed', (e) => crashed.push(e));
    transport.on('consumer.rebalancing', (e) => void (e.phase === 'joined' && joins.push(e)));
    transport.on('connection.disconnected', (e) => disconnected.push(e));
    await transport.ensureTopics({ topics: [topic], partitions: 1, retry: false });
    await transport.publish([{ topic, message: message({ n: 1 }) }]);
    const processor = recordingProcessor(() => ACK);
    const sub = await transport.subscribe({ topics: [topic], group, processor });
    await waitFor(() => sub.stats().restarts === 1, 'the restart');
    expect(crashed).toEqual([
      expect.objectContaining({
        transport: 'kafka',
        group,
        restarting: false,
        attempt: 1,
        retryInMs: expect.any(Number),
        // kafkajs wraps what the handler threw.
        error: expect.objectContaining({ cause: expect.any(TypeError) }),
      }),
    ]);
    await waitFor(() => joins.length >= 2, 'the rejoin after the restart');
    // Not a lost connection: no connection event.
    expect(disconnected).toEqual([]);
    await transport.publish([{ topic, message: message({ n: 2 }) }]);
    await waitFor(() => processor.calls.length >= 2, 'the record after the crash');
  });
});
