/**
 * 8. End to end: the order-saga load driver (examples/order-saga/src/bin/load.ts, all four
 * services in one process, each order a 3-step saga of about 12 messages) on the in-memory
 * transport, on Kafka and on RabbitMQ (Redis holding journal, dedupe, saga log and state), and
 * optionally the rollback drill on both brokers (time from the rollback's start to consistency).
 *
 * Each run is its own child process (`tsx ... --json`), as a user runs it: the benchmark reads
 * the one JSON line it prints. Two baselines:
 * - the in-memory rate (the same code with no broker and no Redis: what the CPU allows), whose
 *   ratios say what the brokers and Redis cost;
 * - the hand-written order saga (bench/src/handwritten: the same orders, state and checker on
 *   raw kafkajs / amqplib and ioredis, with the same guarantees written by hand), run next to
 *   each Backtrack run: its ratios say what Backtrack costs over the code a team would write.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SERVICES } from '../common.js';
import { localServerPids, serverCpuUs, type ServerName } from '../serverCpu.js';
import type { Benchmark, BenchOptions } from '../runner.js';

const here = dirname(fileURLToPath(import.meta.url));
const examples = resolve(here, '../../../examples');
const TRANSPORTS = ['memory', 'kafka', 'rabbitmq'] as const;
const handwritten = resolve(here, '../handwritten/main.ts');

interface LoadJson {
  transport: string;
  orders: number;
  ordersPerS: number;
  /** CPU of the driver's process per order (all four services run in it). */
  cpuUsPerOrder: number;
  consistent: boolean;
  surprises: number;
  checkMs: number;
}

interface DrillJson {
  converged: boolean;
  timeToConsistencyMs: number;
  rollbackRunMs: number;
  /** The drill in its process, from the start to the report (without the child's start-up). */
  totalMs: number;
  reversed: number;
  replayed: number;
  failed: number;
  needsPerson: { rollbackItems: number; orders: string[] };
  loadMs: { good: number; bad: number };
}

/** Runs one of the examples' entry points and parses the JSON it prints last. */
async function runExample<T>(script: string, args: string[], timeoutMs: number): Promise<T> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', script, ...args],
    {
      cwd: examples,
      env: {
        ...process.env,
        REDIS_URL: SERVICES.redis,
        AMQP_URL: SERVICES.amqp,
        KAFKA_BROKERS: SERVICES.kafka.join(','),
      },
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return parseResult<T>(stdout, script);
}

/**
 * The result object in a child's stdout: the load driver prints it on one line, the drill
 * pretty-printed; the library's pino log lines (JSON too, on the same stdout) are skipped.
 */
export function parseResult<T>(stdout: string, what = 'the example'): T {
  const oneLine = stdout.split('\n').filter((line) => line.startsWith('{"transport"'));
  if (oneLine.length > 0) return JSON.parse(oneLine.at(-1)!) as T;
  const start = stdout.lastIndexOf('{\n  "transport"');
  const end = start < 0 ? -1 : stdout.indexOf('\n}', start);
  if (start < 0 || end < 0) throw new Error(`${what} printed no result: ${stdout.slice(0, 500)}`);
  return JSON.parse(stdout.slice(start, end + 2)) as T;
}

function topologyArgs(o: BenchOptions): string[] {
  return ['--partitions', String(o.e2ePartitions), '--consumers', String(o.e2eConsumers)];
}

/** The arguments every run shares (load driver, hand-written saga, drill): `orders` at once. */
function runArgs(transport: string, orders: number, o: BenchOptions): string[] {
  return [
    ...['--transport', transport, '--orders', String(orders)],
    ...['--concurrency', String(o.orderConcurrency), '--json'],
  ];
}

/** The result key of a server's CPU per order beside a side's run (`kafka-broker-cpu`, ...). */
function serverCpuKey(side: string, server: ServerName, suffix = ''): string {
  return `${side}-${server === 'redis' ? 'redis' : 'broker'}-cpu${suffix}`;
}

