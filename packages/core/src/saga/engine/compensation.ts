import { SagaEventName } from '../events.js';
import { SagaStatus, StepStatus } from '../SagaStore.js';
import type { RunState } from './context.js';
import { compensateStep } from './steps.js';
import { rethrowFirst } from './support.js';
import { SAGA_COMPENSATED, withOutcome, withStatus } from './transitions.js';

/**
 * Compensates every completed step that has a compensation, in the reverse order of completion
 * (the steps of a parallel group together), then ends the saga `compensated`, or `stuck` when a
 * compensation exhausted its retries.
 */
export async function compensateAll(run: RunState): Promise<void> {
  const r = run.record;
  const toUndo = r.completionOrder.filter((name) => {
    const def = run.def.steps.find((s) => s.name === name);
    const status = r.steps[name]?.status;
    return (
      def?.compensate !== undefined &&
      (status === StepStatus.Completed ||
        status === StepStatus.Compensating ||
        status === StepStatus.CompensationFailed)
    );
  });
  // Contiguous steps of one stage (a parallel group) are undone together; stages in reverse.
  const layers: string[][] = [];
  for (const name of toUndo) {
    const stage = run.def.steps.find((s) => s.name === name)!.stage;
    const last = layers[layers.length - 1];
    if (last && run.def.steps.find((s) => s.name === last[0])!.stage === stage) last.push(name);
    else layers.push([name]);
  }
  layers.reverse();
  // A layer of one step: its compensation's end and what comes next (the next one-step layer's
  // start, or the saga's end) are one write. Parallel layers write as before.
  let started = false;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    let outcomes: Awaited<ReturnType<typeof compensateStep>>[];
    if (layer.length === 1) {
      const next = layers[i + 1];
      const then = next === undefined ? SAGA_COMPENSATED : next.length === 1 ? next[0]! : undefined;
      outcomes = [await compensateStep(run, layer[0]!, started, then)];
      started = outcomes[0]!.ok && typeof then === 'string';
    } else {
      started = false;
      outcomes = rethrowFirst(
        await Promise.allSettled(layer.map((name) => compensateStep(run, name))),
      );
    }
    const failed = outcomes.flatMap((o, i) => (o.ok ? [] : [{ step: layer[i]!, error: o.error }]));
    if (failed.length > 0) {
      await run.write(withOutcome, SagaStatus.Stuck, {
        stuck: {
          phase: 'compensation',
          steps: failed.map((f) => f.step),
          errors: failed.map((f) => f.error),
        },
      });
      run.logger.error(
        { steps: failed.map((f) => f.step), errors: failed.map((f) => f.error.message) },
        'saga stuck: compensation exhausted its retries',
      );
      if (run.ctx.listens(SagaEventName.SagaStuck))
        run.ctx.emit(SagaEventName.SagaStuck, {
          record: run.record,
          step: failed[0]!.step,
          error: failed[0]!.error,
        });
      return;
    }
  }
  if (run.record.status !== SagaStatus.Compensated) {
    await run.write(withStatus, SagaStatus.Compensated, undefined);
  }
  if (run.ctx.logger.isLevelEnabled('info')) {
    run.logger.info(
      { outcome: 'compensated', order: run.record.compensationOrder },
      'saga compensated',
    );
  }
  if (run.ctx.listens(SagaEventName.SagaCompensated))
    run.ctx.emit(SagaEventName.SagaCompensated, { record: run.record });
}
