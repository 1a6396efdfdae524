import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { createPublisher } from '../publisher/Publisher.js';
import { defineSaga } from '../saga/definition.js';
import { InMemorySagaStore } from '../saga/InMemorySagaStore.js';
import { createSagaEngine } from '../saga/SagaEngine.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import type { Transport } from '../transport/Transport.js';
import { defineCompensations } from './compensations.js';
import { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';
import { planRollback } from './plan.js';
import { runRollback } from './run.js';

const StockReserved = defineEvent('stock.reserved').version(1, z.object({ sku: z.string() }));
const registry = new EventRegistry([StockReserved]);

describe('rollback of saga effects through the real saga engine', () => {
  it('hands a running saga of the bad version to the engine, which compensates its steps once', async () => {
    const transport: Transport = {
      name: 'null',
      publish: async () => {},
      subscribe: async () => ({ close: async () => {} }),
      close: async () => {},
    };
    const journal = new InMemoryJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.0.0' },
      { transport, journal, registry },
    );
    const store = new InMemorySagaStore();
    const logger = pino({ level: 'silent' });
    const engine = createSagaEngine({ store, logger, sleep: async () => {} });
    const undone: string[] = [];
    let reserved!: () => void;
    const reservedOnce = new Promise<void>((r) => (reserved = r));
    const saga = defineSaga('place-order', { input: z.object({ sku: z.string() }) })
      .step('reserve', {
        run: async ({ input, sagaId }) => {
          await publisher.publish(StockReserved, { sku: input.sku }, { sagaId });
          reserved();
          return input.sku;
        },
        compensate: ({ result }) => void undone.push(`release ${String(result)}`),
      })
      .step('wait-for-payment', {
        // Waits until cancelled: the saga is in flight when the rollback comes.
        run: ({ signal }) =>
          new Promise((resolve) => {
            if (signal.aborted) return resolve('aborted');
            signal.addEventListener('abort', () => resolve('aborted'));
          }),
      })
      .build();
    const started = engine.start(saga, { sku: 'sku-1' }, { sagaId: 'saga-1' });
    await reservedOnce;

    const plan = await planRollback(
      { service: 'orders', version: '2.0.0', strategy: 'compensate' },
      { journal, registry, compensations: defineCompensations() },
    );
    expect(plan.items).toEqual([]);
    expect(plan.sagas.map((s) => s.sagaId)).toEqual(['saga-1']);

    const progressStore = new InMemoryRollbackProgressStore();

    const result = await runRollback(
      plan,
      { runId: 'r' },
      { journal, transport, progressStore, sagas: engine, logger },
    );
    expect(result.summary).toMatchObject({ reversed: 1, sagasCompensated: 1, needsPerson: 0 });
    expect((await started).status).toBe('compensated');
    expect(undone).toEqual(['release sku-1']);

    // Resuming the finished run does not touch the saga again.
    await runRollback(
      plan,
      { runId: 'r' },
      { journal, transport, progressStore, sagas: engine, logger },
    );
    expect(undone).toEqual(['release sku-1']);
  });
});
