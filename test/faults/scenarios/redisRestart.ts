/**
 * Scenario 3: Redis (the dedupe store) is shut down without saving while consumers on Kafka and
 * RabbitMQ are busy, then started again empty: the store lost every claim and done mark.
 *
 * Checked:
 * - while Redis is down, no handler starts: the pipeline answers `redeliver` + pause for every
 *   delivery, nothing is acknowledged or dead-lettered (no processing without dedupe);
 * - after the restart every message published before, during and after the outage is applied
 *   exactly once (ledger in PostgreSQL, since Redis itself loses its data);
 * - the documented guarantee after the data loss (test/faults/README.md, packages/redis/README.md):
 *   a duplicate of a message completed BEFORE the loss is no longer caught by the store, so the
 *   handler runs again, and only its idempotency key keeps the effect single; a duplicate of a
 *   message completed AFTER the restart is caught by the store again (handler not called).
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { sleep, tracer } from '../support/child.js';
import {
  startConsumer,
  openTransport,
  type TestConsumer,
  type TransportName,
} from '../support/consumers.js';
import { orderMessage } from '../support/events.js';
import { startRedis, stopRedis } from '../support/services.js';
import { deadConsumers, recordRow } from '../support/summary.js';

export interface RedisRestartOptions {
  /** Messages per transport before the outage, during it, and after it. */
  perPhase: number;
  /** How long Redis stays down, ms. */
  outageMs: number;
  /** Messages of each phase published again after the restart (a producer retry, a replay). */
  replays: number;
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function redisRestartScenario(options: RedisRestartOptions): void {
  it(`Redis restarted without persistence (down ${options.outageMs} ms) under Kafka and RabbitMQ consumers: they pause while it is down; each message applied once; the guarantee that remains after the data loss holds`, async () => {
    const pool = new pg.Pool({ connectionString: serviceUrl('postgres'), max: 6 });
    const schema = uniqueName('bt_faults_redis').replaceAll('-', '_');
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(
      `CREATE TABLE "${schema}".effects (idempotency_key text PRIMARY KEY, message_id text NOT NULL)`,
    );
    const applied = async (ids: string[]): Promise<Map<string, number>> => {
      const { rows } = await pool.query<{ message_id: string; n: string }>(
        `SELECT message_id, count(*) AS n FROM "${schema}".effects WHERE message_id = ANY($1) GROUP BY message_id`,
        [ids],
      );
      return new Map(rows.map((r) => [r.message_id, Number(r.n)]));
    };
    const effect = async (call: { messageId: string; idempotencyKey: string }) => {
      await pool.query(
        `INSERT INTO "${schema}".effects (idempotency_key, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [call.idempotencyKey, call.messageId],
      );
    };
    const transports: TransportName[] = ['kafka', 'rabbitmq'];
    const consumers: TestConsumer[] = [];
    const publishers = await Promise.all(
      transports.map((t) => openTransport(t, uniqueName('faults-redis-pub'))),
    );
    const ids = (t: TransportName, phase: string) =>
      Array.from({ length: options.perPhase }, (_, i) => `${schema}-${t}-${phase}${i}`);
    const publish = async (t: TransportName, list: string[]) => {
      const c = consumers[transports.indexOf(t)]!;
      await publishers[transports.indexOf(t)]!.publish(
        list.map((id) => ({ topic: c.topic, key: id, message: orderMessage(id) })),
      );
    };
    const mark = tracer('redis-restart');
    let down: { from: number; to: number } | undefined;
    let redisStopped = false;
    try {
      for (const t of transports) {
        const name = uniqueName(`faults-redis-${t}`);
        consumers.push(
          await startConsumer({
            transport: t,
            topic: name,
            group: `${name}-g`,
            dedupePrefix: `${name}:dedupe:`,
            effect,
          }),
        );
      }
      mark('consumers subscribed');
      const all = (phase: string) => transports.flatMap((t) => ids(t, phase));
      const allApplied = async (list: string[]) => (await applied(list)).size === list.length;

      // Before: normal operation, done marks in Redis.
      for (const t of transports) await publish(t, ids(t, 'before'));
      await waitUntil('the messages before the outage', () => allApplied(all('before')), 60_000);

      mark('before: applied');
      // Outage: Redis shut down with nothing saved; messages keep arriving.
      redisStopped = true;
      await stopRedis();
      const from = Date.now();
      mark('redis stopped');
      for (const t of transports) await publish(t, ids(t, 'during'));
      await sleep(options.outageMs);
      const to = Date.now();
      down = { from, to };
      mark('published during; starting redis');
      await startRedis();
      redisStopped = false;
      mark('redis started');
      await waitUntil('the messages of the outage', () => allApplied(all('during')), 90_000);

      mark('during: applied');
      // After: fresh messages, then duplicates of messages completed before and after the loss.
      for (const t of transports) await publish(t, ids(t, 'after'));
      await waitUntil('the messages after the outage', () => allApplied(all('after')), 60_000);
      for (const t of transports) {
        await publish(t, [
          ...ids(t, 'before').slice(0, options.replays),
          ...ids(t, 'after').slice(0, options.replays),
        ]);
      }
      const handled = (c: TestConsumer, id: string) =>
        c.calls.filter((x) => x.messageId === id).length;
      const duplicateAcks = (c: TestConsumer, id: string) =>
        c.spy
          .recordsFor(id)
          .filter((r) => r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate')
          .length;
      await waitUntil(
        'every replay to be processed',
        () =>
          consumers.every(
            (c) =>
              ids(c.transportName, 'before')
                .slice(0, options.replays)
                .every((id) => handled(c, id) >= 2 || duplicateAcks(c, id) >= 1) &&
              ids(c.transportName, 'after')
                .slice(0, options.replays)
                .every((id) => handled(c, id) >= 2 || duplicateAcks(c, id) >= 1),
          ),
        60_000,
      );
      mark('replays processed');
      await sleep(500);

      const problems: string[] = [];
      const everything = [...all('before'), ...all('during'), ...all('after')];
      const counts = await applied(everything);
      let lost = 0;
      let twice = 0;
      for (const id of everything) {
        const n = counts.get(id) ?? 0;
        if (n === 0) lost++;
        if (n > 1) twice++;
        if (n !== 1) problems.push(`${id}: applied ${n} times`);
      }
      let startsWhileDown = 0;
      let pausedDeliveries = 0;
      let reRunsAfterLoss = 0;
      let caughtByStore = 0;
      for (const c of consumers) {
        const t = c.transportName;
        startsWhileDown += c.calls.filter(
          (x) => x.startedAt >= down!.from && x.startedAt <= down!.to,
        ).length;
        const inWindow = c.spy.records.filter((r) => r.at >= down!.from + 50 && r.at <= down!.to);
        pausedDeliveries += inWindow.filter((r) => r.disposition.kind === 'redeliver').length;
        for (const r of inWindow) {
          if (r.disposition.kind !== 'redeliver' || !r.disposition.pause) {
            problems.push(
              `${t}: while Redis was down a delivery got ${JSON.stringify(r.disposition)}`,
            );
          }
        }
        for (const id of ids(t, 'before').slice(0, options.replays)) {
          // The store forgot this one: the handler ran again; the idempotency key absorbed it.
          if (handled(c, id) !== 2)
            problems.push(
              `${t} ${id}: replay after the loss ran the handler ${handled(c, id)} times, documented: 2`,
            );
          else reRunsAfterLoss++;
        }
        for (const id of ids(t, 'after').slice(0, options.replays)) {
          if (handled(c, id) !== 1 || duplicateAcks(c, id) !== 1)
            problems.push(`${t} ${id}: replay after the restart not caught by the store`);
          else caughtByStore++;
        }
      }
      if (startsWhileDown > 0)
        problems.push(`${startsWhileDown} handler calls started while Redis was down`);
      const deliveries = consumers.reduce((a, c) => a + c.spy.records.length, 0);
      recordRow({
        scenario: '3 Redis restart, no persistence (Kafka+RabbitMQ)',
        sent: everything.length + transports.length * options.replays * 2,
        processed: deliveries,
        applied: [...counts.values()].reduce((a, n) => a + n, 0),
        duplicates: reRunsAfterLoss + caughtByStore,
        lost,
        appliedTwice: twice,
        consumersLeftDead: deadConsumers([lost]),
        faults: `Redis down ${down.to - down.from} ms: ${pausedDeliveries} deliveries paused (redeliver), ${startsWhileDown} handled; replays: ${caughtByStore} caught by the store, ${reRunsAfterLoss} re-ran (marks lost) and were absorbed by the idempotency key`,
      });
      expect(problems.slice(0, 20)).toEqual([]);
      expect(pausedDeliveries).toBeGreaterThan(0);
    } finally {
      mark('cleanup');
      if (redisStopped) await startRedis();
      for (const c of consumers) await c.close();
      for (const p of publishers) await p.close().catch(() => undefined);
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await pool.end();
    }
  });
}
