import {
  SpanKind,
  SpanStatusCode,
  context as otelContext,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { SagaEventName, type SagaEvent, type SagaEventListener } from '../saga/events.js';
import { ATTR, SPAN_NAMES } from './names.js';
import { activeInstruments, activeTracer, noteSagaName, registerStuckSource } from './provider.js';
import {
  extractTraceContext,
  injectTraceContext,
  TRACEPARENT,
  TRACESTATE,
} from './tracecontext.js';

const NO_TRACE = Object.freeze({});

/**
 * The `traceContext` field of a new saga record: the W3C trace context of the span active now,
 * so a recovery (in this process or another) continues the trace. `{}` without an SDK or span.
 */
export function sagaTraceContext(): {
  traceContext?: { traceparent: string; tracestate?: string };
} {
  if (activeTracer() === undefined) return NO_TRACE;
  const carrier: Record<string, string> = {};
  injectTraceContext(otelContext.active(), carrier);
  const traceparent = carrier[TRACEPARENT];
  if (traceparent === undefined) return NO_TRACE;
  const tracestate = carrier[TRACESTATE];
  return { traceContext: tracestate === undefined ? { traceparent } : { traceparent, tracestate } };
}

/** What {@link instrumentSagaEngine} needs of an engine: its event subscription. */
export interface SagaEventSource {
  on(event: SagaEventName, listener: SagaEventListener): () => void;
}

/** Options of {@link instrumentSagaEngine}. */
export interface SagaTelemetryOptions {
  /** Most sagas with an open span at once; beyond it the oldest span is ended unfinished. @default 10_000 */
  maxOpenSagas?: number;
}

interface OpenSaga {
  span: Span;
  context: Context;
  /** Open step and compensation spans, by `<kind>:<step>`. */
  steps: Map<string, Span>;
}

/**
 * Turns a saga engine's events into spans and metrics (docs/observability.md):
 * - a `saga <name>` span from `saga.started` to its end, child of the span active when the saga
 *   started (the consumer span of the message that started it); a saga this process did not start
 *   (recovered after a restart) gets a span from its first event, marked `backtrack.saga.recovered`;
 * - a child span per step attempt (`step <saga>.<step>`) and per compensation attempt
 *   (`compensate <saga>.<step>`), failed attempts with an error status;
 * - a stuck saga ends its span with an error status and the reason;
 * - metrics `backtrack.saga.started`, `backtrack.saga.ended` (by status), `backtrack.saga.stuck`
 *   (gauge: stuck sagas seen and not resumed since) and `backtrack.saga.step.duration`.
 * The spans and metrics are recorded only while an OpenTelemetry SDK is registered.
 * @returns a function that detaches the listeners.
 */
export function instrumentSagaEngine(
  engine: SagaEventSource,
  options: SagaTelemetryOptions = {},
): () => void {
  const maxOpen = options.maxOpenSagas ?? 10_000;
  const open = new Map<string, OpenSaga>();
  /** Stuck sagas (id → name) seen since this process started, until a later event resumes them. */
  const stuck = new Map<string, string>();
  const unregister = registerStuckSource(() => stuck);

  function sagaOf(event: SagaEvent, started: boolean): OpenSaga | undefined {
    const existing = open.get(event.sagaId);
    if (existing !== undefined) return existing;
    const tracer = activeTracer();
    if (tracer === undefined) return undefined;
    // A saga this process did not start (recovery, a takeover) continues the trace it started in,
    // from its record; the span active now (the recover() caller's, if any) becomes a link.
    const active = otelContext.active();
    const stored = started ? undefined : extractTraceContext(event.record.traceContext);
    const parent = stored ?? active;
    const activeSpan = stored === undefined ? undefined : trace.getSpanContext(active);
    const span = tracer.startSpan(
      SPAN_NAMES.saga(event.sagaName),
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [ATTR.SAGA_ID]: event.sagaId,
          [ATTR.SAGA_NAME]: event.sagaName,
          [ATTR.SAGA_VERSION]: event.definitionVersion,
          ...(started ? {} : { 'backtrack.saga.recovered': true }),
        },
        ...(activeSpan !== undefined && isSpanContextValid(activeSpan)
          ? { links: [{ context: activeSpan }] }
          : {}),
      },
      parent,
    );
    if (open.size >= maxOpen) {
      const [oldestId, oldest] = open.entries().next().value!;
      oldest.span.setAttribute('backtrack.saga.span_evicted', true);
      for (const s of oldest.steps.values()) s.end();
      oldest.span.end();
      open.delete(oldestId);
    }
    const saga: OpenSaga = { span, context: trace.setSpan(parent, span), steps: new Map() };
    open.set(event.sagaId, saga);
    return saga;
  }

  function startChild(event: SagaEvent, kind: 'step' | 'compensation'): void {
    if (event.sagaId !== undefined) stuck.delete(event.sagaId);
    const saga = sagaOf(event, false);
    if (saga === undefined || event.step === undefined) return;
    const tracer = activeTracer();
    if (tracer === undefined) return;
    const span = tracer.startSpan(
      kind === 'step'
        ? SPAN_NAMES.step(event.sagaName, event.step)
        : SPAN_NAMES.compensation(event.sagaName, event.step),
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [ATTR.SAGA_ID]: event.sagaId,
          [ATTR.SAGA_NAME]: event.sagaName,
          [ATTR.SAGA_STEP]: event.step,
          ...(event.attempt === undefined ? {} : { [ATTR.SAGA_ATTEMPT]: event.attempt }),
        },
      },
      saga.context,
    );
    saga.steps.get(`${kind}:${event.step}`)?.end();
    saga.steps.set(`${kind}:${event.step}`, span);
  }

  function endChild(event: SagaEvent, kind: 'step' | 'compensation', ok: boolean): void {
    if (event.durationMs !== undefined && event.step !== undefined) {
      activeInstruments()?.sagaStepDuration.record(event.durationMs / 1000, {
        [ATTR.SAGA_NAME]: event.sagaName,
        [ATTR.SAGA_STEP]: event.step,
        'backtrack.saga.step.kind': kind,
        'backtrack.saga.step.outcome': ok ? 'ok' : 'failed',
      });
    }
    const saga = open.get(event.sagaId);
    if (saga === undefined || event.step === undefined) return;
    const key = `${kind}:${event.step}`;
    const span = saga.steps.get(key);
    if (span === undefined) return;
    saga.steps.delete(key);
    if (!ok) {
      if (event.error !== undefined) {
        span.setAttribute(ATTR.ERROR_TYPE, event.error.code ?? event.error.name ?? '_OTHER');
        span.addEvent('exception', {
          'exception.type': event.error.name ?? 'Error',
          'exception.message': event.error.message,
        });
      }
      if (event.willRetry !== undefined)
        span.setAttribute('backtrack.saga.will_retry', event.willRetry);
      span.setStatus({ code: SpanStatusCode.ERROR, message: event.error?.message ?? 'failed' });
    }
    span.end();
  }

  function endSaga(
    event: SagaEvent,
    status: 'completed' | 'compensated' | 'failed' | 'stuck',
  ): void {
    const instruments = activeInstruments();
    if (status === 'stuck') stuck.set(event.sagaId, event.sagaName);
    else {
      stuck.delete(event.sagaId);
      instruments?.sagaEnded.add(1, {
        [ATTR.SAGA_NAME]: event.sagaName,
        [ATTR.SAGA_STATUS]: status,
      });
    }
    const saga = open.get(event.sagaId);
    if (saga === undefined) return;
    open.delete(event.sagaId);
    for (const span of saga.steps.values()) span.end();
    const { span } = saga;
    span.setAttribute(ATTR.SAGA_STATUS, status);
    if (status === 'stuck' || status === 'failed') {
      const record = event.record;
      const reason =
        status === 'stuck'
          ? `stuck in ${record.stuck?.phase ?? 'unknown'} phase at ${record.stuck?.steps.join(', ') ?? event.step ?? '?'}: ${event.error?.message ?? 'retries exhausted'}`
          : `failed at ${event.step ?? '?'}: ${event.error?.message ?? record.failure?.reason ?? 'failed'}`;
      if (status === 'stuck' && record.stuck !== undefined) {
        span.setAttribute('backtrack.saga.stuck.phase', record.stuck.phase);
        span.setAttribute('backtrack.saga.stuck.steps', record.stuck.steps);
      }
      if (event.error?.code !== undefined) span.setAttribute(ATTR.ERROR_TYPE, event.error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    }
    const failureReason = event.record.failure?.reason;
    if (failureReason !== undefined)
      span.setAttribute('backtrack.saga.failure.reason', failureReason);
    span.end();
  }

  const listeners: [SagaEventName, SagaEventListener][] = [
    [
      SagaEventName.SagaStarted,
      (e) => {
        const instruments = activeInstruments();
        if (instruments !== undefined) {
          instruments.sagaStarted.add(1, { [ATTR.SAGA_NAME]: e.sagaName });
          noteSagaName(e.sagaName); // the stuck gauge reports 0 for it, not nothing
        }
        sagaOf(e, true);
      },
    ],
    [SagaEventName.StepStarted, (e) => startChild(e, 'step')],
    [SagaEventName.StepCompleted, (e) => endChild(e, 'step', true)],
    [SagaEventName.StepFailed, (e) => endChild(e, 'step', false)],
    [SagaEventName.CompensationStarted, (e) => startChild(e, 'compensation')],
    [SagaEventName.StepCompensated, (e) => endChild(e, 'compensation', true)],
    [SagaEventName.CompensationFailed, (e) => endChild(e, 'compensation', false)],
    [SagaEventName.SagaCompleted, (e) => endSaga(e, 'completed')],
    [SagaEventName.SagaCompensated, (e) => endSaga(e, 'compensated')],
    [SagaEventName.SagaFailed, (e) => endSaga(e, 'failed')],
    [SagaEventName.SagaStuck, (e) => endSaga(e, 'stuck')],
    [
      SagaEventName.SagaCancelRequested,
      (e) => open.get(e.sagaId)?.span.addEvent('backtrack.saga.cancel_requested'),
    ],
  ];
  const offs = listeners.map(([name, listener]) => engine.on(name, listener));
  return () => {
    for (const off of offs) off();
    unregister();
  };
}
