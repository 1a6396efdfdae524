/**
 * The rollback drill: a bad deploy of payments, detected, rolled back, and its effects reversed
 * and replayed until every order is consistent again.
 *
 *  1. start the four services; place the first 30 % of the orders with payments 1.0.0;
 *  2. deploy payments 1.1.0 (the same code with `bad: true`): it charges 100× the amount and
 *     publishes `payment.charged` v2, which the deployed inventory cannot read (dead-lettered,
 *     so those orders' stock is never marked sold); place the other 70 %;
 *  3. detect it with the consistency checker;
 *  4. roll payments back to 1.0.0, then roll back the effects of 1.1.0 from the journal:
 *     `compensate` (each wrong charge → `payment.adjustment-requested`, which the good payments
 *     turns into a refund of the overcharge) and `replay` (each `payment.charged` re-published
 *     downcast to v1, which inventory reads);
 *  5. run the checker until every order is consistent; report the time from the start of the
 *     rollback to consistency, the effects reversed and replayed, and orders needing a person.
 */
import {
  planRollback,
  runRollback,
  type Logger,
  type RollbackPlan,
  type RollbackRunResult,
} from '@backtrack/core';
import { pino } from 'pino';
import { orderSpec } from '../../order-saga/src/catalog.js';
import { checkConsistency, type ConsistencyReport } from '../../order-saga/src/checker.js';
import { currentRegistry } from '../../order-saga/src/events.js';
import {
  createRuntime,
  type RuntimeOptions,
  type TransportKind,
} from '../../order-saga/src/infra/runtime.js';
import {
  parsePrometheus,
  sumOf,
  type Otel,
  type PromSample,
} from '../../order-saga/src/infra/otel.js';
import { placeOrders, type LoadResult } from '../../order-saga/src/load.js';
import {
  PAYMENTS_BAD_VERSION,
  PAYMENTS_GOOD_VERSION,
  paymentsCompensationsFor,
} from '../../order-saga/src/services/payments.js';
import { startShop } from '../../order-saga/src/system.js';

export interface DrillOptions {
  transport: TransportKind;
  orders: number;
  /** Prefix of every topic, queue and key of this run. @default `drill-<time>` */
  prefix?: string;
  /** Sagas placed at once. @default 64 */
  concurrency?: number;
  /** Partitions, consumers per service, RabbitMQ prefetch, publish linger (`--partitions` ...). */
  topology?: Pick<RuntimeOptions, 'partitions' | 'consumers' | 'prefetch' | 'lingerMs'>;
  /** Give up converging after this long, in ms. @default 300_000 */
  convergeTimeoutMs?: number;
  /** How long a saga step waits for its reply, in ms. @default 30_000 on a broker, 5_000 in memory */
  replyTimeoutMs?: number;
  /** Options of the two rollback runs. @default DRILL_ROLLBACK_OPTIONS */
  rollback?: { batchSize?: number; batchesInFlight?: number };
  /** Leave the run's queues and Redis keys in place (to inspect them). @default false */
  keep?: boolean;
  /** Receives each phase as it starts and progress within it (for the progress display). */
  onPhase?: (phase: DrillPhase, total?: number) => void;
  onProgress?: (done: number, total: number) => void;
  /**
   * The installed OpenTelemetry SDK (`--otel`): the drill then reads the signals of the bad
   * deploy (dead-letter rate, stuck sagas) from its Prometheus endpoint, as an alert would.
   */
  otel?: Otel;
}

/** The signals of the bad deploy, read from the Prometheus endpoint (`--otel`). */
export interface DrillSignals {
  metricsUrl: string;
  /** During the bad deploy: messages the consumers finished, and how many were dead-lettered. */
  messages: number;
  deadLetters: number;
  /** `deadLetters / messages`. */
  deadLetterRate: number;
  /** Dead letters of the bad deploy by consumer, event type and reason. */
  deadLettersBy: Record<string, number>;
  /** The `backtrack.saga.stuck` gauge after the bad deploy. */
  stuckSagas: number;
  /** Sagas that ended during the bad deploy, by status. */
  sagasEnded: Record<string, number>;
  /** The `backtrack.publisher.journal.pending` gauge after the bad deploy. */
  journalPending: number;
}

