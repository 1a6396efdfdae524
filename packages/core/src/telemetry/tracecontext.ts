import {
  ROOT_CONTEXT,
  TraceFlags,
  createTraceState,
  isSpanContextValid,
  trace,
  type Context,
  type SpanContext,
} from '@opentelemetry/api';

/**
 * The CloudEvents Distributed Tracing extension: W3C Trace Context carried as the extension
 * attributes `traceparent` and `tracestate` (so `ce_traceparent` on Kafka, `cloudEvents_traceparent`
 * on AMQP). Written and read here directly in the W3C format the extension mandates, whatever
 * propagator the application registered.
 */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The `traceparent` value of a span context, or undefined when it is not valid. */
export function formatTraceparent(spanContext: SpanContext): string | undefined {
  if (!isSpanContextValid(spanContext)) return undefined;
  const flags = (spanContext.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

/**
 * Writes `traceparent` (and `tracestate` when there is one) of the span active in `ctx` into
 * `extensions`. Does nothing when `ctx` holds no valid span context.
 */
export function injectTraceContext(
  ctx: Context,
  extensions: Record<string, string | number | boolean>,
): void {
  const spanContext = trace.getSpanContext(ctx);
  if (spanContext === undefined) return;
  const traceparent = formatTraceparent(spanContext);
  if (traceparent === undefined) return;
  extensions[TRACEPARENT] = traceparent;
  const state = spanContext.traceState?.serialize();
  if (state) extensions[TRACESTATE] = state;
}

/**
 * The remote span context a `traceparent` (and optional `tracestate`) describe, or undefined
 * for a missing or malformed value (a bad header never fails a message).
 */
export function parseTraceparent(
  traceparent: unknown,
  tracestate?: unknown,
): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const match = TRACEPARENT_RE.exec(traceparent.trim());
  if (match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  // Version ff is invalid; version 00 has exactly four fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext: SpanContext = {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: parseInt(flags!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(typeof tracestate === 'string' && tracestate.length > 0
      ? { traceState: createTraceState(tracestate) }
      : {}),
  };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}

/**
 * A context whose parent is the remote span the CloudEvents attributes carry (`traceparent`,
 * `tracestate`), or undefined when they carry none.
 */
export function extractTraceContext(
  attributes: Readonly<Record<string, unknown>> | undefined,
  base: Context = ROOT_CONTEXT,
): Context | undefined {
  if (attributes === undefined) return undefined;
  const spanContext = parseTraceparent(attributes[TRACEPARENT], attributes[TRACESTATE]);
  return spanContext === undefined ? undefined : trace.setSpanContext(base, spanContext);
}
