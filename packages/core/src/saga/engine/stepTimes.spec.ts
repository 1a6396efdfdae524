import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from '../definition.js';
import { InMemorySagaStore } from '../InMemorySagaStore.js';
import { createSagaEngine } from '../SagaEngine.js';

// A clock each step moves on by a known amount: the record's times are the clock's.
function clocked() {
  let t = Date.parse('2026-01-01T00:00:00.000Z');
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}
const iso = (ms: number) => new Date(Date.parse('2026-01-01T00:00:00.000Z') + ms).toISOString();

describe('step start and end times in the saga record', () => {
  it('records when each run and each compensation started and ended', async () => {
    const clock = clocked();
    const store = new InMemorySagaStore();
    const engine = createSagaEngine(
      {},
      { store, logger: pino({ level: 'silent' }), sleep: async () => {}, now: clock.now },
    );
    const saga = defineSaga('timed', { input: z.object({}) })
      .step('reserve', {
        run: () => (clock.advance(100), 'r'),
        compensate: () => clock.advance(40),
      })
      .step('charge', {
        run: () => {
          clock.advance(250);
          throw new Error('card declined');
        },
        retry: { attempts: 2 },
      })
      .build();
    const { record } = await engine.start(saga, {}, { sagaId: 't1' });
    expect(record.status).toBe('compensated');
    const reserve = record.steps['reserve']!;
    const charge = record.steps['charge']!;
    expect(reserve.startedAt).toBe(iso(0));
    expect(reserve.endedAt).toBe(iso(100));
    // Two attempts: the times are the latest attempt's.
    expect(charge.attempts).toBe(2);
    expect(charge.startedAt).toBe(iso(350));
    expect(charge.endedAt).toBe(iso(600));
    expect(reserve.compensationStartedAt).toBe(iso(600));
    expect(reserve.compensationEndedAt).toBe(iso(640));
    // The store keeps them.
    expect((await store.get('t1'))!.steps['reserve']).toMatchObject({
      startedAt: iso(0),
      compensationEndedAt: iso(640),
    });
  });
});
