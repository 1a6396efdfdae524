import {
  SpanKind,
  SpanStatusCode,
  context as otelContext,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import type { Disposition, IncomingMessage } from '../consumer/processor.js';
import { deadLetterReasonOf } from '../deadLetter/reasons.js';
import type { Envelope, ExtensionValue } from '../envelope/types.js';
import { ATTR, SPAN_NAMES, type TelemetryDisposition } from './names.js';
import { activeInstruments, activeTracer, otelRegistered } from './provider.js';
import { extractTraceContext, injectTraceContext, parseTraceparent } from './tracecontext.js';

// ---------------------------------------------------------------------------------------------
// Publish.

/** The producer span of one publish; undefined when neither tracing nor metrics are on. */
export interface PublishTelemetry {
  span: Span | undefined;
  /** The extensions to publish: the caller's plus `traceparent`/`tracestate`. */
  extensions: Record<string, ExtensionValue> | undefined;
  system: string;
  type: string;
}

/**
 * Starts the producer span of a publish (child of the active span) and returns the extensions
 * with its trace context injected. Returns undefined, allocating nothing, when no tracer or
 * meter provider is registered.
 */
export function startPublish(
  system: string,
  type: string,
  topic: string | undefined,
  topicFor: (type: string) => string,
  extensions: Record<string, ExtensionValue> | undefined,
): PublishTelemetry | undefined {
  const tracer = activeTracer();
  if (tracer === undefined) {
    return activeInstruments() === undefined
      ? undefined
      : { span: undefined, extensions, system, type };
  }
  let destination: string;
  try {
    destination = topic ?? topicFor(type);
  } catch {
    destination = type; // the publish itself reports the failing topicFor
  }
  const span = tracer.startSpan(SPAN_NAMES.send(destination), {
    kind: SpanKind.PRODUCER,
    attributes: {
      [ATTR.MESSAGING_SYSTEM]: system,
      [ATTR.MESSAGING_DESTINATION]: destination,
      [ATTR.MESSAGING_OPERATION_TYPE]: 'send',
      [ATTR.MESSAGING_OPERATION_NAME]: 'send',
      [ATTR.CLOUDEVENTS_TYPE]: type,
    },
  });
  const withTrace: Record<string, ExtensionValue> = { ...extensions };
  injectTraceContext(trace.setSpan(otelContext.active(), span), withTrace);
  return { span, extensions: withTrace, system, type };
}

/** Ends a publish's span and counts it: `envelope` once acknowledged, `error` when it failed. */
export function endPublish(
  telemetry: PublishTelemetry,
  envelope: Envelope<unknown> | undefined,
  error?: unknown,
): void {
  const { span } = telemetry;
  if (span !== undefined) {
    if (envelope !== undefined) {
      span.setAttribute(ATTR.MESSAGING_MESSAGE_ID, envelope.id);
      span.setAttribute(ATTR.CLOUDEVENTS_ID, envelope.id);
      span.setAttribute(ATTR.SCHEMA_VERSION, envelope.schemaversion);
      if (envelope.sagaid !== undefined) span.setAttribute(ATTR.SAGA_ID, envelope.sagaid);
    }
    if (error !== undefined) recordError(span, error);
    span.end();
  }
  activeInstruments()?.publisherMessages.add(1, {
    [ATTR.MESSAGING_SYSTEM]: telemetry.system,
    [ATTR.CLOUDEVENTS_TYPE]: telemetry.type,
    ...(error === undefined ? {} : { [ATTR.ERROR_TYPE]: errorType(error) }),
  });
}

// ---------------------------------------------------------------------------------------------
// Consume.

/** The consumer span and timer of one message in the pipeline. */
export interface ConsumeTelemetry {
  span: Span | undefined;
  /** The context the pipeline and the handler run in (the span active). */
  context: Context | undefined;
  startedAt: number;
}

/**
 * Starts the consumer span of one message, parented to the trace context its CloudEvents
 * `traceparent`/`tracestate` attributes carry (binary mode; in structured mode the envelope's
 * extensions are linked when the span ends). Undefined, allocating nothing, when no tracer or
 * meter provider is registered.
 */
export function startConsume(
  message: IncomingMessage,
  consumer: string,
): ConsumeTelemetry | undefined {
  const tracer = activeTracer();
  if (tracer === undefined) {
    return activeInstruments() === undefined
      ? undefined
      : { span: undefined, context: undefined, startedAt: performance.now() };
  }
  const { origin, message: encoded } = message;
  const parent = extractTraceContext(encoded.headers) ?? otelContext.active();
  const attributes: Attributes = {
    [ATTR.MESSAGING_SYSTEM]: origin.transport,
    [ATTR.MESSAGING_DESTINATION]: origin.topic,
    [ATTR.MESSAGING_OPERATION_TYPE]: 'process',
    [ATTR.MESSAGING_OPERATION_NAME]: 'process',
    [ATTR.MESSAGING_CONSUMER_GROUP]: origin.group,
    [ATTR.CONSUMER]: consumer,
    [ATTR.DELIVERY_ATTEMPT]: message.attempt,
  };
  if (origin.partition !== undefined)
    attributes[ATTR.MESSAGING_PARTITION] = String(origin.partition);
  if (origin.offset !== undefined) attributes[ATTR.MESSAGING_KAFKA_OFFSET] = origin.offset;
  const span = tracer.startSpan(
    SPAN_NAMES.process(origin.topic),
    { kind: SpanKind.CONSUMER, attributes },
    parent,
  );
  return { span, context: trace.setSpan(parent, span), startedAt: performance.now() };
}

/** Runs `fn` with the consumer span active, so the handler's own spans are its children. */
export function withConsume<T>(telemetry: ConsumeTelemetry | undefined, fn: () => T): T {
  return telemetry?.context === undefined ? fn() : otelContext.with(telemetry.context, fn);
}

/** The disposition name recorded on spans and metrics. */
export function dispositionName(disposition: Disposition): TelemetryDisposition {
  if (disposition.kind !== 'ack') return disposition.kind;
  return disposition.outcome === 'handled' ? 'ack' : disposition.outcome;
}

/**
 * Records the final disposition of one message: span attributes and status, then the span's end;
 * the message, duration, duplicate and dead-letter metrics. `telemetry` is undefined for a
 * message that never ran (held back in a batch): it is still counted.
 */
export function endConsume(
  telemetry: ConsumeTelemetry | undefined,
  message: IncomingMessage,
  consumer: string,
  envelope: Envelope<unknown> | undefined,
  disposition: Disposition,
): void {
  const name = dispositionName(disposition);
  const reason =
    disposition.kind === 'dead-letter'
      ? deadLetterReasonOf(disposition.code, disposition.error)
      : undefined;
  const span = telemetry?.span;
  if (span !== undefined) {
    span.setAttribute(ATTR.DISPOSITION, name);
    if (envelope !== undefined) {
      span.setAttribute(ATTR.MESSAGING_MESSAGE_ID, envelope.id);
      span.setAttribute(ATTR.CLOUDEVENTS_ID, envelope.id);
      span.setAttribute(ATTR.CLOUDEVENTS_TYPE, envelope.type);
      span.setAttribute(ATTR.CLOUDEVENTS_SOURCE, envelope.source);
      span.setAttribute(ATTR.SCHEMA_VERSION, envelope.schemaversion);
      if (envelope.sagaid !== undefined) span.setAttribute(ATTR.SAGA_ID, envelope.sagaid);
      if (envelope.producerservice !== undefined) {
        span.setAttribute(ATTR.PRODUCER_SERVICE, envelope.producerservice);
      }
      if (envelope.producerversion !== undefined) {
        span.setAttribute(ATTR.PRODUCER_VERSION, envelope.producerversion);
      }
      // Structured mode: the trace context was inside the body, not in the headers.
      if (message.message.headers['traceparent'] === undefined) {
        const linked = parseTraceparent(
          envelope.extensions?.['traceparent'],
          envelope.extensions?.['tracestate'],
        );
        if (linked !== undefined) span.addLink({ context: linked });
      }
    }
    if (disposition.kind === 'dead-letter') {
      span.setAttribute(ATTR.DEAD_LETTER_REASON, reason!);
      span.setAttribute(ATTR.DEAD_LETTER_CODE, disposition.code);
      span.setAttribute(ATTR.ERROR_TYPE, disposition.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: disposition.reason });
      if (disposition.error !== undefined) recordException(span, disposition.error);
    } else if (disposition.kind === 'retry') {
      span.setAttribute(ATTR.ERROR_TYPE, errorType(disposition.error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: disposition.reason });
      if (disposition.error !== undefined) recordException(span, disposition.error);
    } else if (disposition.kind === 'redeliver') {
      span.addEvent('backtrack.redeliver', {
        'backtrack.redeliver.reason': disposition.reason,
        'backtrack.redeliver.pause': disposition.pause,
      });
    }
    span.end();
  }
  const instruments = activeInstruments();
  if (instruments === undefined) return;
  const attributes: Attributes = {
    [ATTR.MESSAGING_SYSTEM]: message.origin.transport,
    [ATTR.MESSAGING_DESTINATION]: message.origin.topic,
    [ATTR.CONSUMER]: consumer,
    [ATTR.CLOUDEVENTS_TYPE]: envelope?.type ?? 'unknown',
    [ATTR.DISPOSITION]: name,
  };
  instruments.consumerMessages.add(1, attributes);
  if (telemetry !== undefined) {
    instruments.consumerDuration.record(
      (performance.now() - telemetry.startedAt) / 1000,
      attributes,
    );
  }
  if (name === 'duplicate') {
    instruments.consumerDuplicates.add(1, {
      [ATTR.CONSUMER]: consumer,
      [ATTR.CLOUDEVENTS_TYPE]: envelope?.type ?? 'unknown',
    });
  }
  if (reason !== undefined) {
    instruments.consumerDeadLetters.add(1, {
      [ATTR.MESSAGING_DESTINATION]: message.origin.topic,
      [ATTR.CONSUMER]: consumer,
      [ATTR.CLOUDEVENTS_TYPE]: envelope?.type ?? 'unknown',
      [ATTR.DEAD_LETTER_REASON]: reason,
    });
  }
}

