/**
 * `npm run bench [-- options]`: runs every benchmark (or `--only` some), prints a table and
 * writes bench/results/latest.json. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dedupeBenchmark } from './benchmarks/dedupe.js';
import { e2eBenchmark } from './benchmarks/e2e.js';
import { KAFKA_CONSUME_SIDES, kafkaConsumeBenchmark } from './benchmarks/kafkaConsume.js';
import { kafkaPublishBenchmark } from './benchmarks/kafkaPublish.js';
import { rabbitConsumeBenchmark } from './benchmarks/rabbitConsume.js';
import { rabbitPublishBenchmark } from './benchmarks/rabbitPublish.js';
import { rollbackBenchmark } from './benchmarks/rollback.js';
import { sagaBenchmark } from './benchmarks/saga.js';
import { sagaRetentionBenchmark } from './benchmarks/sagaRetention.js';
import { telemetryBenchmark } from './benchmarks/telemetry.js';
import { describeMachine, machineInfo } from './machine.js';
import {
  FULL_DEFAULTS,
  QUICK_DEFAULTS,
  Recorder,
  table,
  type BenchmarkResult,
  type BenchOptions,
  type Benchmark,
} from './runner.js';

/** Every benchmark, in the issue's order. */
export const BENCHMARKS: readonly Benchmark[] = [
  kafkaConsumeBenchmark,
  kafkaPublishBenchmark,
  rabbitConsumeBenchmark,
  rabbitPublishBenchmark,
  sagaBenchmark,
  dedupeBenchmark,
  rollbackBenchmark,
  e2eBenchmark,
  telemetryBenchmark,
  sagaRetentionBenchmark,
];