/** One program measured on a broker: Backtrack's load driver or the hand-written saga. */
interface Side {
  /** Its result keys' stem: `kafka`, `hand-kafka`, `hand-ce-kafka`. */
  key: string;
  hand: boolean;
  /** Its name in ratio keys (`kafka-vs-hand`, `kafka-vs-hand-ce`). */
  baseline: string;
  /** The hand-written saga sending the CloudEvents binary-mode headers Backtrack sends too. */
  cloudEvents: boolean;
}

/**
 * The sides run on a broker, in this order: Backtrack, the hand-written saga, and the
 * hand-written saga with Backtrack's CloudEvents headers (the same bytes on the wire as
 * Backtrack: its ratio is the like-for-like one, the plain one what a team would write).
 */
function sidesOf(t: 'kafka' | 'rabbitmq'): Side[] {
  return [
    { key: t, hand: false, baseline: '', cloudEvents: false },
    { key: `hand-${t}`, hand: true, baseline: 'hand', cloudEvents: false },
    { key: `hand-ce-${t}`, hand: true, baseline: 'hand-ce', cloudEvents: true },
  ];
}

function sideLabel(key: string, t: string): string {
  if (key.startsWith('hand-ce-')) return `hand-written with CloudEvents headers on ${t}`;
  if (key.startsWith('hand-')) return `hand-written on ${t}`;
  return `Backtrack on ${t}`;
}

