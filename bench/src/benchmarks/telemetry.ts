/**
 * 9. Telemetry overhead on the consumer's hot path: core's consumer pipeline (decode, validate,
 * upcast v1 -> v2, claimMany, handler, completeMany) over pre-encoded messages in batches of 50,
 * in-memory dedupe, no broker, so the pipeline's own CPU is all there is to measure.
 *
 * - **API only**: no OpenTelemetry SDK registered (what every application gets by default).
 * - **SDK, no-op exporter**: a tracer provider with a batch span processor whose exporter drops
 *   the spans, a meter provider with a reader that is never collected during the run, and the
 *   AsyncLocalStorage context manager (what `NodeSDK` installs): every message gets its consumer
 *   span and its metrics.
 * - **No telemetry** cannot run in the same build (the hooks are part of the pipeline), so it is
 *   derived: the per-message CPU of "API only" minus the hooks' own CPU without an SDK, which is
 *   measured directly by calling the pipeline's two hooks (`runConsume`, `finishConsume`) per
 *   message, less the same loop without them (`hooksNs`). The limit: API only >= 0.97
 *   of no telemetry.
 *
 * Rates are messages per CPU-second of the process (the shared machine's wall clock swings with
 * other processes' load); the wall-clock rates are reported too.
 */
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import {
  createConsumerPipeline,
  handle,
  InMemoryDedupeStore,
  type Disposition,
  type IncomingMessage,
} from '@backtrack/core';
// The pipeline's two telemetry hooks, timed alone (not part of the public API).
import { finishConsume, runConsume } from '../../../packages/core/src/telemetry/messaging.js';
import { BenchOrderPlaced, cpuSecondsSince, encodedOrders, silentLogger } from '../common.js';
import type { Benchmark } from '../runner.js';

const BATCH = 50;

/** Drops every span: the SDK's whole path runs, nothing leaves the process. */
const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => undefined,
};

interface Sdk {
  shutdown(): Promise<void>;
}

function installSdk(withContextManager = true): Sdk {
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(noopExporter)],
  });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 3_600_000,
      }),
    ],
  });
  if (withContextManager) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
  return {
    async shutdown() {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      trace.disable();
      metrics.disable();
      context.disable();
    },
  };
}

function incoming(count: number): IncomingMessage[] {
  return encodedOrders(count).map((message, i) => ({
    message,
    attempt: 1,
    origin: { transport: 'kafka', topic: 'bench', partition: 0, offset: String(i), group: 'g' },
  }));
}

/** Messages per second and CPU µs per message of one pass of the pipeline over `messages`. */
async function pipelinePass(
  messages: IncomingMessage[],
  name: string,
): Promise<{ rate: number; cpuUs: number }> {
  let sum = 0;
  const pipeline = createConsumerPipeline(
    {
      name,
      handlers: [
        handle(
          BenchOrderPlaced,
          ({ data }) => {
            sum += data.amountCents;
          },
          { version: 2 },
        ),
      ],
      idempotency: { ttlMs: 600_000 },
    },
    { dedupeStore: new InMemoryDedupeStore(), logger: silentLogger },
  );
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < messages.length; i += BATCH) {
    await pipeline.processBatch(messages.slice(i, i + BATCH));
  }
  const seconds = (performance.now() - t0) / 1000;
  if (sum <= 0) throw new Error('the handler did not run');
  return {
    rate: messages.length / seconds,
    cpuUs: (cpuSecondsSince(c0) * 1e6) / messages.length,
  };
}

/** Keeps the harness loop's result alive (so it is not optimised away). */
let _sink: Disposition | undefined;

/**
 * CPU nanoseconds per message of the two hooks the pipeline calls, without an SDK: the loop that
 * calls them minus the same loop calling the handler directly (its context object, promise and
 * `await` are the pipeline's with or without telemetry, so they are not the hooks' cost). The
 * two loops alternate, five rounds each.
 */
