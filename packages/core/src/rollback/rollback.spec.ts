import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decodeEnvelope } from '../envelope/codec.js';
import { ConnectionAccessError } from '../errors/ConnectionAccessError.js';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { handle } from '../consumer/middleware.js';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import type { Journal } from '../journal/Journal.js';
import { createPublisher } from '../publisher/Publisher.js';
import { deterministicId } from '../publisher/deterministicId.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import type { OutgoingMessage, Transport } from '../transport/Transport.js';
import { defineCompensations, emit } from './compensations.js';
import { RollbackLeaseLostError } from './errors.js';
import { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';
import {
  KEPT_EFFECTS,
  planRollback,
  summarizeRollback,
  type RollbackPlan,
  type RollbackPlanItem,
  type RollbackPlanSummary,
} from './plan.js';
import type { RollbackProgressStore } from './RollbackProgressStore.js';
import { runRollback, type RunRollbackOptions, type SagaCompensator } from './run.js';

const StockReserved = defineEvent('stock.reserved')
  .version(1, z.object({ sku: z.string(), qty: z.number() }))
  .version(2, z.object({ sku: z.string(), quantity: z.int(), warehouse: z.string() }), {
    up: (v1) => ({ sku: v1.sku, quantity: v1.qty, warehouse: 'main' }),
    down: (v2) => ({ sku: v2.sku, qty: v2.quantity }),
  });
const StockReleased = defineEvent('stock.released').version(
  1,
  z.object({ sku: z.string(), quantity: z.int(), reason: z.string() }),
);
const EmailSent = defineEvent('email.sent').version(1, z.object({ to: z.string() }));
const AuditLogged = defineEvent('audit.logged').version(1, z.object({ line: z.string() }));
const Noted = defineEvent('note.added').version(1, z.object({ text: z.string() }));

const registry = new EventRegistry([StockReserved, StockReleased, EmailSent, AuditLogged, Noted]);
const compensations = defineCompensations()
  .reversible(StockReserved, (d) =>
    emit(StockReleased, { sku: d.sku, quantity: d.quantity, reason: 'rollback' }),
  )
  .reversible(Noted, () => [])
  .irreversible(EmailSent, 'an email cannot be unsent: send a correction');

class RecordingTransport implements Transport {
  readonly name = 'recording';
  readonly sent: OutgoingMessage[] = [];
  failFrom = Infinity;
  calls = 0;
  async publish(messages: OutgoingMessage[]) {
    if (++this.calls >= this.failFrom) throw new Error('broker down');
    this.sent.push(...messages);
  }
  async subscribe(): Promise<never> {
    throw new Error('not used');
  }
  async close() {}
}

const T0 = Date.parse('2026-11-25T10:00:00.000Z');

async function world() {
  let now = T0;
  const clock = () => new Date(now);
  const journal = new InMemoryJournal({ now: () => now });
  const transport = new RecordingTransport();
  const make = (service: string, version: string) =>
    createPublisher({ service, version }, { transport, journal, registry, now: clock });
  const good = make('inventory', '1.9.0');
  const bad = make('inventory', '2.0.0');
  const other = make('mailer', '2.0.0');
  const tick = (ms = 1000) => (now += ms);
  return {
    journal,
    transport,
    good,
    bad,
    other,
    tick,
    clock,
    setNow: (t: number) => (now = t),
    now: () => now,
  };
}

const ids = (plan: RollbackPlan) => plan.items.map((i) => i.original.id);
type World = Awaited<ReturnType<typeof world>>;

/** The replay these tests plan: inventory at `version`, `stock.reserved` downcast to version 1. */
const planReplay = (w: World, version = '2.0.0') =>
  planRollback(
    { service: 'inventory', version, strategy: 'replay', targetVersions: { 'stock.reserved': 1 } },
    { journal: w.journal, registry, now: w.clock },
  );

/** Runs `plan` onto the world's recording transport, with a fresh progress store. */
const runOnto = (w: World, plan: RollbackPlan, runId: string) =>
  runRollback(
    plan,
    { runId },
    {
      journal: w.journal,
      transport: w.transport,
      progressStore: new InMemoryRollbackProgressStore(),
    },
  );

describe('planRollback', () => {
  it('selects only the effects of service@version inside the window, newest first', async () => {
    const w = await world();
    const before = await w.good.publish(StockReserved, { sku: 'a', quantity: 1, warehouse: 'w' });
    w.tick();
    const e1 = await w.bad.publish(StockReserved, { sku: 'b', quantity: 2, warehouse: 'w' });
    w.tick();
    await w.other.publish(AuditLogged, { line: 'other service, same version string' });
    const e2 = await w.bad.publish(StockReserved, { sku: 'c', quantity: 3, warehouse: 'w' });
    w.tick(60_000);
    const late = await w.bad.publish(StockReserved, { sku: 'd', quantity: 4, warehouse: 'w' });

    const all = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(ids(all)).toEqual([late.id, e2.id, e1.id]);
    expect(ids(all)).not.toContain(before.id);

    const windowed = await planRollback(
      {
        service: 'inventory',
        version: '2.0.0',
        strategy: 'compensate',
        since: new Date(T0 + 1000),
        until: new Date(T0 + 2000),
      },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(ids(windowed)).toEqual([e2.id, e1.id]);
    expect(windowed.window).toEqual({
      since: new Date(T0 + 1000).toISOString(),
      until: new Date(T0 + 2000).toISOString(),
    });
  });

  it('builds compensations typed at the latest schema, with deterministic ids and the original as causation', async () => {
    const w = await world();
    // Written at v1; the reverser sees it upcast to v2 (quantity, warehouse).
    const original = await w.bad.publish(
      StockReserved,
      { sku: 'x', qty: 5 },
      { schemaVersion: 1, key: 'x' },
    );
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    const [item] = plan.items;
    expect(item!.action).toBe('compensate');
    const [message] = item!.messages;
    expect(message!.id).toBe(deterministicId(original.id, 'compensate', '0'));
    expect(message!.data).toEqual({ sku: 'x', quantity: 5, reason: 'rollback' });
    expect(message!.key).toBe('x');
    expect(message!.topic).toBe('inventory');
    const envelope = decodeEnvelope({
      headers: message!.headers,
      body: new Uint8Array(Buffer.from(message!.body, 'base64')),
    });
    expect(envelope).toMatchObject({
      type: 'stock.released',
      causationid: original.id,
      producerservice: 'inventory',
      producerversion: `rollback:${plan.planId}`,
    });

    w.tick(5_000);
    // Planned again later with the default `until` (now): same effects, same plan and ids.
    const again = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(again.planId).toBe(plan.planId);
    expect(again.items[0]!.messages[0]!.id).toBe(message!.id);
  });

  it('hands irreversible and unknown types to a person, and skips empty compensations', async () => {
    const w = await world();
    const mail = await w.bad.publish(EmailSent, { to: 'a@b.c' });
    const audit = await w.bad.publish(AuditLogged, { line: 'x' });
    const note = await w.bad.publish(Noted, { text: 'n' });
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(plan.items).toEqual([]);
    expect(plan.needsPerson.map((n) => [n.original.id, n.reason])).toEqual([
      [audit.id, 'no-compensation'],
      [mail.id, 'irreversible'],
    ]);
    expect(plan.needsPerson[1]!.message).toContain('cannot be unsent');
    expect(plan.skipped.map((s) => s.original.id)).toEqual([note.id]);
  });

  it('routes effects with a saga id to saga compensation, one entry per saga, newest first', async () => {
    const w = await world();
    const s1a = await w.bad.publish(
      StockReserved,
      { sku: 'a', quantity: 1, warehouse: 'w' },
      { sagaId: 's-1' },
    );
    const loose = await w.bad.publish(StockReserved, { sku: 'b', quantity: 1, warehouse: 'w' });
    const s2 = await w.bad.publish(EmailSent, { to: 'x@y.z' }, { sagaId: 's-2' });
    const s1b = await w.bad.publish(
      StockReserved,
      { sku: 'c', quantity: 1, warehouse: 'w' },
      { sagaId: 's-1' },
    );
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(ids(plan)).toEqual([loose.id]);
    expect(plan.sagas.map((s) => [s.sagaId, s.effects.map((e) => e.id)])).toEqual([
      ['s-1', [s1b.id, s1a.id]],
      ['s-2', [s2.id]],
    ]);
    // Even an irreversible type inside a saga goes to the saga: its compensation decides.
    expect(plan.needsPerson).toEqual([]);
  });

  it('replays oldest first, downcast to the target version, with new deterministic ids pointing to the originals', async () => {
    const w = await world();
    const a = await w.bad.publish(
      StockReserved,
      { sku: 'a', quantity: 1, warehouse: 'w' },
      { key: 'a', sagaId: 's' },
    );
    const b = await w.bad.publish(Noted, { text: 'kept at v1' });
    const plan = await planReplay(w);
    expect(ids(plan)).toEqual([a.id, b.id]);
    expect(plan.sagas).toEqual([]); // replay re-emits saga events too
    const [ma, mb] = plan.items.map((i) => i.messages[0]!);
    expect(ma).toMatchObject({
      id: deterministicId(a.id, 'replay', '1'),
      schemaVersion: 1,
      data: { sku: 'a', qty: 1 },
      key: 'a',
    });
    expect(ma!.headers).toMatchObject({
      causationid: a.id,
      schemaversion: '1',
      sagaid: 's',
      time: a.time,
    });
    expect(mb).toMatchObject({ schemaVersion: 1, data: { text: 'kept at v1' } });
  });

  it('a replay names the effect it replays in `replayof` (the first one when a replay is replayed again)', async () => {
    const w = await world();
    const a = await w.bad.publish(
      StockReserved,
      { sku: 'a', quantity: 1, warehouse: 'w' },
      { key: 'a', extensions: { tenantid: 'acme' } },
    );
    const plan = await planReplay(w);
    const [replay] = plan.items[0]!.messages;
    expect(replay!.headers).toMatchObject({ replayof: a.id, causationid: a.id, tenantid: 'acme' });
    const run = await runOnto(w, plan, 'replay-1');
    expect(run.status).toBe('completed');
    // The replay was journaled under the rollback's version; replaying that names the original.
    const again = await planReplay(w, `rollback:${plan.planId}`);
    const [second] = again.items[0]!.messages;
    expect(again.items[0]!.original.id).toBe(replay!.id);
    expect(second!.headers).toMatchObject({ replayof: a.id, causationid: replay!.id });
    // A compensation is a new effect, not the original again: no `replayof`.
    const undo = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    expect(undo.items[0]!.messages[0]!.headers['replayof']).toBeUndefined();
  });

  it('a consumer that handled the original drops its replay as a duplicate; one that never did handles it', async () => {
    const w = await world();
    const a = await w.bad.publish(
      StockReserved,
      { sku: 'a', quantity: 1, warehouse: 'w' },
      { key: 'a' },
    );
    const plan = await planReplay(w);
    await runOnto(w, plan, 'replay-2');
    const [original, replay] = w.transport.sent.map((m) => ({
      message: m.message,
      attempt: 1,
      origin: { transport: 'recording', topic: m.topic, group: 'g' },
    }));
    expect(decodeEnvelope(replay!.message)).toMatchObject({ causationid: a.id, schemaversion: 1 });
    const dedupeStore = new InMemoryDedupeStore();
    const consumer = (name: string, seen: string[]) =>
      createConsumerPipeline(
        {
          name,
          handlers: [
            handle(StockReserved, ({ envelope, idempotencyKey }) => {
              seen.push(`${envelope.id} ${idempotencyKey}`);
            }),
          ],
        },
        { registry, dedupeStore },
      );
    const reader: string[] = [];
    const reading = consumer('reader', reader);
    expect(await reading.process(original!)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await reading.process(replay!)).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(reader).toEqual([`${a.id} reader:${encodeURIComponent(a.source)}:${a.id}`]);
    // A consumer that never handled the original (it could not read version 2, say) handles the
    // replay, under the original's key: an effect it passes on keeps one idempotency key.
    const late: string[] = [];
    const lateConsumer = consumer('late', late);
    expect(await lateConsumer.process(replay!)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(late).toEqual([
      `${decodeEnvelope(replay!.message).id} late:${encodeURIComponent(a.source)}:${a.id}`,
    ]);
    expect(await lateConsumer.process(original!)).toEqual({ kind: 'ack', outcome: 'duplicate' });
  });

  it('replay and compensation keep subject, extensions and a versioned dataschema (rewritten for the target version)', async () => {
    const w = await world();
    const attributes = {
      subject: 'sku/a',
      dataschema: 'https://schemas.example.com/stock.reserved/v2',
      extensions: { tenantid: 'acme', traceparent: '00-abc-def-01' },
    };
    const a = await w.bad.publish(
      StockReserved,
      { sku: 'a', quantity: 1, warehouse: 'w' },
      attributes,
    );
    expect(decodeEnvelope(w.transport.sent[0]!.message)).toMatchObject(attributes);
    const replay = await planReplay(w);
    const [message] = replay.items[0]!.messages;
    expect(message!.headers).toMatchObject({
      causationid: a.id,
      schemaversion: '1',
      subject: 'sku/a',
      dataschema: 'https://schemas.example.com/stock.reserved/v1',
      tenantid: 'acme',
      traceparent: '00-abc-def-01',
    });
    const compensate = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    const [undo] = compensate.items[0]!.messages;
    expect(undo!.type).toBe('stock.released');
    expect(undo!.headers).toMatchObject({ subject: 'sku/a', tenantid: 'acme' });
    // The compensating event is another type: the original's dataschema is not carried over.
    expect(undo!.headers['dataschema']).toBeUndefined();
  });

  it('lists an effect a person must handle when it cannot be downcast', async () => {
    const NoDown = defineEvent('nodown')
      .version(1, z.object({ a: z.string(), n: z.number() }))
      // v1's required `n` is gone and no `down` transform recreates it: not convertible.
      .version(2, z.object({ a: z.string() }), { up: (v) => ({ a: v.a }) });
    const reg = registry.with(NoDown);
    const journal = new InMemoryJournal();
    const publisher = createPublisher(
      { service: 's', version: 'v' },
      { transport: new RecordingTransport(), journal, registry: reg },
    );
    await publisher.publish(NoDown, { a: 'x' });
    const plan = await planRollback(
      { service: 's', version: 'v', strategy: 'replay', targetVersions: { nodown: 1 } },
      { journal, registry: reg },
    );
    expect(plan.items).toEqual([]);
    expect(plan.needsPerson[0]).toMatchObject({
      reason: 'not-convertible',
      code: 'BT_ERR_SCHEMA_TRANSFORM_MISSING',
    });
  });

  it('rejects bad options with BT_ERR_ROLLBACK_CONFIG_INVALID', async () => {
    const journal = new InMemoryJournal();
    const bad = [
      { service: '', version: 'v', strategy: 'compensate' },
      { service: 's', version: 'v', strategy: 'undo' },
      { service: 's', version: 'v', strategy: 'replay', targetVersions: { 'stock.reserved': 9 } },
    ] as const;
    for (const options of bad) {
      await expect(
        planRollback(options as never, { journal, registry, compensations }),
      ).rejects.toMatchObject({
        code: 'BT_ERR_ROLLBACK_CONFIG_INVALID',
      });
    }
    await expect(
      planRollback({ service: 's', version: 'v', strategy: 'compensate' }, { journal, registry }),
    ).rejects.toMatchObject({ code: 'BT_ERR_ROLLBACK_CONFIG_INVALID' });
  });

  it('refuses a window larger than maxEffects', async () => {
    const w = await world();
    for (let i = 0; i < 3; i++) await w.bad.publish(Noted, { text: String(i) });
    await expect(
      planRollback(
        { service: 'inventory', version: '2.0.0', strategy: 'compensate', maxEffects: 2 },
        { journal: w.journal, registry, compensations },
      ),
    ).rejects.toMatchObject({ code: 'BT_ERR_ROLLBACK_PLAN_TOO_LARGE' });
  });
});

describe('runRollback', () => {
  async function planned(n: number, sagas = 0) {
    const w = await world();
    const originals: string[] = [];
    for (let i = 0; i < n; i++) {
      originals.push(
        (await w.bad.publish(StockReserved, { sku: `s${i}`, quantity: i, warehouse: 'w' })).id,
      );
      w.tick(10);
    }
    for (let i = 0; i < sagas; i++) {
      await w.bad.publish(
        StockReserved,
        { sku: `g${i}`, quantity: 1, warehouse: 'w' },
        { sagaId: `saga-${i}` },
      );
    }
    await w.bad.publish(EmailSent, { to: 'someone' });
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    w.transport.sent.length = 0;
    w.transport.calls = 0;
    return { ...w, plan, originals, progressStore: new InMemoryRollbackProgressStore() };
  }

  const compensatedIds = (sent: OutgoingMessage[]) =>
    sent.map((m) => m.message.headers.causationid);

  it('publishes every compensation newest first, journals them, and sums up', async () => {
    const w = await planned(5);
    const events: number[] = [];
    const result = await runRollback(
      w.plan,
      { runId: 'r1', batchSize: 2, batchesInFlight: 1, onProgress: (e) => events.push(e.finished) },
      w,
    );
    expect(result.status).toBe('completed');
    expect(result.summary).toEqual({
      reversed: 5,
      replayed: 0,
      skipped: 0,
      failed: 0,
      needsPerson: 1,
      sagasCompensated: 0,
      published: 5,
    });
    expect(compensatedIds(w.transport.sent)).toEqual([...w.originals].reverse());
    expect(events.at(-1)).toBe(6);
    // The compensations are journaled under the rollback's own version, published.
    const journaled = await w.journal.query({
      service: 'inventory',
      version: `rollback:${w.plan.planId}`,
    });
    expect(journaled.items).toHaveLength(5);
    expect(journaled.items.every((r) => r.state === 'published')).toBe(true);
    expect((await w.progressStore.getRun('r1'))!.status).toBe('completed');
    // Running the finished run again publishes nothing.
    const again = await runRollback(w.plan, { runId: 'r1' }, w);
    expect(again.summary.published).toBe(0);
    expect(w.transport.sent).toHaveLength(5);
  });

  it('resumes after a crash between the broker acknowledgement and the journal marks, re-publishing only the batches not marked published, under the same ids', async () => {
    const w = await planned(8);
    const store = w.progressStore;
    // Four batches of 2, one lane. A batch's journal `published` marks travel with the append of
    // the batch after next (prepared while the next one is with the broker): batch 1's with batch
    // 3's. Killed at the fence before batch 4 (the fifth: the first records the email a person
    // must handle): batches 1-3 were acknowledged, only batch 1 marked.
    const dying = killable(w.journal, store, 5);
    await expect(
      runRollback(w.plan, { runId: 'r2', batchSize: 2, batchesInFlight: 1 }, { ...w, ...dying }),
    ).rejects.toThrow('killed');
    expect(w.transport.sent).toHaveLength(6);
    const states = new Map<string, string | undefined>();
    for (const i of w.plan.items)
      for (const m of i.messages) states.set(m.id, (await w.journal.get(m.id))?.state);
    const marked = w.plan.items.filter((i) =>
      i.messages.every((m) => states.get(m.id) === 'published'),
    );
    expect(marked.map((i) => i.itemId)).toEqual(w.plan.items.slice(0, 2).map((i) => i.itemId));
    // No progress was stored for the published items: a clean batch's progress is its journal marks.
    const progressOf = async () =>
      Object.values(await store.getItems('r2')).filter((p) => p.state !== 'needs-person');
    expect(await progressOf()).toEqual([]);
    const result = await runRollback(w.plan, { runId: 'r2', batchSize: 2 }, w);
    expect(result.status).toBe('completed');
    expect(result.summary.reversed).toBe(8);
    expect(result.summary.published).toBe(6); // batches 2 and 3 again, and 4; batch 1 was marked
    const sentIds = w.transport.sent.map((m) => m.message.headers.id!);
    expect(sentIds).toHaveLength(12);
    // The duplicates carry the same envelope ids: consumer dedupe makes it one effect each.
    expect(new Set(sentIds).size).toBe(8);
    const resent = w.transport.sent.slice(6).map((m) => m.message.headers.id!);
    for (const i of marked) for (const m of i.messages) expect(resent).not.toContain(m.id);
    expect(await progressOf()).toEqual([]);
    expect(await store.getCheckpoint('r2')).toMatchObject({
      complete: true,
      pages: 1,
      forgotten: { done: 8 },
    });
  });

  it('a resume takes an item whose journal records are marked published as done, with no progress entry for it (and publishes it once)', async () => {
    const w = await planned(8);
    const store = w.progressStore;
    // Every batch acknowledged; batches 1 and 2 marked published with the appends of batches 3
    // and 4; the runner killed at the lane's last marks (batches 3 and 4), before its checkpoint.
    const dying = killable(w.journal, store);
    const journal = watchingJournal(dying.journal, (name) => {
      if (name === 'markPublished') dying.kill();
    });
    await expect(
      runRollback(
        w.plan,
        { runId: 'r2b', batchSize: 2, batchesInFlight: 1 },
        { ...w, progressStore: dying.progressStore, journal },
      ),
    ).rejects.toThrow('killed');
    const sentBefore = w.transport.sent.length;
    expect(sentBefore).toBe(8);
    const before = await store.getItems('r2b');
    expect(Object.values(before).filter((p) => p.state === 'done')).toEqual([]);
    const result = await runRollback(w.plan, { runId: 'r2b', batchSize: 2 }, w);
    expect(result.status).toBe('completed');
    expect(result.summary).toMatchObject({ reversed: 8, published: 4 });
    const resent = w.transport.sent.slice(sentBefore).map((m) => m.message.headers.causationid!);
    expect(resent.sort()).toEqual(
      w.plan.items
        .slice(4)
        .map((i) => i.original.id)
        .sort(),
    );
  });

  it('lets only one runner run a plan: the second one gets BT_ERR_ROLLBACK_RUN_LOCKED', async () => {
    const w = await planned(3);
    const store = w.progressStore;
    await store.createRun('r3', w.plan);
    const held = await store.acquireLease('r3', 'someone-else', 60_000);
    expect(held.acquired).toBe(true);
    await expect(runRollback(w.plan, { runId: 'r3' }, w)).rejects.toMatchObject({
      code: 'BT_ERR_ROLLBACK_RUN_LOCKED',
      details: { owner: 'someone-else' },
    });
    expect(w.transport.sent).toHaveLength(0);
  });

  it('stops a runner that lost its lease before it writes more progress', async () => {
    const store = new InMemoryRollbackProgressStore();
    const w = await planned(2);
    await store.createRun('r4', w.plan);
    const first = await store.acquireLease('r4', 'a', 1);
    await new Promise((r) => setTimeout(r, 5));
    const second = await store.acquireLease('r4', 'b', 60_000);
    expect(second.acquired).toBe(true);
    if (!first.acquired) throw new Error('unreachable');
    await expect(
      store.setItems('r4', first.token, [{ itemId: 'x', state: 'done' }]),
    ).rejects.toMatchObject({
      code: 'BT_ERR_ROLLBACK_LEASE_LOST',
    });
    await expect(store.renewLease('r4', first.token, 1000)).rejects.toMatchObject({
      code: 'BT_ERR_ROLLBACK_LEASE_LOST',
    });
  });

  it('refuses a different plan under an existing run id', async () => {
    const w = await planned(2);
    await runRollback(w.plan, { runId: 'r5' }, w);
    await expect(
      runRollback({ ...w.plan, planId: 'other' }, { runId: 'r5' }, w),
    ).rejects.toMatchObject({
      code: 'BT_ERR_ROLLBACK_RUN_CONFLICT',
    });
  });

  it('marks items failed when the broker keeps failing, and a resume publishes them', async () => {
    const w = await planned(4);
    w.transport.failFrom = 2;
    const sleep = async () => {};
    const first = await runRollback(
      w.plan,
      { runId: 'r6', batchSize: 2, batchesInFlight: 1, publishAttempts: 2 },
      { ...w, sleep },
    );
    expect(first.status).toBe('failed');
    expect(first.summary).toMatchObject({ reversed: 2, failed: 2 });
    w.transport.failFrom = Infinity;
    const second = await runRollback(w.plan, { runId: 'r6', batchSize: 2 }, { ...w, sleep });
    expect(second.status).toBe('completed');
    expect(second.summary).toMatchObject({ reversed: 4, failed: 0 });
    expect(new Set(compensatedIds(w.transport.sent)).size).toBe(4);
  });

  it('stops at once on an access error (bad credentials): no retry, nothing marked failed, and a resume publishes everything', async () => {
    const w = await planned(4);
    const denied = new ConnectionAccessError(
      'BT_ERR_KAFKA_AUTHENTICATION_FAILED',
      'kafka',
      'authentication',
      'kafka: authentication failed (SASL)',
    );
    const publish = w.transport.publish.bind(w.transport);
    let refused = 0;
    w.transport.publish = async () => {
      refused += 1;
      throw denied;
    };
    const sleep = async () => {};
    await expect(
      runRollback(
        w.plan,
        { runId: 'r-denied', batchSize: 2, batchesInFlight: 1, publishAttempts: 3 },
        { ...w, sleep },
      ),
    ).rejects.toBe(denied);
    expect(refused).toBe(1);
    const items = await w.progressStore.getItems('r-denied');
    expect(Object.keys(items).length).toBeGreaterThan(0);
    expect(Object.values(items).filter((i) => i.state === 'failed')).toEqual([]);
    w.transport.publish = publish;
    const resumed = await runRollback(w.plan, { runId: 'r-denied', batchSize: 2 }, { ...w, sleep });
    expect(resumed.status).toBe('completed');
    expect(resumed.summary).toMatchObject({ reversed: 4, failed: 0 });
    expect(new Set(compensatedIds(w.transport.sent)).size).toBe(4);
  });

  it('compensates sagas through the saga engine, once, and hands refused ones to a person', async () => {
    const w = await planned(1, 3);
    const calls: string[] = [];
    const sagas: SagaCompensator = {
      async cancel(sagaId) {
        calls.push(sagaId);
        if (sagaId === 'saga-2')
          throw Object.assign(
            new (await import('../saga/errors.js')).SagaStateError('past pivot', { sagaId }),
          );
        return { status: 'compensated' };
      },
    };
    const result = await runRollback(w.plan, { runId: 'r7' }, { ...w, sagas });
    expect(calls.sort()).toEqual(['saga-0', 'saga-1', 'saga-2']);
    expect(result.summary).toMatchObject({ reversed: 3, sagasCompensated: 2, needsPerson: 2 });
    expect(result.needsPerson.map((n) => n.itemId)).toContain('saga:saga-2');
    await runRollback(w.plan, { runId: 'r7' }, { ...w, sagas });
    expect(calls).toHaveLength(3); // done and needs-person sagas are not touched again
  });

  it('hands sagas to a person when no saga engine is given', async () => {
    const w = await planned(0, 1);
    const result = await runRollback(w.plan, { runId: 'r8' }, w);
    expect(result.summary).toMatchObject({ needsPerson: 2, sagasCompensated: 0 });
  });

  it('publishes and stores nothing on a dry run', async () => {
    const w = await planned(3, 1);
    const result = await runRollback(w.plan, { runId: 'dry', dryRun: true }, w);
    expect(result).toMatchObject({
      dryRun: true,
      summary: { reversed: 4, needsPerson: 1, published: 0 },
    });
    expect(w.transport.sent).toHaveLength(0);
    expect(await w.progressStore.getRun('dry')).toBeUndefined();
  });

  it('runs a dry run without dependencies, and refuses a real run without them', async () => {
    const w = await planned(2);
    const dry = await runRollback(w.plan, { runId: 'dry-alone', dryRun: true });
    expect(dry).toMatchObject({
      dryRun: true,
      status: 'dry-run',
      summary: { reversed: 2, published: 0 },
    });
    await expect(
      // @ts-expect-error a real run must be given its journal, transport and progress store
      runRollback(w.plan, { runId: 'no-deps' }),
    ).rejects.toThrow(/needs its dependencies/);
  });

  it('stops after the current batch when aborted, and a resume finishes', async () => {
    const w = await planned(6);
    const controller = new AbortController();
    const first = await runRollback(
      w.plan,
      {
        runId: 'r9',
        batchSize: 2,
        batchesInFlight: 1,
        signal: controller.signal,
        onProgress: (e) => e.state === 'done' && controller.abort(),
      },
      w,
    );
    expect(first.status).toBe('running');
    // The first `done` mark is written while the next batch is with the broker: that batch
    // finishes (and is marked done), the one prepared after it is not published.
    const sentFirst = w.transport.sent.length;
    expect(sentFirst).toBeGreaterThanOrEqual(2);
    expect(sentFirst).toBeLessThan(6);
    const second = await runRollback(w.plan, { runId: 'r9', batchSize: 2 }, w);
    expect(second.status).toBe('completed');
    // Nothing the stopped run published goes out again.
    expect(w.transport.sent).toHaveLength(6);
    expect(new Set(w.transport.sent.map((m) => m.message.headers.id)).size).toBe(6);
  });

  it("a resumed run's progress counts what the stopped runner finished (it never goes backwards)", async () => {
    const w = await planned(6);
    const controller = new AbortController();
    const before: number[] = [];
    await runRollback(
      w.plan,
      {
        runId: 'r10',
        batchSize: 2,
        batchesInFlight: 1,
        signal: controller.signal,
        onProgress: (e) => {
          before.push(e.finished);
          if (e.state === 'done') controller.abort();
        },
      },
      w,
    );
    const reached = Math.max(...before);
    expect(reached).toBeGreaterThan(0);
    const after: number[] = [];
    let total = 0;
    const second = await runRollback(
      w.plan,
      {
        runId: 'r10',
        batchSize: 2,
        onProgress: (e) => {
          after.push(e.finished);
          total = e.total;
        },
      },
      w,
    );
    expect(second.status).toBe('completed');
    expect(Math.min(...after)).toBeGreaterThanOrEqual(reached);
    expect(Math.max(...after)).toBe(total);
  });
});

describe('runRollback with several batches in flight', () => {
  function wrapStore(
    store: RollbackProgressStore,
    overrides: Partial<RollbackProgressStore>,
  ): RollbackProgressStore {
    return {
      createRun: (...a) => store.createRun(...a),
      getRun: (...a) => store.getRun(...a),
      getPlan: (...a) => store.getPlan(...a),
      listRuns: (...a) => store.listRuns(...a),
      acquireLease: (...a) => store.acquireLease(...a),
      renewLease: (...a) => store.renewLease(...a),
      releaseLease: (...a) => store.releaseLease(...a),
      getItems: (...a) => store.getItems(...a),
      getCheckpoint: (...a) => store.getCheckpoint(...a),
      setCheckpoint: (...a) => store.setCheckpoint(...a),
      finishRun: (...a) => store.finishRun(...a),
      setItems: (...a) => store.setItems(...a),
      ...overrides,
    };
  }

  /** A plan of `n` reversals over `keys` ordering keys (sagas for every third key when `sagas`). */
  async function plannedKeyed(n: number, keys: number) {
    const w = await world();
    for (let i = 0; i < n; i++) {
      await w.bad.publish(
        StockReserved,
        { sku: `s${i}`, quantity: i, warehouse: 'w' },
        { key: `k${i % keys}` },
      );
      w.tick(10);
    }
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: w.journal, registry, compensations, now: w.clock },
    );
    w.transport.sent.length = 0;
    w.transport.calls = 0;
    return { ...w, plan, progressStore: new InMemoryRollbackProgressStore() };
  }

  /** Publishes after a random delay, so batches in flight overtake each other. */
  function jitteryTransport(target: RecordingTransport): Transport {
    return {
      name: 'jittery',
      publish: async (messages) => {
        await new Promise((r) => setTimeout(r, Math.random() * 8));
        await target.publish(messages);
      },
      subscribe: () => target.subscribe(),
      close: async () => {},
    };
  }

  it('keeps plan order per key, journals each batch with one appendMany, fences each batch with one lease renewal and stores no item progress', async () => {
    const w = await plannedKeyed(60, 5);
    let appendMany = 0;
    let append = 0;
    let renewals = 0;
    const journal: Journal = {
      append: (r) => {
        append++;
        return w.journal.append(r);
      },
      appendMany: (rs) => {
        appendMany++;
        return w.journal.appendMany(rs);
      },
      markPublished: (ids) => w.journal.markPublished(ids),
      unpublished: (q) => w.journal.unpublished(q),
      query: (q) => w.journal.query(q),
      get: (id) => w.journal.get(id),
      prune: (now) => w.journal.prune(now),
    };
    const store = w.progressStore;
    let setItems = 0;
    const progressStore = wrapStore(store, {
      renewLease: (...a) => {
        renewals++;
        return store.renewLease(...a);
      },
      setItems: (...a) => {
        setItems++;
        return store.setItems(...a);
      },
    });
    const result = await runRollback(
      w.plan,
      { runId: 'p1', batchSize: 4, batchesInFlight: 3 },
      { ...w, journal, progressStore, transport: jitteryTransport(w.transport) },
    );
    expect(result.status).toBe('completed');
    expect(result.summary.reversed).toBe(60);
    expect(append).toBe(0);
    expect(appendMany).toBe(15);
    // The fence of each batch before it publishes; its progress is its journal marks.
    expect(renewals).toBe(15);
    expect(setItems).toBe(0);
    const sentCausation = w.transport.sent.map((m) => m.message.headers.causationid!);
    expect(new Set(sentCausation).size).toBe(60);
    const planned = w.plan.items.map((i) => i.original);
    for (let k = 0; k < 5; k++) {
      const order = planned.filter((o) => o.key === `k${k}`).map((o) => o.id);
      expect(sentCausation.filter((id) => order.includes(id))).toEqual(order);
    }
  });

  it("marks a batch published with the next batch's append (one journal call per batch), the last one per lane alone", async () => {
    const w = await plannedKeyed(60, 5);
    const calls = { appendAndMarkPublished: 0, appendMany: 0, markPublished: 0 };
    const marked: string[] = [];
    const journal: Journal = {
      append: (r) => w.journal.append(r),
      appendMany: (rs) => {
        calls.appendMany++;
        return w.journal.appendMany(rs);
      },
      appendAndMarkPublished: (rs, ids) => {
        calls.appendAndMarkPublished++;
        marked.push(...ids);
        return w.journal.appendAndMarkPublished(rs, ids);
      },
      markPublished: (ids) => {
        calls.markPublished++;
        marked.push(...ids);
        return w.journal.markPublished(ids);
      },
      unpublished: (q) => w.journal.unpublished(q),
      query: (q) => w.journal.query(q),
      get: (id) => w.journal.get(id),
      prune: (now) => w.journal.prune(now),
    };
    const result = await runRollback(
      w.plan,
      { runId: 'm1', batchSize: 4, batchesInFlight: 3 },
      { ...w, journal, transport: jitteryTransport(w.transport) },
    );
    expect(result.status).toBe('completed');
    // 15 batches, 3 lanes: every append carries the previous batch's marks; each lane's last
    // batch is marked alone when the lane ends.
    expect(calls).toEqual({ appendAndMarkPublished: 15, appendMany: 0, markPublished: 3 });
    const ids = w.plan.items.flatMap((i) => i.messages.map((m) => m.id));
    expect(marked.sort()).toEqual(ids.sort());
    for (const id of ids) expect((await w.journal.get(id))?.state).toBe('published');
  });

  it('a run killed with batches in flight resumes without publishing a done item again', async () => {
    const w = await plannedKeyed(40, 8);
    const store = w.progressStore;
    // Four lanes of four batches. Killed at the 13th batch's fence: the batches before it were
    // acknowledged, and each lane's first batch was marked published with its third's append.
    const dying = killable(w.journal, store, 13);
    await expect(
      runRollback(
        w.plan,
        { runId: 'p2', batchSize: 3, batchesInFlight: 4 },
        { ...w, ...dying, transport: jitteryTransport(w.transport) },
      ),
    ).rejects.toThrow('killed');
    const doneBefore: string[] = [];
    for (const i of w.plan.items) {
      const states = await Promise.all(i.messages.map((m) => w.journal.get(m.id)));
      if (states.every((r) => r?.state === 'published')) doneBefore.push(i.original.id);
    }
    expect(doneBefore.length).toBeGreaterThan(0);
    const sentBefore = w.transport.sent.length;
    expect(sentBefore).toBeGreaterThan(doneBefore.length);
    const result = await runRollback(w.plan, { runId: 'p2', batchSize: 3, batchesInFlight: 4 }, w);
    expect(result.status).toBe('completed');
    expect(result.summary.reversed).toBe(40);
    const resent = w.transport.sent.slice(sentBefore).map((m) => m.message.headers.causationid!);
    expect(resent.filter((id) => doneBefore.includes(id))).toEqual([]);
    // Everything reversed, and a re-published compensation carries its first envelope id.
    const all = w.transport.sent;
    expect(new Set(all.map((m) => m.message.headers.causationid)).size).toBe(40);
    expect(new Set(all.map((m) => m.message.headers.id)).size).toBe(40);
  });

  it('stops every lane when the lease is lost, before publishing more', async () => {
    const w = await plannedKeyed(30, 6);
    const store = w.progressStore;
    let fences = 0;
    const fenced = wrapStore(store, {
      renewLease: async (...a) => {
        if (++fences === 3) throw new RollbackLeaseLostError('p3');
        return store.renewLease(...a);
      },
    });
    await expect(
      runRollback(
        w.plan,
        { runId: 'p3', batchSize: 2, batchesInFlight: 3 },
        { ...w, progressStore: fenced },
      ),
    ).rejects.toMatchObject({ code: 'BT_ERR_ROLLBACK_LEASE_LOST' });
    // At most the batches that were already past their fence went out.
    expect(w.transport.sent.length).toBeLessThanOrEqual(2 * 3);
  });
});

describe('lanesOf', () => {
  /** Plan item `n`: its original's key and saga, and its one message's key (`msgKey`). */
  const item = (n: number, o: { key?: string; sagaId?: string; msgKey?: string }) =>
    ({
      itemId: `i${n}`,
      action: 'compensate',
      original: { id: `e${n}`, type: 't', schemaVersion: 1, seq: n, time: '', ...o },
      messages: [
        {
          id: `m${n}`,
          type: 't',
          schemaVersion: 1,
          topic: 't',
          headers: {},
          body: '',
          data: {},
          key: o.msgKey,
        },
      ],
    }) as RollbackPlanItem;

  it('puts items that share a saga or a key in one lane, in plan order, and balances the rest', async () => {
    const { lanesOf } = await import('./run.js');
    const items = [
      item(0, { key: 'a' }),
      item(1, { key: 'b' }),
      item(2, { sagaId: 's', key: 'c' }),
      item(3, { key: 'x', msgKey: 'a' }), // its compensation goes to key a: same lane as item 0
      item(4, { sagaId: 's' }),
      item(5, { key: 'c' }),
      item(6, {}),
      item(7, {}),
    ];
    const lanes = lanesOf(items, 3);
    const laneOf = (id: string) => lanes.findIndex((l) => l.some((i) => i.itemId === id));
    expect(laneOf('i3')).toBe(laneOf('i0'));
    expect(laneOf('i4')).toBe(laneOf('i2'));
    expect(laneOf('i5')).toBe(laneOf('i2'));
    for (const lane of lanes) {
      const order = lane.map((i) => Number(i.itemId.slice(1)));
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    expect(lanes.flat()).toHaveLength(8);
    expect(lanes).toHaveLength(3);
    expect(lanesOf(items, 1)).toEqual([items]);
  });

  it('groups a plan of one key per item by that key, as the union-find over all keys does', async () => {
    const { lanesOf } = await import('./run.js');
    // One ordering key per item at most: a message keyed as its original, or an unkeyed one.
    const plain = [
      item(0, { key: 'a', msgKey: 'a' }),
      item(1, { key: 'b' }),
      item(2, { key: 'a' }),
      item(3, { msgKey: 'c' }),
      item(4, {}),
      item(5, { key: 'c', msgKey: 'c' }),
      item(6, { key: 'b', msgKey: 'b' }),
      item(7, {}),
      item(8, { key: 'd' }),
    ];
    const lanes = lanesOf(plain, 3);
    const laneOf = (id: string) => lanes.findIndex((l) => l.some((i) => i.itemId === id));
    expect(laneOf('i2')).toBe(laneOf('i0'));
    expect(laneOf('i6')).toBe(laneOf('i1'));
    expect(laneOf('i5')).toBe(laneOf('i3'));
    expect(lanes.flat()).toHaveLength(plain.length);
    for (const lane of lanes) {
      const order = lane.map((i) => Number(i.itemId.slice(1)));
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    // A saga item at the end sends the whole list through the union-find: the lanes of the
    // plain items are the same.
    const linked = lanesOf([...plain, item(9, { sagaId: 's', key: 'e' })], 3);
    expect(linked.map((l) => l.filter((i) => i.itemId !== 'i9'))).toEqual(lanes);
  });
});

/** `store` with some methods replaced (the others bound to it). */
function overriding(
  store: RollbackProgressStore,
  overrides: Partial<RollbackProgressStore>,
): RollbackProgressStore {
  return new Proxy(store, {
    get(target, name: keyof RollbackProgressStore) {
      const value = overrides[name] ?? target[name];
      return typeof value === 'function' && !(name in overrides) ? value.bind(target) : value;
    },
  });
}

/** The journal's writes (appends and marks), each reported before it is done. */
const JOURNAL_WRITES = ['append', 'appendMany', 'appendAndMarkPublished', 'markPublished'];

/** `journal` with `before(name, args)` called before each of its writes (it may throw). */
function watchingJournal(
  journal: Journal,
  before: (name: string, args: unknown[]) => void,
): Journal {
  return new Proxy(journal, {
    get(target, name: string) {
      const value = (target as unknown as Record<string, unknown>)[name];
      if (typeof value !== 'function') return value;
      const fn = value as (...a: unknown[]) => Promise<unknown>;
      if (!JOURNAL_WRITES.includes(name)) return fn.bind(target);
      return async (...args: unknown[]) => {
        before(name, args);
        return fn.apply(target, args);
      };
    },
  });
}

/**
 * A progress store and a journal that die together, as a killed process does: at the
 * `killAtFence`-th fenced progress call before a publish (`renewLease` or `setItems`), or at
 * `kill()`, that call and every later write of both throw `killed` (the runner's own
 * `releaseLease` on the way out still works, as a killed runner's lease expires).
 */
function killable(journal: Journal, store: RollbackProgressStore, killAtFence = Infinity) {
  const state = { killed: false, fences: 0 };
  const dead = () => {
    if (state.killed) throw new Error('killed');
  };
  const fence = () => {
    if (++state.fences === killAtFence) state.killed = true;
    dead();
  };
  const progressStore = overriding(store, {
    renewLease: async (...a: Parameters<RollbackProgressStore['renewLease']>) => {
      fence();
      return store.renewLease(...a);
    },
    setItems: async (...a: Parameters<RollbackProgressStore['setItems']>) => {
      fence();
      return store.setItems(...a);
    },
    setCheckpoint: async (...a: Parameters<RollbackProgressStore['setCheckpoint']>) => {
      dead();
      return store.setCheckpoint(...a);
    },
    finishRun: async (...a: Parameters<RollbackProgressStore['finishRun']>) => {
      dead();
      return store.finishRun(...a);
    },
  });
  return {
    progressStore,
    journal: watchingJournal(journal, dead),
    state,
    kill: () => (state.killed = true),
  };
}

describe('a plan streamed from the journal (summarizeRollback + runRollback)', () => {
  /** `n` reversible effects over 4 keys, with an irreversible and a nothing-to-do one every 10. */
  async function journaled(n: number) {
    const w = await world();
    for (let i = 0; i < n; i++) {
      if (i % 10 === 3) await w.bad.publish(EmailSent, { to: `p${i}@x` });
      else if (i % 10 === 7) await w.bad.publish(Noted, { text: `n${i}` });
      else
        await w.bad.publish(
          StockReserved,
          { sku: `s${i}`, quantity: i, warehouse: 'w' },
          { key: `k${i % 4}` },
        );
      w.tick(10);
    }
    w.transport.sent.length = 0;
    const deps = { journal: w.journal, registry, compensations, now: w.clock };
    return { ...w, deps };
  }

  it('sends a smaller first batch per lane on the first page (the broker idle), full batches on a page started ahead', async () => {
    const w = await journaled(300);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const plan = await planRollback(options, w.deps);
    const summary = await summarizeRollback(options, w.deps);
    const sizes: number[] = [];
    const publish = w.transport.publish.bind(w.transport);
    w.transport.publish = async (messages) => {
      sizes.push(messages.length);
      await publish(messages);
    };
    const store = new InMemoryRollbackProgressStore();
    const result = await runRollback(
      summary,
      // Two pages of 150 effects (120 items each), one lane.
      { runId: 'first', pageSize: 150, batchSize: 100, batchesInFlight: 1 },
      { ...w, registry, compensations, progressStore: store },
    );
    expect(result.status).toBe('completed');
    // The first page's first batch is a quarter of batchSize (at least 25); the second page,
    // prepared during the first one's last publish, starts with a full batch.
    expect(sizes).toEqual([25, 95, 100, 20]);
    const sent = w.transport.sent.map((m) => m.message.headers.id!);
    expect(sent).toEqual(plan.items.flatMap((i) => i.messages.map((m) => m.id)));
  });

  it("hands a batch to the transport before it prepares the next batch's writes", async () => {
    const w = await journaled(10);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const summary = await summarizeRollback(options, w.deps);
    const log: string[] = [];
    const store = new InMemoryRollbackProgressStore();
    // A batch's preparation: its journal append (its fence carries no items).
    const journal = watchingJournal(w.journal, (name, args) => {
      const records = args[0] as unknown[];
      if (name !== 'markPublished' && records.length > 0) log.push(`prepare ${records.length}`);
    });
    const publish = w.transport.publish.bind(w.transport);
    w.transport.publish = (messages) => {
      log.push(`publish ${messages.length}`);
      return publish(messages);
    };
    const result = await runRollback(
      summary,
      { runId: 'order-of-work', batchSize: 3, batchesInFlight: 1 },
      { ...w, journal, registry, compensations, progressStore: store },
    );
    expect(result.status).toBe('completed');
    // 8 items in batches of 3: each batch is published before the next one is prepared.
    expect(log).toEqual([
      'prepare 3',
      'publish 3',
      'prepare 3',
      'publish 3',
      'prepare 2',
      'publish 2',
    ]);
  });

  it('gives the planId and counts of planRollback', async () => {
    const w = await journaled(45);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const plan = await planRollback(options, w.deps);
    const summary = await summarizeRollback(options, w.deps);
    expect(summary.planId).toBe(plan.planId);
    expect(summary.counts).toEqual(plan.counts);
    expect(summary).not.toHaveProperty('items');
    expect(summary.counts).toMatchObject({ effects: 45, items: 36, needsPerson: 5, skipped: 4 });
  });

  it('runs page by page what the plan in memory runs, and keeps only the current page in the store', async () => {
    const w = await journaled(45);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const plan = await planRollback(options, w.deps);
    const summary = await summarizeRollback(options, w.deps);
    const store = new InMemoryRollbackProgressStore();
    let largest = 0;
    const watched = {
      ...w,
      registry,
      compensations,
      progressStore: new Proxy(store, {
        get(target, name: keyof InMemoryRollbackProgressStore) {
          if (name === 'setItems') {
            return async (...a: Parameters<InMemoryRollbackProgressStore['setItems']>) => {
              await target.setItems(...a);
              largest = Math.max(largest, Object.keys(await target.getItems(a[0])).length);
            };
          }
          const value = target[name];
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
    };
    await expect(
      runRollback(summary, { runId: 'no-registry' }, { ...w, progressStore: store }),
    ).rejects.toMatchObject({
      code: 'BT_ERR_ROLLBACK_CONFIG_INVALID',
    });
    const result = await runRollback(
      summary,
      { runId: 's1', pageSize: 8, batchSize: 3, batchesInFlight: 2 },
      watched,
    );
    expect(result).toMatchObject({
      status: 'completed',
      summary: { reversed: 36, skipped: 4, needsPerson: 5, failed: 0, published: 36 },
    });
    expect(result.needsPerson).toHaveLength(5);
    // Exactly the messages of the plan in memory, in its order per key.
    const expected = plan.items.flatMap((i) => i.messages.map((m) => m.id));
    const sent = w.transport.sent.map((m) => m.message.headers.id!);
    expect([...sent].sort()).toEqual([...expected].sort());
    // The bytes of the plan, published and journaled (a run's own pages carry no base64 body).
    const bodies = new Map(plan.items.flatMap((i) => i.messages.map((m) => [m.id, m.body])));
    for (const { message } of w.transport.sent) {
      const id = message.headers.id!;
      expect(Buffer.from(message.body).toString('base64')).toBe(bodies.get(id));
      const journaled = await w.journal.get(id);
      expect(Buffer.from(journaled!.message.body).toString('base64')).toBe(bodies.get(id));
    }
    for (let k = 0; k < 4; k++) {
      const ofKey = plan.items
        .filter((i) => i.original.key === `k${k}`)
        .map((i) => i.messages[0]!.id);
      expect(sent.filter((id) => ofKey.includes(id))).toEqual(ofKey);
    }
    // The store never held more than three pages (8 effects each: the one whose checkpoint is
    // being written, the one publishing, the one prepared ahead) plus the items for a person.
    expect(largest).toBeLessThanOrEqual(3 * 8 + 5);
    expect(Object.keys(await store.getItems('s1'))).toHaveLength(5);
    expect(await store.getPlan('s1')).not.toHaveProperty('items');
  });

  it('keeps the order per key across pages when the next page is prepared during the last batches of this one', async () => {
    const w = await journaled(120);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const plan = await planRollback(options, w.deps);
    const summary = await summarizeRollback(options, w.deps);
    // Every publish is answered after a different delay, so a page whose lanes published before
    // the previous page's last acknowledgements would put a key's messages out of order.
    let flight = 0;
    const publish = w.transport.publish.bind(w.transport);
    w.transport.publish = async (messages) => {
      flight = (flight * 7 + 3) % 11;
      await new Promise((r) => setTimeout(r, flight));
      await publish(messages);
    };
    const store = new InMemoryRollbackProgressStore();
    const result = await runRollback(
      summary,
      { runId: 'order', pageSize: 10, batchSize: 2, batchesInFlight: 2 },
      { ...w, registry, compensations, progressStore: store },
    );
    expect(result.status).toBe('completed');
    const sent = w.transport.sent.map((m) => m.message.headers.id!);
    const expected = plan.items.flatMap((i) => i.messages.map((m) => m.id));
    expect([...sent].sort()).toEqual([...expected].sort());
    for (let k = 0; k < 4; k++) {
      const ofKey = plan.items
        .filter((i) => i.original.key === `k${k}`)
        .map((i) => i.messages[0]!.id);
      expect(sent.filter((id) => ofKey.includes(id))).toEqual(ofKey);
    }
    expect(await store.getCheckpoint('order')).toMatchObject({ complete: true });
  });

  it('publishes nothing of the page prepared ahead when a batch of this page failed, and a resume publishes every effect once', async () => {
    const w = await journaled(45);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const summary = await summarizeRollback(options, w.deps);
    const store = new InMemoryRollbackProgressStore();
    // Prepared: the item's compensation journaled (before its batch may publish).
    const prepared = new Set<string>();
    const journal = watchingJournal(w.journal, (name, args) => {
      if (name === 'markPublished') return;
      for (const r of args[0] as { causationId: string }[])
        prepared.add(`compensate:${r.causationId}`);
    });
    // The first page's last publish fails (8 effects: 6 items, 3 batches of 2, one lane).
    const publish = w.transport.publish.bind(w.transport);
    let calls = 0;
    w.transport.publish = async (messages) => {
      if (++calls === 3) throw new Error('broker down');
      await publish(messages);
    };
    const deps = {
      ...w,
      journal,
      registry,
      compensations,
      progressStore: store,
      sleep: async () => {},
    };
    const first = await runRollback(
      summary,
      { runId: 'gate', pageSize: 8, batchSize: 2, batchesInFlight: 1, publishAttempts: 1 },
      deps,
    );
    expect(first.status).toBe('failed');
    const sentBefore = w.transport.sent.map((m) => m.message.headers.causationid!);
    // The second page was prepared (its first batch journaled) but never published.
    const firstPage = new Set(sentBefore.map((id) => `compensate:${id}`));
    expect(
      [...prepared].some((id) => !firstPage.has(id) && !first.failed.some((f) => f.itemId === id)),
    ).toBe(true);
    expect(sentBefore).toHaveLength(4);
    w.transport.publish = publish;
    const second = await runRollback(summary, { runId: 'gate', pageSize: 8 }, deps);
    expect(second.status).toBe('completed');
    expect(second.summary).toMatchObject({ reversed: 36, failed: 0 });
    const all = w.transport.sent.map((m) => m.message.headers.causationid!);
    expect(new Set(all).size).toBe(36);
    expect(all).toHaveLength(36);
  });

  /** The test's compensations, counting the reverser's calls. */
  function counting() {
    const calls = { n: 0 };
    const counted = defineCompensations()
      .reversible(StockReserved, (d) => {
        calls.n++;
        return emit(StockReleased, { sku: d.sku, quantity: d.quantity, reason: 'rollback' });
      })
      .reversible(Noted, () => [])
      .irreversible(EmailSent, 'an email cannot be unsent: send a correction');
    return { calls, counted };
  }

  it('runs a summary made in this process with its planning, not planning again', async () => {
    const w = await journaled(2_500);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const plan = await planRollback(options, w.deps);
    const { calls, counted } = counting();
    const summary = await summarizeRollback(options, { ...w.deps, compensations: counted });
    expect(summary.planId).toBe(plan.planId);
    const reversible = plan.items.length;
    expect(calls.n).toBe(reversible);
    calls.n = 0;
    const result = await runRollback(
      summary,
      { runId: 'kept', pageSize: 1_000 },
      {
        ...w,
        registry,
        compensations: counted,
        progressStore: new InMemoryRollbackProgressStore(),
      },
    );
    expect(result).toMatchObject({
      status: 'completed',
      summary: { reversed: reversible, skipped: 250, needsPerson: 250, published: reversible },
    });
    expect(calls.n).toBe(0);
    // Exactly the plan's messages and bytes, in its order per key.
    const expected = new Map(plan.items.flatMap((i) => i.messages.map((m) => [m.id, m.body])));
    const sent = w.transport.sent.map((m) => m.message.headers.id!);
    expect(sent).toHaveLength(expected.size);
    for (const { message } of w.transport.sent) {
      expect(Buffer.from(message.body).toString('base64')).toBe(expected.get(message.headers.id!));
    }
    for (let k = 0; k < 4; k++) {
      const ofKey = plan.items
        .filter((i) => i.original.key === `k${k}`)
        .map((i) => i.messages[0]!.id);
      expect(sent.filter((id) => ofKey.includes(id))).toEqual(ofKey);
    }
  }, 60_000);

  it('keeps nothing of a summary over the limit: its run plans every effect', async () => {
    const w = await journaled(KEPT_EFFECTS + 10);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const { calls, counted } = counting();
    const summary = await summarizeRollback(options, { ...w.deps, compensations: counted });
    const reversible = calls.n;
    calls.n = 0;
    const result = await runRollback(
      summary,
      { runId: 'over' },
      {
        ...w,
        registry,
        compensations: counted,
        progressStore: new InMemoryRollbackProgressStore(),
      },
    );
    expect(result.summary).toMatchObject({ reversed: reversible, published: reversible });
    expect(calls.n).toBe(reversible);
  }, 60_000);

  it('plans again for a run with other collaborators, a changed summary, small pages or a resume', async () => {
    const w = await journaled(40);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const { calls, counted } = counting();
    const run = (
      summary: RollbackPlanSummary,
      runId: string,
      o: Partial<RunRollbackOptions> = {},
    ) =>
      runRollback(
        summary,
        { runId, ...o },
        {
          ...w,
          registry,
          compensations: counted,
          progressStore: new InMemoryRollbackProgressStore(),
        },
      );
    // Summarized with other compensations than the run's.
    const other = await summarizeRollback(options, w.deps);
    calls.n = 0;
    await run(other, 'other');
    expect(calls.n).toBe(32);
    // A copy of the summary, a summary changed since, pages smaller than the summary's reads.
    const summary = await summarizeRollback(options, { ...w.deps, compensations: counted });
    calls.n = 0;
    await run({ ...summary }, 'copy');
    expect(calls.n).toBe(32);
    const changed = await summarizeRollback(options, { ...w.deps, compensations: counted });
    changed.window.since = new Date(T0).toISOString();
    calls.n = 0;
    await run(changed, 'changed');
    expect(calls.n).toBe(32);
    const small = await summarizeRollback(options, { ...w.deps, compensations: counted });
    calls.n = 0;
    await run(small, 'small', { pageSize: 8 });
    expect(calls.n).toBe(32);
    // Taken once: the same summary run again is planned again.
    const once = await summarizeRollback(options, { ...w.deps, compensations: counted });
    calls.n = 0;
    await run(once, 'once-1');
    expect(calls.n).toBe(0);
    await run(once, 'once-2');
    expect(calls.n).toBe(32);
  });

  /** The plan items whose every journal record is marked published (a runner finished them). */
  async function journalDoneOf(
    journal: Journal,
    options: Parameters<typeof planRollback>[0],
    deps: Parameters<typeof planRollback>[1],
  ) {
    const full = await planRollback(options, deps);
    const done = new Set<string>();
    for (const item of full.items) {
      const records = await Promise.all(item.messages.map((m) => journal.get(m.id)));
      if (records.every((r) => r?.state === 'published')) done.add(item.itemId);
    }
    return done;
  }

  it("killed after taking the summary's planning, resumes from the journal with every effect reversed once", async () => {
    const w = await journaled(3_000);
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    const summary = await summarizeRollback(options, w.deps);
    const store = new InMemoryRollbackProgressStore();
    let checkpoints = 0;
    const dying = killable(w.journal, store);
    // Killed at its second checkpoint: one kept page checkpointed, the second one published.
    const crashing = overriding(dying.progressStore, {
      setCheckpoint: async (...a: Parameters<RollbackProgressStore['setCheckpoint']>) => {
        if (++checkpoints === 2) dying.kill();
        await dying.progressStore.setCheckpoint(...a);
      },
    });
    const run = (progressStore: RollbackProgressStore, journal: Journal) =>
      runRollback(
        summary,
        { runId: 'k', pageSize: 1_000 },
        { ...w, journal, registry, compensations, progressStore },
      );
    await expect(run(crashing, dying.journal)).rejects.toThrow('killed');
    const sentBefore = w.transport.sent.length;
    // The second page's checkpoint is written while the third page publishes: the crash surfaces
    // at the third page's end. What was marked published in the journal is done.
    expect(sentBefore).toBeGreaterThanOrEqual(1_600);
    const done = await journalDoneOf(w.journal, options, w.deps);
    expect(done.size).toBeGreaterThan(800);
    expect(done.size).toBeLessThanOrEqual(sentBefore);
    const result = await run(store, w.journal);
    expect(result.status).toBe('completed');
    expect(result.summary).toMatchObject({ reversed: 2_400, skipped: 300, needsPerson: 300 });
    // Resumed at the second page, planned from the journal: its items marked published are not
    // published again, every other one is (a second copy under the same id when it was sent).
    const resent = w.transport.sent
      .slice(sentBefore)
      .map((m) => `compensate:${m.message.headers.causationid!}`);
    expect(resent.filter((id) => done.has(id))).toEqual([]);
    expect(resent).toHaveLength(2_400 - done.size);
    const all = w.transport.sent.map((m) => m.message.headers);
    expect(new Set(all.map((h) => h.causationid)).size).toBe(2_400);
    expect(new Set(all.map((h) => h.id)).size).toBe(2_400);
  }, 60_000);

  it('killed at any write (progress store or journal), resumes with every effect reversed and none marked published again', async () => {
    const options = { service: 'inventory', version: '2.0.0', strategy: 'compensate' } as const;
    let crashPoint = 1;
    for (; ; crashPoint++) {
      const w = await journaled(30);
      const summary = await summarizeRollback(options, w.deps);
      const store = new InMemoryRollbackProgressStore();
      let writes = 0;
      const dying = killable(w.journal, store);
      const at = () => {
        if (++writes === crashPoint) dying.kill();
      };
      // Every write the run makes counts: its fences, progress writes and checkpoints, and its
      // journal appends and marks. From the crash point on, all of them fail.
      const crashing = overriding(dying.progressStore, {
        renewLease: async (...a: Parameters<RollbackProgressStore['renewLease']>) => {
          at();
          await dying.progressStore.renewLease(...a);
        },
        setItems: async (...a: Parameters<RollbackProgressStore['setItems']>) => {
          at();
          await dying.progressStore.setItems(...a);
        },
        setCheckpoint: async (...a: Parameters<RollbackProgressStore['setCheckpoint']>) => {
          at();
          await dying.progressStore.setCheckpoint(...a);
        },
        finishRun: async (...a: Parameters<RollbackProgressStore['finishRun']>) => {
          at();
          await dying.progressStore.finishRun(...a);
        },
      });
      const journal = watchingJournal(dying.journal, at);
      const run = (progressStore: RollbackProgressStore, j: Journal) =>
        runRollback(
          summary,
          { runId: 'k', pageSize: 7, batchSize: 2, batchesInFlight: 2 },
          { ...w, journal: j, registry, compensations, progressStore, sleep: async () => {} },
        );
      const first = await run(crashing, journal).then(
        (r) => r,
        (error: Error) => error,
      );
      if (!(first instanceof Error)) {
        // Past the last write: the run ended before the crash point, every point was tried.
        expect(first.status).toBe('completed');
        break;
      }
      expect(first.message).toBe('killed');
      const sentBefore = w.transport.sent.length;
      const done = await journalDoneOf(w.journal, options, w.deps);
      // (The failed runner released its lease on the way out, as a killed one's expires.)
      const result = await run(store, w.journal);
      expect(result.status).toBe('completed');
      expect(result.summary).toMatchObject({ reversed: 24, skipped: 3, needsPerson: 3 });
      const resent = w.transport.sent
        .slice(sentBefore)
        .map((m) => `compensate:${m.message.headers.causationid!}`);
      expect(resent.filter((id) => done.has(id))).toEqual([]);
      // Every effect reversed; a second copy (acknowledged, not yet marked) has the same id.
      const all = w.transport.sent.map((m) => m.message.headers);
      expect(new Set(all.map((h) => h.causationid)).size).toBe(24);
      expect(new Set(all.map((h) => h.id)).size).toBe(24);
    }
    expect(crashPoint).toBeGreaterThan(20);
  }, 30_000);
});