export const e2eBenchmark: Benchmark = {
  id: 'e2e',
  title: 'End to end: order-saga load driver (orders/s) on memory, Kafka, RabbitMQ; drill',
  async run(o, rec) {
    // The targets are stated for 2,000 orders 256 at once and a 10,000-order drill: a
    // smaller run reports its numbers without a met/MISSED verdict it has not earned.
    const loadTarget = (t: number) =>
      o.orders >= 2_000 && o.orderConcurrency >= 256 ? { target: t } : {};
    const drillTarget = (t: number) => (o.drillOrders >= 10_000 ? { target: t } : {});
    Object.assign(rec.params, {
      orders: o.orders,
      concurrency: o.orderConcurrency,
      partitions: o.e2ePartitions,
      consumers: o.e2eConsumers,
      warmup: o.e2eWarmup,
      drillOrders: o.drillOrders,
    });
    rec
      .metric('memory', {
        label: 'load driver, in-memory transport',
        role: 'baseline',
        unit: 'orders/s',
        ...loadTarget(5_000),
      })
      .metric('kafka', {
        label: 'load driver, Kafka + Redis',
        role: 'backtrack',
        unit: 'orders/s',
        ...loadTarget(1_000),
      })
      .metric('rabbitmq', {
        label: 'load driver, RabbitMQ + Redis',
        role: 'backtrack',
        unit: 'orders/s',
        ...loadTarget(1_000),
      })
      .ratio('kafka-vs-memory', {
        label: 'Kafka / in-memory',
        numerator: 'kafka',
        denominator: 'memory',
      })
      .ratio('rabbitmq-vs-memory', {
        label: 'RabbitMQ / in-memory',
        numerator: 'rabbitmq',
        denominator: 'memory',
      });
    // The broker's and Redis's CPU per order beside each run, where they are local processes.
    const servers = localServerPids();
    const measured = (t: 'kafka' | 'rabbitmq'): ServerName[] =>
      ([t, 'redis'] as const).filter((name) => servers[name] !== undefined);
    const warm = o.e2eWarmup > 0;
    const of = `after ${o.e2eWarmup} unmeasured orders`;
    for (const t of ['kafka', 'rabbitmq'] as const) {
      const raw = t === 'kafka' ? 'kafkajs' : 'amqplib';
      for (const side of sidesOf(t)) {
        const who = sideLabel(side.key, t);
        for (const server of measured(t)) {
          const what = server === 'redis' ? 'Redis' : 'broker';
          rec.metric(serverCpuKey(side.key, server), {
            label: `${who}: ${what} CPU per order (whole child run: set-up and check too)`,
            role: 'info',
            unit: 'µs',
            direction: 'max',
          });
          if (warm)
            rec.metric(serverCpuKey(side.key, server, '-steady'), {
              label: `${who}: ${what} CPU per order, steady (warm run minus cold run, per warm-up order)`,
              role: 'info',
              unit: 'µs',
              direction: 'max',
            });
        }
        if (side.hand) {
          rec.metric(side.key, {
            label: side.cloudEvents
              ? `hand-written order saga with CloudEvents headers, raw ${raw} + ioredis`
              : `hand-written order saga, raw ${raw} + ioredis`,
            role: 'baseline',
            unit: 'orders/s',
          });
          rec.ratio(`${t}-vs-${side.baseline}`, {
            label: `Backtrack / ${who}`,
            numerator: t,
            denominator: side.key,
          });
        }
        rec.metric(`${side.key}-cpu`, {
          label: `${who}: driver process CPU per order`,
          role: 'info',
          unit: 'µs',
          direction: 'max',
        });
      }
    }
    // Warm runs: the same child places `e2eWarmup` orders first, unmeasured, so every JIT is warm
    // when the measured orders start, as in a service that has been running (a cold run of 2,000
    // orders spends about half of its driver CPU before the code is optimised).
    if (warm) {
      rec.metric('memory-warm', {
        label: `load driver, in-memory transport, warm (${of})`,
        role: 'baseline',
        unit: 'orders/s',
        ...loadTarget(5_000),
      });
      for (const t of ['kafka', 'rabbitmq'] as const) {
        rec.metric(`${t}-warm`, {
          label: `load driver, ${t === 'kafka' ? 'Kafka' : 'RabbitMQ'} + Redis, warm (${of})`,
          role: 'backtrack',
          unit: 'orders/s',
          ...loadTarget(1_000),
        });
        for (const side of sidesOf(t)) {
          const who = sideLabel(side.key, t);
          if (side.hand) {
            rec.metric(`${side.key}-warm`, {
              label: `${who}, warm (${of})`,
              role: 'baseline',
              unit: 'orders/s',
            });
            rec.ratio(`${t}-vs-${side.baseline}-warm`, {
              label: `Backtrack / ${who}, warm`,
              numerator: `${t}-warm`,
              denominator: `${side.key}-warm`,
            });
          }
          rec.metric(`${side.key}-warm-cpu`, {
            label: `${who}, warm: driver process CPU per measured order`,
            role: 'info',
            unit: 'µs',
            direction: 'max',
          });
        }
      }
    }
    if (o.drillOrders > 0) {
      for (const t of ['kafka', 'rabbitmq'] as const) {
        rec
          .metric(`drill-${t}`, {
            label: `drill on ${t}: rollback start to consistency`,
            role: 'info',
            unit: 's',
            ...drillTarget(5),
            direction: 'max',
          })
          .metric(`drill-${t}-total`, {
            label: `drill on ${t}: whole drill, placing included (child process, start-up too)`,
            role: 'info',
            unit: 's',
            ...drillTarget(60),
            direction: 'max',
          })
          .metric(`drill-${t}-rollback-run`, {
            label: `drill on ${t}: rollback start to both runs done (redeploy, plan, publish)`,
            role: 'info',
            unit: 's',
            direction: 'max',
          })
          .metric(`drill-${t}-placing`, {
            label: `drill on ${t}: placing the orders (both phases)`,
            role: 'info',
            unit: 's',
            direction: 'max',
          });
      }
    }
    /**
     * Each measured server's CPU over a child run since `before`, recorded per order for a cold
     * run; for a warm run, the difference from the same side's cold run of this round divided by
     * the warm-up orders: what one more order costs the server once set-up is paid (`-steady`).
     */
    const coldServerCpu = new Map<string, Partial<Record<ServerName, number>>>();
    const recordServers = (
      side: string,
      transport: 'kafka' | 'rabbitmq',
      before: Partial<Record<ServerName, number>>,
      warmup: number,
    ) => {
      const after = serverCpuUs(servers);
      const used: Partial<Record<ServerName, number>> = {};
      for (const server of measured(transport)) {
        used[server] = (after[server] ?? NaN) - (before[server] ?? NaN);
      }
      if (warmup === 0) {
        coldServerCpu.set(side, used);
        for (const server of measured(transport)) {
          rec.record(serverCpuKey(side, server), used[server]! / o.orders);
        }
        return;
      }
      const cold = coldServerCpu.get(side);
      if (!cold) return;
      for (const server of measured(transport)) {
        rec.record(serverCpuKey(side, server, '-steady'), (used[server]! - cold[server]!) / warmup);
      }
    };
    const timeoutMs = Math.max(120_000, (o.orders + o.e2eWarmup) * 500);
    /** One child run of a side; throws when its checker did not end consistent. */
    const runSide = async (side: Side, transport: string, warmup: number): Promise<LoadJson> => {
      const warmArgs = warmup > 0 ? ['--warmup', String(warmup)] : [];
      const result = side.hand
        ? await runExample<LoadJson>(
            handwritten,
            [
              ...runArgs(transport, o.orders, o),
              ...['--partitions', String(o.e2ePartitions)],
              ...(side.cloudEvents ? ['--cloudevents'] : []),
              ...warmArgs,
            ],
            timeoutMs,
          )
        : await runExample<LoadJson>(
            'order-saga/src/bin/load.ts',
            [...runArgs(transport, o.orders, o), ...topologyArgs(o), ...warmArgs],
            timeoutMs,
          );
      if (!result.consistent || result.surprises > 0) {
        throw new Error(
          `${side.key} ${warmup > 0 ? 'warm ' : ''}ended inconsistent (${result.surprises} surprises): the rate would not count`,
        );
      }
      return result;
    };
    /**
     * One load-driver run of `transport` and, on a broker, the hand-written saga (plain, then with
     * the CloudEvents headers Backtrack sends) right after it on the same broker and machine
     * state; `warmup` orders first, unmeasured, on a warm run (its result keys end in `-warm`).
     */
    const measure = async (transport: (typeof TRANSPORTS)[number], warmup: number) => {
      const suffix = warmup > 0 ? '-warm' : '';
      if (transport === 'memory') {
        const result = await runSide(
          { key: 'memory', hand: false, baseline: '', cloudEvents: false },
          transport,
          warmup,
        );
        rec.record(`memory${suffix}`, result.ordersPerS);
        return;
      }
      for (const side of sidesOf(transport)) {
        const before = serverCpuUs(servers);
        const result = await runSide(side, transport, warmup);
        rec.record(`${side.key}${suffix}`, result.ordersPerS);
        rec.record(`${side.key}${suffix}-cpu`, result.cpuUsPerOrder);
        recordServers(side.key, transport, before, warmup);
      }
    };
    for (let run = 0; run < o.runs; run++) {
      for (const transport of TRANSPORTS) {
        await measure(transport, 0);
        if (warm) await measure(transport, o.e2eWarmup);
      }
      if (o.drillOrders > 0) {
        for (const transport of ['kafka', 'rabbitmq'] as const) {
          const started = performance.now();
          const drill = await runExample<DrillJson>(
            'rollback-drill/src/main.ts',
            [...runArgs(transport, o.drillOrders, o), ...topologyArgs(o)],
            Math.max(600_000, o.drillOrders * 200),
          );
          if (!drill.converged || drill.failed > 0) {
            throw new Error(`drill on ${transport} did not converge (${drill.failed} failed)`);
          }
          // Every wrong charge reversed once and replayed once, nobody needed: else the time
          // would not count.
          if (
            drill.reversed === 0 ||
            drill.reversed !== drill.replayed ||
            drill.needsPerson.rollbackItems > 0 ||
            drill.needsPerson.orders.length > 0
          ) {
            throw new Error(
              `drill on ${transport}: ${drill.reversed} reversed, ${drill.replayed} replayed, ${drill.needsPerson.rollbackItems + drill.needsPerson.orders.length} for a person`,
            );
          }
          rec.record(`drill-${transport}`, drill.timeToConsistencyMs / 1000);
          rec.record(`drill-${transport}-total`, (performance.now() - started) / 1000);
          rec.record(`drill-${transport}-rollback-run`, drill.rollbackRunMs / 1000);
          rec.record(`drill-${transport}-placing`, (drill.loadMs.good + drill.loadMs.bad) / 1000);
        }
      }
    }
    if (o.drillOrders === 0) rec.note('drill not run (give --drill-orders N to time it)');
    rec.note(
      'each run a child process (tsx) with the four services in it; the machine is shared, see loadAverageAtEnd',
    );
  },
};