// ---------------------------------------------------------------------------------------------

/** `error.type`: the Backtrack error code, else the error's class name, else `_OTHER`. */
export function errorType(error: unknown): string {
  if (error !== null && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name.length > 0) return name;
  }
  return '_OTHER';
}

export function recordException(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
}

/** Marks `span` failed with `error`. */
export function recordError(span: Span, error: unknown): void {
  recordException(span, error);
  span.setAttribute(ATTR.ERROR_TYPE, errorType(error));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

// ---------------------------------------------------------------------------------------------
// The pipeline's two hook calls.

interface ContextLike {
  readonly message: IncomingMessage;
  readonly consumer: string;
  envelope?: Envelope<unknown>;
}

const running = new WeakMap<ContextLike, ConsumeTelemetry>();

/**
 * Pipeline hook: runs one message's chain inside its consumer span. Without an SDK it is
 * `run(context)`: no span, no closure, no map entry.
 */
export function runConsume<C extends ContextLike, T>(
  context: C,
  run: (context: C) => Promise<T>,
): Promise<T> {
  const telemetry = startConsume(context.message, context.consumer);
  if (telemetry === undefined) return run(context);
  running.set(context, telemetry);
  return withConsume(telemetry, () => run(context));
}

/** Pipeline hook: the message's final disposition (after a batch's done marks are settled). */
export function finishConsume(context: ContextLike, disposition: Disposition): void {
  if (!otelRegistered()) return; // nothing registered ever: no consume was started either
  const telemetry = running.get(context);
  if (telemetry === undefined && activeInstruments() === undefined) return;
  running.delete(context);
  endConsume(telemetry, context.message, context.consumer, context.envelope, disposition);
}