/** The signals between two scrapes of the Prometheus endpoint. */
export function signalsBetween(
  metricsUrl: string,
  before: readonly PromSample[],
  after: readonly PromSample[],
): DrillSignals {
  const delta = (name: string, where: Record<string, string> = {}) =>
    sumOf(after, name, where) - sumOf(before, name, where);
  const messages = delta('backtrack_consumer_messages_total');
  const deadLetters = delta('backtrack_consumer_dead_letters_total');
  const deadLettersBy: Record<string, number> = {};
  for (const s of after.filter((x) => x.name === 'backtrack_consumer_dead_letters_total')) {
    const n = s.value - sumOf(before, s.name, s.labels);
    if (n <= 0) continue;
    const key = `${s.labels['backtrack_consumer_name']} ← ${s.labels['cloudevents_event_type']}: ${s.labels['backtrack_dead_letter_reason']}`;
    deadLettersBy[key] = (deadLettersBy[key] ?? 0) + n;
  }
  const sagasEnded: Record<string, number> = {};
  for (const status of ['completed', 'compensated', 'failed']) {
    sagasEnded[status] = delta('backtrack_saga_ended_total', { backtrack_saga_status: status });
  }
  return {
    metricsUrl,
    messages,
    deadLetters,
    deadLetterRate: messages === 0 ? 0 : deadLetters / messages,
    deadLettersBy,
    stuckSagas: sumOf(after, 'backtrack_saga_stuck'),
    sagasEnded,
    journalPending: sumOf(after, 'backtrack_publisher_journal_pending'),
  };
}

export type DrillPhase =
  | 'starting'
  | 'placing orders (payments 1.0.0)'
  | 'placing orders (payments 1.1.0, bad)'
  | 'detecting'
  | 'rolling back payments'
  | 'compensating and replaying'
  | 'converging';

/** Orders the converging checker reads at most at once (one pipelined read). */
const CONVERGE_CHUNK = 250;

/** Options of the drill's rollback runs (see `RunRollbackOptions`). */
export const DRILL_ROLLBACK_OPTIONS = { batchSize: 500, batchesInFlight: 4 } as const;

/** Where the drill's time went, in ms; the `…Ms` after `detectMs` count from the rollback's start. */
export interface DrillBreakdown {
  /** Creating the runtime and starting the four services. */
  startMs: number;
  placeGoodMs: number;
  placeBadMs: number;
  /** The checker's detection of the bad deploy (until two reports agree). */
  detectMs: number;
  /** Payments 1.0.0 running again (the bad build stopped). */
  redeployMs: number;
  /** Both plans made (at the same time as the redeploy). */
  planMs: number;
  /** Both rollback runs done: every compensation and replay published, progress written. */
  rollbackRunMs: number;
  /** The orders found inconsistent all agree again (the pipelined partial check). */
  ordersConsistentMs: number;
  /** The full check says consistent. */
  timeToConsistencyMs: number;
  /** Checks while converging: partial (pipelined, the pending orders) and full, and their time. */
  checks: { partial: number; full: number; checkMs: number };
  /** While converging: [ms from the rollback's start, orders still wrong] after each read that found some. */
  pending: [number, number][];
}

