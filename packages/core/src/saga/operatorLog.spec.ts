import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from './definition.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { createSagaEngine } from './SagaEngine.js';

const quiet = { logger: pino({ level: 'silent' }), sleep: async () => {} };

/** reserve then ship; ship fails, reserve's refund fails until `refunds.work`: the saga gets stuck. */
function stuckSaga(refunds: { work: boolean }) {
  return defineSaga('op', { input: z.object({}) })
    .step('reserve', {
      run: () => 'r',
      compensate: () => {
        if (!refunds.work) throw new Error('refund refused');
      },
      compensationRetry: { attempts: 1 },
    })
    .step('ship', {
      run: () => {
        throw new Error('no courier');
      },
      retry: { attempts: 1 },
    })
    .build();
}

describe("a saga's operator log", () => {
  it('records retry and resolve with who, when and why; an unnamed caller is the engine', async () => {
    const refunds = { work: false };
    const engine = createSagaEngine({}, { store: new InMemorySagaStore(), ...quiet });
    const saga = stuckSaga(refunds);
    engine.register(saga);
    expect((await engine.start(saga, {}, { sagaId: 'o1' })).status).toBe('stuck');
    const retried = await engine.retry('o1', { by: 'alice', reason: 'provider back?' });
    expect(retried.status).toBe('stuck');
    const resolved = await engine.resolve('o1', 'reserve', 'refunded by hand');
    expect(resolved.status).toBe('compensated');
    const log = (await engine.get('o1'))!.operatorLog!;
    expect(log.map(({ at: _at, ...rest }) => rest)).toEqual([
      { action: 'retry', by: 'alice', reason: 'provider back?' },
      { action: 'resolve', by: engine.ownerId, step: 'reserve', reason: 'refunded by hand' },
    ]);
    for (const entry of log) expect(Date.parse(entry.at)).not.toBeNaN();
  });

  it('records a cancel with its reason and who asked', async () => {
    let release!: () => void;
    const engine = createSagaEngine({}, { store: new InMemorySagaStore(), ...quiet });
    const saga = defineSaga('slow', { input: z.object({}) })
      .step('wait', {
        run: ({ signal }) =>
          new Promise<void>((resolve, reject) => {
            release = resolve;
            signal.addEventListener('abort', () => reject(new Error('aborted')));
          }),
        compensate: () => {},
      })
      .build();
    engine.register(saga);
    const running = engine.start(saga, {}, { sagaId: 'c1' });
    await new Promise((r) => setTimeout(r, 10));
    const cancelled = await engine.cancel('c1', 'customer asked', { by: 'bob' });
    release();
    await running;
    expect(cancelled.status).toBe('compensated');
    expect((await engine.get('c1'))!.operatorLog).toEqual([
      expect.objectContaining({ action: 'cancel', by: 'bob', reason: 'customer asked' }),
    ]);
  });
});
