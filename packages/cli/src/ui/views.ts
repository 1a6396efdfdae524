/** What the console's pages show of a saga record. */
import type { SagaRecord, StepRecord } from '@backtrack/core';

export interface SagaSummary {
  sagaId: string;
  sagaName: string;
  definitionVersion: number;
  status: string;
  createdAt: string;
  updatedAt: string;
  why: string;
}

export function sagaSummary(r: SagaRecord): SagaSummary {
  const why = r.stuck
    ? `stuck at ${r.stuck.steps.join(', ')}: ${r.stuck.errors[0]?.message ?? ''}`
    : r.failure
      ? `${r.failure.reason}: ${r.failure.error.message}`
      : '';
  return {
    sagaId: r.sagaId,
    sagaName: r.sagaName,
    definitionVersion: r.definitionVersion,
    status: r.status,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    why,
  };
}

/** One row of the timeline: a step going forward, or its compensation. */
export interface TimelineEntry {
  step: string;
  phase: 'run' | 'compensate';
  /** Position in the order the saga log recorded (completion, then compensation order). */
  order: number | null;
  status: string;
  attempts: number;
  /** ISO times of the latest attempt (absent in records written before they were kept). */
  startedAt?: string;
  endedAt?: string;
  /** `endedAt - startedAt`, when both are known. */
  durationMs?: number;
  idempotencyKey: string;
  error?: StepRecord['error'];
  resolution?: string;
  result?: unknown;
  stuck: boolean;
}

/**
 * The steps in the order the log recorded them (completed, then compensated), then those that
 * did not get there. The idempotency keys are the ones the engine passes to `run`/`compensate`.
 */
export function sagaTimeline(r: SagaRecord): TimelineEntry[] {
  const stuck = new Set(r.stuck?.steps ?? []);
  const names = Object.keys(r.steps);
  const forward = [...r.completionOrder, ...names.filter((n) => !r.completionOrder.includes(n))];
  const entries: TimelineEntry[] = forward.map((step) => {
    const s = r.steps[step]!;
    const index = r.completionOrder.indexOf(step);
    return {
      step,
      phase: 'run',
      order: index < 0 ? null : index + 1,
      status: index < 0 ? s.status : 'completed',
      attempts: s.attempts,
      ...times(s.startedAt, s.endedAt),
      idempotencyKey: `${r.sagaId}:${step}:run`,
      ...(s.error && index < 0 ? { error: s.error } : {}),
      ...(s.result !== undefined ? { result: s.result } : {}),
      stuck: stuck.has(step) && r.stuck?.phase === 'forward',
    };
  });
  const compensating = names.filter(
    (n) => r.steps[n]!.compensationAttempts > 0 || r.compensationOrder.includes(n),
  );
  const order = [
    ...r.compensationOrder,
    ...compensating.filter((n) => !r.compensationOrder.includes(n)),
  ];
  for (const step of order) {
    const s = r.steps[step]!;
    const index = r.compensationOrder.indexOf(step);
    entries.push({
      step,
      phase: 'compensate',
      order: index < 0 ? null : r.completionOrder.length + index + 1,
      status: s.status,
      attempts: s.compensationAttempts,
      ...times(s.compensationStartedAt, s.compensationEndedAt),
      idempotencyKey: `${r.sagaId}:${step}:compensate`,
      ...(s.error ? { error: s.error } : {}),
      ...(s.resolution ? { resolution: s.resolution } : {}),
      stuck: stuck.has(step) && r.stuck?.phase === 'compensation',
    });
  }
  return entries;
}

function times(
  startedAt: string | undefined,
  endedAt: string | undefined,
): Pick<TimelineEntry, 'startedAt' | 'endedAt' | 'durationMs'> {
  const out: Pick<TimelineEntry, 'startedAt' | 'endedAt' | 'durationMs'> = {};
  if (startedAt) out.startedAt = startedAt;
  if (endedAt) out.endedAt = endedAt;
  if (startedAt && endedAt) out.durationMs = Date.parse(endedAt) - Date.parse(startedAt);
  return out;
}