export interface DrillResult {
  transport: TransportKind;
  orders: number;
  load: { good: LoadResult; bad: LoadResult };
  /** What the checker saw after the bad deploy. */
  detected: ConsistencyReport;
  /** Dead letters the consumers reported during the drill, by consumer, event and code. */
  deadLetters: Record<string, number>;
  /** With `otel`: the bad deploy's signals as its metrics showed them. */
  signals?: DrillSignals;
  plans: { compensate: RollbackPlan['counts']; replay: RollbackPlan['counts'] };
  runs: { compensate: RollbackRunResult; replay: RollbackRunResult };
  /** Effects reversed (compensating events published) and replayed. */
  reversed: number;
  replayed: number;
  skipped: number;
  failed: number;
  /** Rollback items and orders that a person must handle. */
  needsPerson: { rollbackItems: number; orders: string[] };
  converged: boolean;
  /** From the start of the rollback (payments redeployed) to the first consistent check, in ms. */
  timeToConsistencyMs: number;
  /** From the rollback's start to both runs done (redeploy, planning and publishing), in ms. */
  rollbackRunMs: number;
  breakdown: DrillBreakdown;
  final: ConsistencyReport;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The items a rollback run of `plan` counts in its progress (`RollbackProgressEvent.total`). */
export function runItemCount(plan: Pick<RollbackPlan, 'counts'>): number {
  const { items, sagas, needsPerson, skipped } = plan.counts;
  return items + sagas + needsPerson + skipped;
}

/** How many of `orders` are placed before the bad deploy, and how many during it. */
export function drillSplit(orders: number): { goodCount: number; badCount: number } {
  const goodCount = Math.max(1, Math.floor(orders * 0.3));
  return { goodCount, badCount: orders - goodCount };
}

/**
 * The number of wrong charges the bad deploy makes in a drill of `orders` orders: the orders of
 * the second phase that go through (the mix is deterministic, see `orderSpec`). Each is one
 * effect to reverse and one to replay.
 */
export function expectedBadCharges(orders: number): number {
  const { goodCount } = drillSplit(orders);
  let n = 0;
  for (let i = goodCount; i < orders; i++) if (orderSpec(i).expected === 'confirmed') n++;
  return n;
}

/**
 * The drill's library logger: pino at `warn`, except that dead-letter records are counted (the
 * error-rate signal that shows the bad deploy) instead of printed one by one.
 */
export function countingLogger(write: (line: string) => void = (l) => process.stderr.write(l)): {
  logger: Logger;
  deadLetters: Map<string, number>;
} {
  const deadLetters = new Map<string, number>();
  // Dead letters (logged at error) are always counted; other records are printed from the
  // level BACKTRACK_LOG_LEVEL asks for (default warn; `silent` prints nothing).
  const wanted = process.env.BACKTRACK_LOG_LEVEL ?? 'warn';
  const threshold = wanted === 'silent' ? Infinity : (pino.levels.values[wanted] ?? 40);
  const logger = pino(
    { name: 'backtrack', level: threshold < 50 ? wanted : 'error' },
    {
      write(line: string) {
        const record = JSON.parse(line) as {
          level: number;
          msg?: string;
          consumer?: string;
          type?: string;
          schemaVersion?: number;
          disposition?: { code?: string };
        };
        if (record.msg === 'message dead-lettered') {
          // The pipeline's record names the consumer; the transport logs the same dead letter
          // again from its side, which is not counted twice.
          if (record.consumer === undefined) return;
          const key = `${record.consumer} ← ${record.type} v${record.schemaVersion}: ${record.disposition?.code}`;
          deadLetters.set(key, (deadLetters.get(key) ?? 0) + 1);
          return;
        }
        if (record.level >= threshold) write(line);
      },
    },
  );
  return { logger, deadLetters };
}

export async function runDrill(options: DrillOptions): Promise<DrillResult> {
  const drillStart = Date.now();
  const onPhase = options.onPhase ?? (() => undefined);
  const onProgress = options.onProgress ?? (() => undefined);
  const total = options.orders;
  const { goodCount, badCount } = drillSplit(total);
  const concurrency = options.concurrency ?? 64;
  const { logger, deadLetters } = countingLogger();
  const runtime = await createRuntime({
    transport: options.transport,
    prefix: options.prefix ?? `drill-${Date.now().toString(36)}`,
    logger,
    ...options.topology,
  });
  onPhase('starting');
  await options.otel?.monitor(runtime);
  const scrape = async () =>
    options.otel ? parsePrometheus(await options.otel.scrape()) : undefined;
  const shop = await startShop(runtime, {
    stockFor: total,
    replyTimeoutMs: options.replyTimeoutMs ?? (options.transport === 'memory' ? 5_000 : 30_000),
  });
  const startedShopAt = Date.now();
  try {
    // 1. Orders with the good payments.
    onPhase('placing orders (payments 1.0.0)', goodCount);
    const good = await placeOrders(shop.orders, {
      count: goodCount,
      concurrency,
      onOrder: (n) => onProgress(n, goodCount),
    });

    // 2. The bad deploy.
    const beforeBad = await scrape();
    await shop.redeployPayments({ bad: true });
    onPhase('placing orders (payments 1.1.0, bad)', badCount);
    const bad = await placeOrders(shop.orders, {
      start: goodCount,
      count: badCount,
      concurrency,
      onOrder: (n) => onProgress(n, badCount),
    });

    // 3. Detect. Messages still in flight (stock being marked sold) make orders look
    // inconsistent for a moment: check until two reports in a row agree.
    onPhase('detecting');
    const detectStart = Date.now();
    const pauseMs = runtime.transport === 'memory' ? 50 : 250;
    let detected = await checkConsistency(runtime.states);
    for (let i = 0; i < 40; i++) {
      await sleep(pauseMs);
      const again = await checkConsistency(runtime.states);
      const stable = again.inconsistent.length === detected.inconsistent.length;
      detected = again;
      if (stable) break;
    }
    const detectMs = Date.now() - detectStart;
    const afterBad = await scrape();
    const signals =
      options.otel && beforeBad && afterBad
        ? signalsBetween(options.otel.metricsUrl, beforeBad, afterBad)
        : undefined;

    // 4. Roll back: code first (payments back to 1.0.0), then the effects of 1.1.0. Planning
    // reads only the journal, so both plans are made while payments is redeployed; nothing is
    // published before the bad build is stopped and the good one started. The compensations
    // (to payments) and the replays (to inventory) touch different state, so both runs go at
    // once; each keeps its own order per key.
    onPhase('rolling back payments');
    const rollbackStart = Date.now();
    const mark = (): number => Date.now() - rollbackStart;
    const registry = currentRegistry();
    const planned = Promise.all([
      planRollback(
        { service: 'payments', version: PAYMENTS_BAD_VERSION, strategy: 'compensate' },
        {
          journal: runtime.journal,
          registry,
          compensations: paymentsCompensationsFor(runtime.topics),
        },
      ),
      planRollback(
        {
          service: 'payments',
          version: PAYMENTS_BAD_VERSION,
          strategy: 'replay',
          types: ['payment.charged'],
          targetVersions: { 'payment.charged': 1 },
        },
        { journal: runtime.journal, registry },
      ),
    ]).then((plans) => ({ plans, at: mark() }));
    const redeployed = shop
      .redeployPayments({ bad: false, version: PAYMENTS_GOOD_VERSION })
      .then(() => mark());
    const [transport, redeployedAt, { plans, at: plannedAt }] = await Promise.all([
      runtime.connect(),
      redeployed,
      planned,
    ]);
    const [compensatePlan, replayPlan] = plans;
    const deps = {
      journal: runtime.journal,
      transport,
      progressStore: runtime.progressStore,
      logger: runtime.logger,
    };
    const runOptions = {
      batchSize: options.rollback?.batchSize ?? DRILL_ROLLBACK_OPTIONS.batchSize,
      batchesInFlight: options.rollback?.batchesInFlight ?? DRILL_ROLLBACK_OPTIONS.batchesInFlight,
    };
    // What a run counts as finished: its items, its sagas, its skipped effects and its items for
    // a person (`runRollback`'s own progress total), not `items` alone: a plan with skipped
    // effects or sagas went past its total (57/56 with 60 orders).
    const totalItems = runItemCount(compensatePlan) + runItemCount(replayPlan);
    onPhase('compensating and replaying', totalItems);
    const finished = { compensate: 0, replay: 0 };
    const run = (kind: 'compensate' | 'replay', plan: RollbackPlan) =>
      runRollback(
        plan,
        {
          runId: `${runtime.prefix}:${kind}`,
          ...runOptions,
          onProgress: (e) => {
            finished[kind] = e.finished;
            onProgress(finished.compensate + finished.replay, totalItems);
          },
        },
        deps,
      );
    const [compensateRun, replayRun] = await Promise.all([
      run('compensate', compensatePlan),
      run('replay', replayPlan),
    ]);
    const rollbackRunMs = mark();

    // 5. Converge. While orders are still converging, only the orders found inconsistent are
    // read again (one pipelined read of their state, a MULTI of HMGETs on Redis), and those found
    // consistent are dropped from the next read; once none is left, the full check (every order,
    // and stock added up) is the verdict, and the loop goes on with full checks if it disagrees.
    onPhase('converging', total);
    const deadline = Date.now() + (options.convergeTimeoutMs ?? 300_000);
    const minPauseMs = runtime.transport === 'memory' ? 10 : 50;
    const checks = { partial: 0, full: 0, checkMs: 0 };
    const check = async (orderIds?: readonly string[]) => {
      const began = Date.now();
      const report = await checkConsistency(
        runtime.states,
        orderIds === undefined ? {} : { orderIds },
      );
      const took = Date.now() - began;
      checks.checkMs += took;
      if (orderIds === undefined) checks.full++;
      else checks.partial++;
      return { report, took };
    };
    const wrong = (r: ConsistencyReport) => r.inconsistent.map((v) => v.orderId);
    let pending = wrong(detected);
    let firstConsistentAt: number | undefined;
    const samples: [number, number][] = [[mark(), pending.length]];
    let final: ConsistencyReport | undefined;
    while (final === undefined) {
      let report: ConsistencyReport;
      let took: number;
      if (pending.length > 0) {
        // At most a chunk of the pending orders per read (each order agrees once both its refund
        // and its replay are applied, so no chunk is much earlier than another: compensations go
        // newest first, replays oldest first); a chunk that agrees is followed by the next at once.
        ({ report, took } = await check(pending.slice(0, CONVERGE_CHUNK)));
        pending = [...wrong(report), ...pending.slice(CONVERGE_CHUNK)];
        if (report.inconsistent.length > 0) samples.push([mark(), pending.length]);
        onProgress(total - pending.length, total);
        if (report.inconsistent.length === 0) continue;
      } else {
        // Every order that was wrong agrees again (those a person must handle are left to the
        // full check, which reports them): the full check decides.
        firstConsistentAt ??= mark();
        ({ report, took } = await check());
        onProgress(report.consistent, report.orders);
        // Only orders that a person must handle can stop convergence for good.
        if (report.ok || (report.inconsistent.length === 0 && report.stockProblems.length === 0)) {
          final = report;
          break;
        }
        pending = wrong(report);
      }
      if (Date.now() >= deadline) {
        final = report.partial ? (await check()).report : report;
        break;
      }
      // The checker shares the process (and the CPU) with the four services: it waits at least
      // twice as long as its last read took, so it never takes more than a third of the time.
      await sleep(Math.max(minPauseMs, 2 * took));
    }
    const timeToConsistencyMs = mark();
    const breakdown: DrillBreakdown = {
      startMs: startedShopAt - drillStart,
      placeGoodMs: good.durationMs,
      placeBadMs: bad.durationMs,
      detectMs,
      redeployMs: redeployedAt,
      planMs: plannedAt,
      rollbackRunMs,
      ordersConsistentMs: firstConsistentAt ?? timeToConsistencyMs,
      timeToConsistencyMs,
      checks,
      pending: samples,
    };
    const runs = { compensate: compensateRun, replay: replayRun };
    return {
      transport: options.transport,
      orders: total,
      load: { good, bad },
      detected,
      deadLetters: Object.fromEntries(deadLetters),
      ...(signals ? { signals } : {}),
      plans: { compensate: compensatePlan.counts, replay: replayPlan.counts },
      runs,
      reversed: compensateRun.summary.reversed,
      replayed: replayRun.summary.replayed,
      skipped: compensateRun.summary.skipped + replayRun.summary.skipped,
      failed: compensateRun.summary.failed + replayRun.summary.failed,
      needsPerson: {
        rollbackItems: compensateRun.summary.needsPerson + replayRun.summary.needsPerson,
        orders: final.needsPerson.map((v) => v.orderId),
      },
      converged: final.ok,
      timeToConsistencyMs,
      rollbackRunMs,
      breakdown,
      final,
    };
  } finally {
    await shop.stop();
    if (!options.keep) {
      await runtime.destroy().catch((err: unknown) => logger.warn({ err }, 'cleanup failed'));
    }
    await runtime.close();
  }
}
