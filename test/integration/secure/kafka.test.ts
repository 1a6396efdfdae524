/**
 * Kafka over SASL_SSL with SCRAM-SHA-512 and ACLs (scripts/secure/start): publish and consume,
 * certificate verification on by default, and access failures that fail fast with a coded,
 * non-retriable error instead of a reconnect loop. A consumer whose rights are revoked mid-run
 * stops with that error and loses nothing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionAccessError } from '@backtrack/core';
import {
  KAFKA_ACCESS_ERROR_CODES,
  type KafkaSubscription,
  type KafkaTransport,
  type KafkaTransportOptions,
} from '@backtrack/kafka';
import {
  ACK,
  bodyOf,
  makeTransport,
  message,
  recordingProcessor,
  uniqueName,
  waitFor,
} from '../../../packages/kafka/test/helpers.js';
import { ROOT, secureServices } from '../../support/secure.js';

const secure = await secureServices();
const ACLS = `${ROOT}scripts/secure/kafka-acls.mjs`;

describe.skipIf(!secure.available)('Kafka over SASL_SSL (SCRAM-SHA-512, ACLs)', () => {
  const { conn } = secure;
  const transports: KafkaTransport[] = [];
  const ok = (overrides: Partial<KafkaTransportOptions> = {}): KafkaTransport => {
    const t = makeTransport([conn.kafka.broker], {
      ssl: { ca: [secure.pem('ca')] },
      sasl: {
        mechanism: 'scram-sha-512',
        username: conn.kafka.user,
        password: conn.kafka.password,
      },
      connectionTimeoutMs: 3000,
      ...overrides,
    });
    transports.push(t);
    return t;
  };
  afterAll(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
  });

  async function expectDenied(
    run: () => Promise<unknown>,
    code: string,
    reason: string,
  ): Promise<ConnectionAccessError> {
    const started = Date.now();
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectionAccessError);
    const denied = error as ConnectionAccessError;
    expect(denied).toMatchObject({ code, retriable: false, service: 'kafka', reason });
    expect(denied.message).toMatch(/^kafka: /);
    // Fast: the first refusal, not kafkajs' retries (many seconds).
    expect(Date.now() - started).toBeLessThan(5_000);
    return denied;
  }

  it('publishes and consumes over SASL_SSL with a verified certificate', async () => {
    const topic = uniqueName('secure.k');
    const transport = ok();
    const processor = recordingProcessor(() => ACK);
    const sub = await transport.subscribe({ topics: [topic], group: `${topic}.g`, processor });
    await transport.publish(
      [0, 1, 2].map((i) => ({ topic, key: `k${i}`, message: message({ i }) })),
    );
    await waitFor(() => processor.calls.length >= 3, 'three messages consumed', 30_000);
    expect(
      processor.calls
        .map((m) => bodyOf(m))
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    ).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    await sub.close();
  });

  it('refuses a wrong password: BT_ERR_KAFKA_AUTHENTICATION_FAILED, at once', async () => {
    const t = ok({
      sasl: { mechanism: 'scram-sha-512', username: conn.kafka.user, password: 'wrong-password' },
    });
    const denied = await expectDenied(
      () => t.publish([{ topic: uniqueName('secure.k'), message: message({}) }]),
      KAFKA_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      'authentication',
    );
    expect(denied.message).not.toContain('wrong-password');
  });

  it('verifies the certificate by default: another CA fails with BT_ERR_KAFKA_TLS_FAILED', async () => {
    const t = ok({ ssl: { ca: [secure.pem('rogueCa')] } });
    const denied = await expectDenied(
      () => t.publish([{ topic: uniqueName('secure.k'), message: message({}) }]),
      KAFKA_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-untrusted',
    );
    expect(denied.message).toContain('not signed by a trusted CA');
  });

  it('verifies the host name: a certificate for another name fails with tls-hostname', async () => {
    const t = ok({ ssl: { ca: [secure.pem('ca')], servername: 'wrong.example.invalid' } });
    await expectDenied(
      () => t.publish([{ topic: uniqueName('secure.k'), message: message({}) }]),
      KAFKA_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-hostname',
    );
  });

  it('refuses a topic the user may not write: BT_ERR_KAFKA_NOT_AUTHORIZED', async () => {
    const t = ok();
    await expectDenied(
      () => t.publish([{ topic: uniqueName('forbidden.k'), message: message({}) }]),
      KAFKA_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      'authorization',
    );
  });

  it('refuses a consumer group the user may not use, at subscribe', async () => {
    const t = ok();
    const topic = uniqueName('secure.k');
    await t.publish([{ topic, message: message({}) }]);
    await expectDenied(
      () =>
        t.subscribe({
          topics: [topic],
          group: uniqueName('forbidden.g'),
          processor: recordingProcessor(() => ACK),
        }),
      KAFKA_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      'authorization',
    );
  });

  it('stops a consumer whose rights are revoked mid-run, with that error, losing nothing', async () => {
    const acl = (cmd: string) =>
      promisify(execFile)('node', [ACLS, cmd, conn.kafka.adminBroker, conn.kafka.revocableUser], {
        cwd: ROOT,
      });
    const revocable = (): KafkaTransport =>
      ok({
        sasl: {
          mechanism: 'scram-sha-512',
          username: conn.kafka.revocableUser,
          password: conn.kafka.password,
        },
      });
    const topic = uniqueName('secure.revoke');
    const group = `${topic}.g`;
    const publisher = ok();
    const ids = [...Array(40).keys()].map(String);
    await publisher.publish(
      ids.slice(0, 20).map((i) => ({ topic, key: i, message: message({ i }) })),
    );
    const seen = new Set<string>();
    const errors: unknown[] = [];
    const processor = recordingProcessor((m) => {
      seen.add((bodyOf(m) as { i: string }).i);
      return ACK;
    });
    const first = revocable();
    let sub: KafkaSubscription | undefined;
    try {
      sub = await first.subscribe({
        topics: [topic],
        group,
        processor,
        onError: (e) => errors.push(e),
      });
      await waitFor(() => seen.size >= 20, 'the first 20 consumed', 30_000);
      await acl('revoke');
      await publisher.publish(
        ids.slice(20).map((i) => ({ topic, key: i, message: message({ i }) })),
      );
      await waitFor(() => sub!.fatalError !== undefined, 'the consumer stopped', 60_000);
      expect(sub.fatalError).toMatchObject({
        code: KAFKA_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
        retriable: false,
        service: 'kafka',
      });
      expect(errors).toContainEqual(
        expect.objectContaining({ kind: 'consumer-crashed', restarting: false }),
      );
      const restarts = sub.stats().restarts;
      await new Promise((r) => setTimeout(r, 1500));
      expect(sub.stats().restarts).toBe(restarts); // no reconnect loop
    } finally {
      await acl('grant');
    }
    // Rights back: a new consumer of the group gets every message the stopped one did not commit.
    const second = revocable();
    const sub2 = await second.subscribe({ topics: [topic], group, processor });
    await waitFor(() => ids.every((i) => seen.has(i)), 'all 40 consumed', 60_000);
    await sub2.close();
  }, 180_000);
});
