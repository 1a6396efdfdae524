/**
 * The saga engine on PostgreSQL: core's crash harness (a crash at every saga-log write, recovery
 * on a fresh engine, duplicate deliveries) run with PostgresSagaStore as the saga log.
 */
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defineSaga,
  type SagaListQuery,
  type SagaPage,
  type SagaRecord,
  type SagaStore,
} from '@backtrack/core';
import { runSagaHarness } from '@backtrack/core/testing';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresSagaStore } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

/**
 * The harness wants a fresh store per scenario and always uses the saga id `harness-saga`: each
 * scenario gets its own id namespace inside one PostgreSQL schema.
 */
class NamespacedSagaStore implements SagaStore {
  constructor(
    private readonly inner: SagaStore,
    private readonly ns: string,
  ) {}
  #in = (id: string) => `${this.ns}/${id}`;
  #out = (r: SagaRecord): SagaRecord => ({ ...r, sagaId: r.sagaId.slice(this.ns.length + 1) });
  async create(record: SagaRecord) {
    const r = await this.inner.create({ ...record, sagaId: this.#in(record.sagaId) });
    return { ...r, record: this.#out(r.record) };
  }
  async get(sagaId: string) {
    const r = await this.inner.get(this.#in(sagaId));
    return r && this.#out(r);
  }
  async update(record: SagaRecord, expectedRevision: number) {
    return this.#out(
      await this.inner.update({ ...record, sagaId: this.#in(record.sagaId) }, expectedRevision),
    );
  }
  async list(query: SagaListQuery = {}): Promise<SagaPage> {
    const page = await this.inner.list(query);
    const items = page.items.filter((r) => r.sagaId.startsWith(`${this.ns}/`)).map(this.#out);
    return page.nextCursor === undefined ? { items } : { items, nextCursor: page.nextCursor };
  }
}

function world() {
  let stock = 10;
  let balance = 100;
  const seen = new Set<string>();
  const once = (key: string, effect: () => void) => {
    if (seen.has(key)) return;
    seen.add(key);
    effect();
  };
  return {
    reset: () => {
      stock = 10;
      balance = 100;
      seen.clear();
    },
    effects: () => ({ stock, balance }),
    reserve: (key: string, n: number) => once(key, () => (stock -= n)),
    release: (key: string, n: number) => once(key, () => (stock += n)),
    charge: (key: string, amount: number) => once(key, () => (balance -= amount)),
    refund: (key: string, amount: number) => once(key, () => (balance += amount)),
  };
}

describe.skipIf(!postgres.available)('saga engine crash harness on PostgresSagaStore', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_saga_h');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('ends every crash and duplicate scenario like the clean run', async () => {
    const w = world();
    const definition = defineSaga('pg-order', {
      input: z.object({ qty: z.number(), amount: z.number() }),
    })
      .step('reserve', {
        run: ({ input, idempotencyKey }) => (
          w.reserve(idempotencyKey, input.qty),
          { qty: input.qty }
        ),
        compensate: ({ result, idempotencyKey }) => w.release(idempotencyKey, result.qty),
      })
      .step('charge', {
        run: ({ input, idempotencyKey }) => (
          w.charge(idempotencyKey, input.amount),
          { amount: input.amount }
        ),
        compensate: ({ result, idempotencyKey }) => w.refund(idempotencyKey, result.amount),
      })
      .step('ship', { run: () => 'shipped', pivot: true })
      .build();
    const store = new PostgresSagaStore({ pool: db.pool }, { schema: db.schema });
    const report = await runSagaHarness({
      definition,
      input: { qty: 2, amount: 30 },
      reset: w.reset,
      effects: w.effects,
      store: () => new NamespacedSagaStore(store, uniqueName('scenario')),
    });
    expect(report.failures).toEqual([]);
    expect(report.scenarios.filter((s) => s.name.includes('crash@')).length).toBeGreaterThan(10);
    // The log really is in PostgreSQL: one row per scenario run.
    const rows = await db.pool.query(`SELECT count(*)::int AS n FROM "${db.schema}".sagas`);
    expect(rows.rows[0].n).toBeGreaterThanOrEqual(report.scenarios.length);
  });
});
