/**
 * Scenario 2: the broker is stopped and started again while a publisher publishes and a
 * consumer consumes (RabbitMQ: `rabbitmqctl stop_app` / `start_app`; Kafka: the project's
 * broker stopped and started with scripts/kafka). The publisher is a well-behaved application:
 * it awaits every `publish`, and when one rejects it publishes the same messages again (same
 * ids) until one call resolves.
 *
 * Checked:
 * - no `publish` call hangs: each resolves (confirmed) or rejects (reported failed) within the
 *   transport's publish timeout plus a margin;
 * - every message whose publish resolved is applied by the consumer, exactly once (ledger in
 *   Redis by idempotency key; a message that reached the broker although its publish was
 *   reported failed and was then published again is a duplicate the dedupe store absorbs);
 * - the consumer survives the restart without being re-created.
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { sleep, tracer } from '../support/child.js';
import { openTransport, startConsumer, type TransportName } from '../support/consumers.js';
import { orderMessage } from '../support/events.js';
import { startKafka, startRabbit, stopKafka, stopRabbit } from '../support/services.js';
import { deadConsumers, recordRow } from '../support/summary.js';
import {
  applyEffect,
  clearConsumerLedger,
  consumerLedgerKeys,
  verifyConsumerLedger,
} from '../fixtures/consumerLedger.js';

export interface BrokerRestartOptions {
  transport: TransportName;
  messages: number;
  batch: number;
}

/** Longest a single publish may take: the publisher's timeout (5 s here) plus a wide margin. */
const PUBLISH_DEADLINE_MS = 30_000;

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms))),
  ]).finally(() => clearTimeout(timer));
}

export function brokerRestartScenario(options: BrokerRestartOptions): void {
  const label = options.transport === 'kafka' ? 'Kafka' : 'RabbitMQ';
  it(`${label} restarted while publishing and consuming ${options.messages} messages: every failed publish is reported (and retried), nothing confirmed is lost or applied twice`, async () => {
    const mark = tracer(`broker-restart-${options.transport}`);
    const redis = new Redis(serviceUrl('redis'));
    const name = uniqueName(`faults-restart-${options.transport}`);
    const prefix = `${name}:ledger`;
    const consumer = await startConsumer({
      transport: options.transport,
      topic: name,
      group: `${name}-g`,
      dedupePrefix: `${name}:dedupe:`,
      effect: async (call) => {
        await applyEffect(redis, prefix, call.messageId, call.idempotencyKey);
      },
    });
    // A publish timeout shorter than the outage: some calls are reported failed and retried.
    const publisher = await openTransport(options.transport, `${name}-pub`, 5_000);
    const confirmed: string[] = [];
    const failures: { size: number; startedAt: number; ms: number; error: string }[] = [];
    let stopBegan = 0; // when the broker's stop began: failed calls are timed against it
    const problems: string[] = [];
    let brokerDown = false;
    let restarted = false;
    const restart = { stopMs: 0, downMs: 0, startMs: 0 };
    const publishing = (async () => {
      // Publishes until the broker has been restarted AND `messages` were confirmed, so the
      // restart always lands in the middle of the stream.
      // A failed call is always published again before the loop ends: a timed-out publish's
      // outcome is unknown (the broker may have taken it), so it is retried, never dropped.
      let retrying = false;
      for (let next = 0; !restarted || confirmed.length < options.messages || retrying;) {
        const batch = Array.from({ length: options.batch }, (_, i) => `${name}-m${next + i}`);
        const started = Date.now();
        const outcome = await withDeadline(
          publisher
            .publish(batch.map((id) => ({ topic: name, key: id, message: orderMessage(id) })))
            .then(
              () => 'ok' as const,
              (error: unknown) => error as Error,
            ),
          PUBLISH_DEADLINE_MS,
        );
        if (outcome === 'hung') {
          problems.push(
            `a publish of ${batch.length} messages neither resolved nor rejected in ${PUBLISH_DEADLINE_MS} ms`,
          );
          return;
        }
        if (outcome === 'ok') {
          confirmed.push(...batch);
          next += batch.length;
          retrying = false;
        } else {
          retrying = true;
          const code = (outcome as { code?: string }).code ?? outcome.name;
          failures.push({
            size: batch.length,
            startedAt: started,
            ms: Date.now() - started,
            error: code,
          });
          await sleep(250); // then publish the same messages again
        }
        if (!brokerDown) await sleep(50);
      }
    })();
    try {
      mark('publishing');
      const until = Date.now() + 60_000;
      while (confirmed.length < options.messages * 0.2 && Date.now() < until) await sleep(20);
      mark(`stopping the broker at ${confirmed.length} confirmed`);
      brokerDown = true;
      let t = Date.now();
      stopBegan = t;
      try {
        await (options.transport === 'kafka' ? stopKafka() : stopRabbit());
        restart.stopMs = Date.now() - t;
        t = Date.now();
        await sleep(3_000);
        restart.downMs = Date.now() - t;
      } finally {
        t = Date.now();
        await (options.transport === 'kafka' ? startKafka() : startRabbit());
        restart.startMs = Date.now() - t;
        brokerDown = false;
        restarted = true;
      }
      mark(`broker back (stop ${restart.stopMs} ms, start ${restart.startMs} ms)`);
      await publishing;
      mark(`published: ${confirmed.length} confirmed, ${failures.length} failed calls`);
      const effects = () => redis.hlen(consumerLedgerKeys(prefix).effects);
      const deadline = Date.now() + 120_000;
      while ((await effects()) < confirmed.length && Date.now() < deadline) await sleep(100);
      await sleep(500);
      mark('consumed');
      const v = await verifyConsumerLedger(redis, prefix, confirmed);
      recordRow({
        scenario: `2 broker restart while publishing (${label})`,
        sent: confirmed.length,
        processed: consumer.spy.records.length,
        applied: v.applied,
        duplicates: Math.max(0, consumer.spy.records.length - v.applied),
        lost: v.lost,
        appliedTwice: v.appliedTwice,
        consumersLeftDead: deadConsumers([v.lost]),
        faults: `${options.transport === 'kafka' ? 'scripts/kafka stop+start' : 'rabbitmqctl stop_app+start_app'} (stop ${restart.stopMs} ms, down ${restart.downMs} ms, start ${restart.startMs} ms); ${failures.length} publish calls reported failed (${
          failures
            .slice(0, 5)
            .map(
              (f) =>
                `${f.error}: started ${f.startedAt - stopBegan} ms after the stop began, failed after ${f.ms} ms`,
            )
            .join('; ') || 'none'
        }${failures.length > 5 ? '; ...' : ''}), all retried`,
      });
      expect(problems).toEqual([]);
      expect(confirmed.length).toBeGreaterThanOrEqual(options.messages);
      expect(v.problems.slice(0, 20)).toEqual([]);
    } finally {
      if (brokerDown) await (options.transport === 'kafka' ? startKafka() : startRabbit());
      restarted = true;
      await publishing.catch(() => undefined);
      await publisher.close().catch(() => undefined);
      await consumer.close();
      await clearConsumerLedger(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
  });
}
