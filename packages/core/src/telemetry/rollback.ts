import { SpanStatusCode, context as otelContext, trace } from '@opentelemetry/api';
import type { RollbackPlanSummary } from '../rollback/plan.js';
import type {
  RollbackProgressEvent,
  RollbackRunResult,
  RunRollbackOptions,
} from '../rollback/run.js';
import { recordError } from './messaging.js';
import { ATTR, SPAN_NAMES } from './names.js';
import { activeInstruments, activeTracer } from './provider.js';

/**
 * Runs one rollback run inside a `backtrack.rollback` span: every item's state change is a span
 * event (`backtrack.rollback.progress`, within the SDK's event limit) and counts in
 * `backtrack.rollback.items` by state; the result's status and summary end it. Without an SDK it is
 * `run(options)`.
 */
export async function traceRollback(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions,
  run: (options: RunRollbackOptions) => Promise<RollbackRunResult>,
): Promise<RollbackRunResult> {
  const tracer = activeTracer();
  if (tracer === undefined && activeInstruments() === undefined) return run(options);
  const span = tracer?.startSpan(SPAN_NAMES.rollback, {
    attributes: {
      [ATTR.ROLLBACK_ID]: options?.runId,
      'backtrack.rollback.plan_id': plan?.planId,
      [ATTR.ROLLBACK_SERVICE]: plan?.service,
      [ATTR.ROLLBACK_VERSION]: plan?.version,
      'backtrack.rollback.dry_run': options?.dryRun === true,
    },
  });
  const userProgress = options?.onProgress;
  const traced: RunRollbackOptions = {
    ...options,
    onProgress: (event: RollbackProgressEvent) => {
      span?.addEvent('backtrack.rollback.progress', {
        'backtrack.rollback.item_id': event.itemId,
        [ATTR.ROLLBACK_STATE]: event.state,
        'backtrack.rollback.finished': event.finished,
        'backtrack.rollback.total': event.total,
      });
      activeInstruments()?.rollbackItems.add(1, {
        [ATTR.ROLLBACK_SERVICE]: plan.service,
        [ATTR.ROLLBACK_STATE]: event.state,
      });
      userProgress?.(event);
    },
  };
  const runIt = () => run(traced);
  try {
    const result = await (span === undefined
      ? runIt()
      : otelContext.with(trace.setSpan(otelContext.active(), span), runIt));
    if (span !== undefined) {
      span.setAttribute('backtrack.rollback.status', result.status);
      for (const [key, value] of Object.entries(result.summary)) {
        if (typeof value === 'number')
          span.setAttribute(`backtrack.rollback.summary.${key}`, value);
      }
      if (result.failed.length > 0) {
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: `${result.failed.length} item(s) failed`,
        });
      }
    }
    return result;
  } catch (error) {
    if (span !== undefined) recordError(span, error);
    throw error;
  } finally {
    span?.end();
  }
}
