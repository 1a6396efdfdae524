/**
 * Credentials revoked while consuming: a Kafka consumer on the secured broker (SASL_SSL, SCRAM,
 * ACLs; scripts/secure/start) loses its rights (every ACL of its user deleted) mid-stream while
 * a producer keeps publishing. It must stop with a clear, coded, non-retriable error (not retry
 * in a loop that looks like an outage), and lose nothing: what it had not committed stays in
 * Kafka, and once the rights are back a new consumer of the group applies every message (the
 * Redis dedupe store, over rediss, absorbs what the stopped one had processed but not committed).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { createConsumerPipeline, handle, type ConnectionAccessError } from '@backtrack/core';
import { ConsumerSpy } from '@backtrack/core/testing';
import {
  KAFKA_ACCESS_ERROR_CODES,
  createKafkaTransport,
  type KafkaSubscription,
  type KafkaTransport,
} from '@backtrack/kafka';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { uniqueName } from '../../support/services.js';
import { ROOT, secureServices } from '../../support/secure.js';
import { sleep, tracer } from '../support/child.js';
import { FaultOrderPlaced, orderMessage } from '../support/events.js';
import { recordRow } from '../support/summary.js';

export interface CredentialsRevokedOptions {
  messages: number;
  /** Messages applied before the rights are revoked. */
  revokeAfter: number;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function credentialsRevokedScenario(options: CredentialsRevokedOptions): void {
  it(`credentials revoked while consuming (Kafka SASL_SSL + ACLs), ${options.messages} messages: 0 lost, the consumer stopped with a clear error`, async () => {
    const mark = tracer('credentials-revoked');
    const secure = await secureServices();
    if (!secure.available)
      throw new Error('the secured services did not start (scripts/secure/start)');
    const { conn } = secure;
    const acl = (cmd: 'grant' | 'revoke') =>
      promisify(execFile)(
        'node',
        [
          `${ROOT}scripts/secure/kafka-acls.mjs`,
          cmd,
          conn.kafka.adminBroker,
          conn.kafka.revocableUser,
        ],
        { cwd: ROOT, timeout: 30_000 },
      );
    const transportAs = (username: string, label: string): KafkaTransport =>
      createKafkaTransport({
        brokers: [conn.kafka.broker],
        clientId: label,
        clientLogLevel: 'nothing',
        ssl: { ca: [secure.pem('ca')] },
        sasl: { mechanism: 'scram-sha-512', username, password: conn.kafka.password },
      });
    const name = uniqueName('secure.faults-revoke');
    const group = `${name}.g`;
    const ids = Array.from({ length: options.messages }, (_, i) => `${name}-m${i}`);
    const handled = new Map<string, number>();
    const spy = new ConsumerSpy();
    const redis: Redis = createRedisClient(secure.redisUrl(), { tls: { ca: [secure.pem('ca')] } });
    const dedupeStore = new RedisDedupeStore({ keyPrefix: `secure:${name}:` }, { redis });
    const pipeline = createConsumerPipeline(
      {
        name: group,
        handlers: [
          handle(FaultOrderPlaced, async ({ envelope }) => {
            handled.set(envelope.id, (handled.get(envelope.id) ?? 0) + 1);
            await sleep(2);
          }),
        ],
      },
      { dedupeStore, spy },
    );
    const subscribe = (
      t: KafkaTransport,
      onError?: (e: { kind: string; restarting?: boolean }) => void,
    ) =>
      t.subscribe({
        topics: [name],
        group,
        processor: pipeline,
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        maxWaitTimeMs: 100,
        onError,
      }) as Promise<KafkaSubscription>;

    const publisher = transportAs(conn.kafka.user, `${name}-pub`);
    const first = transportAs(conn.kafka.revocableUser, `${name}-c1`);
    const second = transportAs(conn.kafka.revocableUser, `${name}-c2`);
    let revoked = false;
    try {
      await publisher.ensureTopics({ topics: [name], partitions: 2 });
      const crashes: { kind: string; restarting?: boolean }[] = [];
      const sub = await subscribe(first, (e) => crashes.push(e));
      mark('consumer subscribed');
      // Publish steadily in the background while the consumer works and loses its rights.
      const publishing = (async () => {
        for (let i = 0; i < ids.length; i += 20) {
          await publisher.publish(
            ids.slice(i, i + 20).map((id) => ({ topic: name, key: id, message: orderMessage(id) })),
          );
          await sleep(30);
        }
      })();
      await waitUntil('the first messages', () => handled.size >= options.revokeAfter, 60_000);
      const revokedAt = Date.now();
      await acl('revoke');
      revoked = true;
      mark('rights revoked');
      await waitUntil('the consumer to stop', () => sub.fatalError !== undefined, 60_000);
      const stoppedAfterMs = Date.now() - revokedAt;
      const error = sub.fatalError as ConnectionAccessError;
      const appliedBeforeStop = handled.size;
      const restarts = sub.stats().restarts;
      await publishing;
      await sleep(2_000); // a reconnect loop would show here
      expect(sub.stats().restarts).toBe(restarts);
      expect(error).toMatchObject({
        code: KAFKA_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
        retriable: false,
        service: 'kafka',
        reason: 'authorization',
      });
      expect(crashes).toContainEqual(
        expect.objectContaining({ kind: 'consumer-crashed', restarting: false }),
      );
      mark('consumer stopped');

      await acl('grant');
      revoked = false;
      await subscribe(second);
      await waitUntil('every message applied', () => ids.every((id) => handled.has(id)), 120_000);
      await sleep(500);
      mark('all applied');

      const lost = ids.filter((id) => !handled.has(id)).length;
      const twice = ids.filter((id) => (handled.get(id) ?? 0) > 1).length;
      const duplicates = spy.records.filter(
        (r) => r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate',
      ).length;
      const deadLettered = spy.records.filter((r) => r.disposition.kind === 'dead-letter').length;
      recordRow({
        scenario: '11 credentials revoked while consuming (Kafka SASL_SSL)',
        sent: ids.length,
        processed: spy.records.length,
        applied: [...handled.values()].reduce((x, n) => x + n, 0),
        duplicates,
        lost,
        appliedTwice: twice,
        consumersLeftDead: 0,
        faults: `ACLs of the consumer's user deleted after ${appliedBeforeStop} applied: the consumer stopped after ${stoppedAfterMs} ms with ${error.code} (no restart, no dead letter); rights restored, a new consumer of the group applied the rest`,
      });
      expect(lost).toBe(0);
      expect(twice).toBe(0);
      expect(deadLettered).toBe(0);
      expect(appliedBeforeStop).toBeLessThan(ids.length);
    } finally {
      if (revoked) await acl('grant').catch(() => undefined);
      for (const t of [first, second, publisher]) await t.close().catch(() => undefined);
      const admin = await import('kafkajs').then(({ Kafka, logLevel }) =>
        new Kafka({ brokers: [conn.kafka.adminBroker], logLevel: logLevel.NOTHING }).admin(),
      );
      await admin.connect().catch(() => undefined);
      await admin
        .deleteTopics({ topics: [name, `${name}.retry`, `${name}.dlq`] })
        .catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  }, 300_000);
}