const D = FULL_DEFAULTS;
const HELP = `Usage: npm run bench -- [options]

  --quick              smoke mode: tiny sizes, 1 run (well under a minute)
  --runs N             runs per benchmark (default ${D.runs}; quick 1)
  --messages N         messages per consume run, Kafka and RabbitMQ (default ${D.messages})
  --publish N          messages per publish run, Kafka and RabbitMQ (default ${D.publish})
  --concurrency N      publishes / claims in flight at once (default ${D.concurrency})
  --prefetch N         RabbitMQ prefetch of both consumers (default ${D.prefetch})
  --sagas N            sagas per run on the in-memory store (default ${D.sagas})
  --redis-sagas N      sagas per run on the Redis store (default ${D.redisSagas})
  --saga-concurrency N sagas driven at once (default ${D.sagaConcurrency})
  --retention-sagas N  saga-retention: finished sagas per side (default ${D.retentionSagas})
  --claims N           dedupe claims per run (default ${D.claims})
  --batch N            keys per claimMany / pipeline (default ${D.batch})
  --effects N          journaled effects a rollback reverses per run (default ${D.effects})
  --orders N           e2e: orders per load-driver run (default ${D.orders})
  --order-concurrency N e2e: sagas placed at once (default ${D.orderConcurrency})
  --e2e-warmup N       e2e: also measure warm runs, N orders placed first unmeasured (default ${D.e2eWarmup}; 0: cold only)
  --drill-orders N     e2e: also run the rollback drill on Kafka and RabbitMQ (default 0: off)
  --e2e-partitions N   e2e: partitions per topic (default ${D.e2ePartitions})
  --e2e-consumers K    e2e: consumers per service in one group (default ${D.e2eConsumers})
  --only a,b           only these benchmarks: ${BENCHMARKS.map((b) => b.id).join(', ')}
  --sides a,b          kafka-consume: only these sides (${KAFKA_CONSUME_SIDES.join(', ')}), for profiles
  --out FILE           JSON output (default bench/results/latest.json)
  --help`;

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      messages: { type: 'string' },
      publish: { type: 'string' },
      concurrency: { type: 'string' },
      prefetch: { type: 'string' },
      sagas: { type: 'string' },
      'redis-sagas': { type: 'string' },
      'saga-concurrency': { type: 'string' },
      'retention-sagas': { type: 'string' },
      claims: { type: 'string' },
      batch: { type: 'string' },
      effects: { type: 'string' },
      orders: { type: 'string' },
      'order-concurrency': { type: 'string' },
      'e2e-warmup': { type: 'string' },
      'drill-orders': { type: 'string' },
      'e2e-partitions': { type: 'string' },
      'e2e-consumers': { type: 'string' },
      only: { type: 'string' },
      sides: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const d = values.quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const only = (values.only ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const known = new Set(BENCHMARKS.map((b) => b.id));
  for (const id of only) if (!known.has(id)) throw new Error(`--only: unknown benchmark "${id}"`);
  const sides = (values.sides ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const side of sides) {
    if (!KAFKA_CONSUME_SIDES.includes(side)) throw new Error(`--sides: unknown side "${side}"`);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  return {
    quick: values.quick ?? false,
    runs: positive('runs', values.runs, d.runs),
    messages: positive('messages', values.messages, d.messages),
    publish: positive('publish', values.publish, d.publish),
    concurrency: positive('concurrency', values.concurrency, d.concurrency),
    prefetch: positive('prefetch', values.prefetch, d.prefetch),
    sagas: positive('sagas', values.sagas, d.sagas),
    redisSagas: positive('redis-sagas', values['redis-sagas'], d.redisSagas),
    sagaConcurrency: positive('saga-concurrency', values['saga-concurrency'], d.sagaConcurrency),
    retentionSagas: positive('retention-sagas', values['retention-sagas'], d.retentionSagas),
    claims: positive('claims', values.claims, d.claims),
    batch: positive('batch', values.batch, d.batch),
    effects: positive('effects', values.effects, d.effects),
    orders: positive('orders', values.orders, d.orders),
    orderConcurrency: positive(
      'order-concurrency',
      values['order-concurrency'],
      d.orderConcurrency,
    ),
    e2eWarmup:
      values['e2e-warmup'] === '0' ? 0 : positive('e2e-warmup', values['e2e-warmup'], d.e2eWarmup),
    drillOrders:
      values['drill-orders'] === '0'
        ? 0
        : positive('drill-orders', values['drill-orders'], d.drillOrders),
    e2ePartitions: positive('e2e-partitions', values['e2e-partitions'], d.e2ePartitions),
    e2eConsumers: positive('e2e-consumers', values['e2e-consumers'], d.e2eConsumers),
    only,
    sides,
    out: resolve(values.out ?? resolve(here, '../results/latest.json')),
  };
}

export interface BenchReport {
  version: 1;
  startedAt: string;
  durationS: number;
  quick: boolean;
  options: BenchOptions;
  machine: Awaited<ReturnType<typeof machineInfo>>;
  /** Load average when the run ended (the machine is shared). */
  loadAverageAtEnd: number[];
  benchmarks: BenchmarkResult[];
  /** Benchmarks that threw, with the error: the run goes on with the others. */
  failures: { id: string; error: string }[];
  /** Benchmarks that failed once and were run again (a broker restarted under them). */
  retried: { id: string; error: string }[];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === 'help') {
    console.log(HELP);
    return;
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = await machineInfo();
  console.log(
    `Backtrack benchmarks${options.quick ? ' (quick smoke mode)' : ''}\n${describeMachine(machine)}\n`,
  );
  const selected = BENCHMARKS.filter(
    (b) => options.only.length === 0 || options.only.includes(b.id),
  );
  const results: BenchmarkResult[] = [];
  const failures: BenchReport['failures'] = [];
  const retried: BenchReport['retried'] = [];
  for (const benchmark of selected) {
    console.log(`== ${benchmark.id}: ${benchmark.title}`);
    // The services are shared: another engineer's fault test may restart a broker mid-run. A
    // benchmark that fails is run once more from scratch before it counts as failed.
    for (let attempt = 1; attempt <= 2; attempt++) {
      const t = performance.now();
      const rec = new Recorder(benchmark.id, benchmark.title, (m) =>
        console.log(`${`[${((performance.now() - t) / 1000).toFixed(1)}s]`.padEnd(9)}${m}`),
      );
      try {
        await benchmark.run(options, rec);
        results.push(rec.result((performance.now() - t) / 1000));
        break;
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        console.error(`!! ${benchmark.id} failed (attempt ${attempt}): ${message}`);
        if (attempt === 2) failures.push({ id: benchmark.id, error: message });
        else {
          retried.push({ id: benchmark.id, error: message });
          await new Promise((r) => setTimeout(r, options.quick ? 2_000 : 15_000));
        }
      }
    }
  }
  const os = await import('node:os');
  const report: BenchReport = {
    version: 1,
    startedAt: startedAt.toISOString(),
    durationS: (performance.now() - t0) / 1000,
    quick: options.quick,
    options,
    machine,
    loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
    benchmarks: results,
    failures,
    retried,
  };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${table(results)}\n`);
  for (const b of results) for (const n of b.notes) console.log(`- ${b.id}: ${n}`);
  console.log(`\nWrote ${options.out} (${report.durationS.toFixed(1)} s)`);
  if (failures.length > 0) {
    console.error(
      `${failures.length} benchmark(s) failed: ${failures.map((f) => f.id).join(', ')}`,
    );
    process.exitCode = 1;
  }
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    // A client that failed mid-benchmark may keep a socket open: do not hang on it.
    setTimeout(() => process.exit(), 5_000).unref();
  });