async function hooksNs(messages: IncomingMessage[]): Promise<number> {
  const ack: Disposition = { kind: 'ack', outcome: 'handled' };
  const run = (_ctx: { message: IncomingMessage; consumer: string }) => Promise.resolve(ack);
  let withHooks = 0;
  let without = 0;
  for (let r = 0; r < 5; r++) {
    let c0 = process.cpuUsage();
    for (const message of messages) {
      const ctx = { message, consumer: 'g' };
      finishConsume(ctx, await runConsume(ctx, run));
    }
    withHooks += cpuSecondsSince(c0);
    c0 = process.cpuUsage();
    for (const message of messages) {
      const ctx = { message, consumer: 'g' };
      _sink = await run(ctx);
    }
    without += cpuSecondsSince(c0);
  }
  return (Math.max(0, withHooks - without) * 1e9) / (messages.length * 5);
}
export const telemetryBenchmark: Benchmark = {
  id: 'telemetry',
  title: 'consumer pipeline: OpenTelemetry API only vs SDK, against no telemetry',
  async run(options, rec) {
    const n = options.messages;
    rec.params.messages = n;
    rec.params.batch = BATCH;
    rec
      .metric('none', {
        label: 'no telemetry (derived: API-only CPU minus the hooks)',
        role: 'baseline',
        unit: 'msg/cpu-s',
      })
      .metric('api', { label: 'API only, no SDK', role: 'backtrack', unit: 'msg/cpu-s' })
      .metric('sdk', { label: 'SDK + no-op exporter', role: 'backtrack', unit: 'msg/cpu-s' })
      .metric('hooks', { label: 'telemetry hooks without an SDK', role: 'info', unit: 'ns/msg' })
      .metric('sdkNoContext', {
        label: 'SDK, no context manager (handler spans not parented)',
        role: 'info',
        unit: 'msg/cpu-s',
      })
      .metric('apiWall', { label: 'API only, wall clock', role: 'info', unit: 'msg/s' })
      .metric('sdkWall', { label: 'SDK + no-op exporter, wall clock', role: 'info', unit: 'msg/s' })
      .ratio('apiVsNone', {
        label: 'API only / no telemetry',
        numerator: 'api',
        denominator: 'none',
        target: 0.97,
      })
      .ratio('sdkVsNone', { label: 'SDK / no telemetry', numerator: 'sdk', denominator: 'none' })
      .ratio('sdkVsApi', { label: 'SDK / API only', numerator: 'sdk', denominator: 'api' });
    const messages = incoming(n);
    // Warm up both paths (JIT) before the first measured run.
    await pipelinePass(messages.slice(0, Math.min(n, 2_000)), 'warm-api');
    const warm = installSdk();
    await pipelinePass(messages.slice(0, Math.min(n, 2_000)), 'warm-sdk');
    await warm.shutdown();
    await hooksNs(messages.slice(0, Math.min(n, 2_000)));

    for (let run = 0; run < options.runs; run++) {
      rec.log(`run ${run + 1}/${options.runs}`);
      const measureApi = async () => {
        const api = await pipelinePass(messages, `api-${run}`);
        const hooks = await hooksNs(messages);
        const cpuNs = api.cpuUs * 1000;
        rec.record('api', 1e9 / cpuNs);
        rec.record('hooks', hooks);
        rec.record('none', 1e9 / Math.max(1, cpuNs - hooks));
        rec.record('apiWall', api.rate);
      };
      const measureSdk = async () => {
        const sdk = installSdk();
        try {
          const result = await pipelinePass(messages, `sdk-${run}`);
          rec.record('sdk', 1e9 / (result.cpuUs * 1000));
          rec.record('sdkWall', result.rate);
        } finally {
          await sdk.shutdown();
        }
      };
      const measureSdkNoContext = async () => {
        const sdk = installSdk(false);
        try {
          const result = await pipelinePass(messages, `sdk-noctx-${run}`);
          rec.record('sdkNoContext', 1e9 / (result.cpuUs * 1000));
        } finally {
          await sdk.shutdown();
        }
      };
      // Alternate which side runs first.
      if (run % 2 === 0) {
        await measureApi();
        await measureSdk();
        await measureSdkNoContext();
      } else {
        await measureSdkNoContext();
        await measureSdk();
        await measureApi();
      }
    }
  },
};
