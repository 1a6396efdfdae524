/**
 * Where an order's time goes: a per-hop latency recorder for the load driver's `--trace`.
 *
 * Off by default (nothing is recorded, nothing costs). When on, it records, per hop:
 *
 * - `publish`: one `publisher.publish` call of the orders service, from the call to its return
 *   (journal append, the broker's acknowledgement, the journal's published mark);
 * - `deliver <service>`: from the event's `time` (set when the publisher built it) to the start
 *   of the handler that reads it: the publish, the time in the broker, the fetch wait and the
 *   consumer pipeline (decode, validate, dedupe claim);
 * - `handle <service>`: the handler itself (the service's state in Redis or memory, and the
 *   publish of its reply);
 * - `round trip <step>`: a saga step of the orders service, from sending its command to
 *   receiving the reply;
 * - `order`: one saga, start to end.
 */
import type { HandlerRoute } from '@backtrack/core';

export interface HopStats {
  count: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

export class HopTrace {
  enabled = false;
  readonly #samples = new Map<string, number[]>();

  record(hop: string, ms: number): void {
    if (!this.enabled) return;
    let list = this.#samples.get(hop);
    if (list === undefined) this.#samples.set(hop, (list = []));
    list.push(ms);
  }

  /** Times `work` as `hop` (when enabled). */
  async time<T>(hop: string, work: () => Promise<T>): Promise<T> {
    if (!this.enabled) return work();
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.record(hop, performance.now() - start);
    }
  }

  summary(): Record<string, HopStats> {
    const out: Record<string, HopStats> = {};
    for (const [hop, list] of [...this.#samples.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const sorted = [...list].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      out[hop] = {
        count: sorted.length,
        meanMs: round(sorted.reduce((s, v) => s + v, 0) / sorted.length),
        p50Ms: round(at(0.5)),
        p95Ms: round(at(0.95)),
        maxMs: round(sorted[sorted.length - 1]!),
      };
    }
    return out;
  }

  reset(): void {
    this.#samples.clear();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The process's recorder (the load driver turns it on with `--trace`). */
export const trace = new HopTrace();

/**
 * The same route, timing its handler as `handle <service>` and the wait before it as
 * `deliver <service>` when the trace is on.
 */
export function tracedRoute(service: string, route: HandlerRoute): HandlerRoute {
  // Not async, and the type checked here: the pipeline passes each message down its handler
  // routes in turn, so a message of another type goes straight to `next` without a call of the
  // route (an async function, a promise) per route it passes. With the trace off, the route is
  // called as it is: nothing is timed, nothing allocated.
  const wrapped = (
    context: Parameters<HandlerRoute>[0],
    next: Parameters<HandlerRoute>[1],
  ): ReturnType<HandlerRoute> => {
    const envelope = (context as { envelope?: { type: string; time?: string } }).envelope;
    if (envelope !== undefined && envelope.type !== route.eventType) return next();
    if (!trace.enabled || envelope === undefined) return route(context, next);
    return timedRoute(service, route, envelope, context, next);
  };
  return Object.assign(wrapped, {
    eventType: route.eventType,
    version: route.version,
    definition: route.definition,
  });
}

async function timedRoute(
  service: string,
  route: HandlerRoute,
  envelope: { time?: string },
  context: Parameters<HandlerRoute>[0],
  next: Parameters<HandlerRoute>[1],
): Promise<void> {
  if (envelope.time !== undefined) {
    trace.record(`deliver ${service}`, Date.now() - Date.parse(envelope.time));
  }
  const start = performance.now();
  try {
    await route(context, next);
  } finally {
    trace.record(`handle ${service}`, performance.now() - start);
  }
}

/** A one-table text rendering of {@link HopTrace.summary}. */
export function formatTrace(summary: Record<string, HopStats>): string {
  const rows = Object.entries(summary).map(
    ([hop, s]) =>
      `  ${hop.padEnd(24)} ${String(s.count).padStart(6)}  mean ${s.meanMs.toFixed(1).padStart(7)} ms  p50 ${s.p50Ms.toFixed(1).padStart(7)} ms  p95 ${s.p95Ms.toFixed(1).padStart(7)} ms  max ${s.maxMs.toFixed(1).padStart(7)} ms`,
  );
  return ['hop                          count', ...rows].join('\n');
}
