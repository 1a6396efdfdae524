/**
 * `npm run drill -- --transport kafka --orders 10000`
 *
 * Runs the rollback drill (see drill.ts) with a progress display and prints the report.
 * Exits 0 when the system converged, 1 when it did not, 2 on a bad argument.
 */
import cliProgress from 'cli-progress';
import { ConfigError, readConfig, topologyOf } from '../../order-saga/src/config.js';
import { formatReport } from '../../order-saga/src/checker.js';
import { color } from '../../order-saga/src/story.js';
import { startOtel, type Otel } from '../../order-saga/src/infra/otel.js';
import { runDrill, type DrillPhase, type DrillResult } from './drill.js';

let config;
try {
  config = readConfig(
    process.argv.slice(2),
    { orders: 1_000, concurrency: 64 },
    {
      json: { type: 'boolean' },
      keep: { type: 'boolean' },
      'batch-size': { type: 'string' },
      'batches-in-flight': { type: 'string' },
    },
  );
  for (const flag of ['batch-size', 'batches-in-flight']) {
    const v = config.flags[flag];
    if (v !== undefined && !(Number.isInteger(Number(v)) && Number(v) > 0))
      throw new ConfigError(`--${flag} must be a positive integer, got ${String(v)}`);
  }
} catch (error) {
  if (
    error instanceof ConfigError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
  ) {
    console.error(`drill: ${(error as Error).message}`);
    console.error(
      'usage: npm run drill -- [--transport memory|kafka|rabbitmq] [--orders N] [--concurrency N] [--partitions N] [--consumers K] [--prefetch N] [--linger-ms MS] [--batch-size N] [--batches-in-flight N] [--prefix NAME] [--keep] [--json] [--otel] [--metrics-port PORT]',
    );
    process.exit(2);
  }
  throw error;
}

const json = config.flags.json === true;
const interactive = process.stderr.isTTY === true && !json;
const log = (line: string) => {
  if (!json) console.log(line);
};

log(color.bold(`Rollback drill: ${config.orders} orders on ${config.transport}`));
const bar = new cliProgress.SingleBar(
  {
    format: `  {phase} ${color.cyan('{bar}')} {value}/{total}  {duration_formatted}`,
    barsize: 30,
    hideCursor: true,
    clearOnComplete: false,
    noTTYOutput: false,
    stream: process.stderr,
  },
  cliProgress.Presets.shades_classic,
);
let phase: DrillPhase | undefined;
let phaseStart = Date.now();
let barOn = false;
let lastTenth = -1;
const endPhase = () => {
  if (barOn) bar.stop();
  barOn = false;
  if (phase)
    log(
      `  ${color.green('✓')} ${phase} ${color.dim(`(${((Date.now() - phaseStart) / 1000).toFixed(1)} s)`)}`,
    );
};

const drillStart = Date.now();
let result: DrillResult;
let otel: Otel | undefined;
try {
  if (config.otel) otel = await startOtel({ metricsPort: config.metricsPort });
  result = await runDrill({
    otel,
    transport: config.transport,
    orders: config.orders,
    concurrency: config.concurrency,
    topology: topologyOf(config),
    keep: config.flags.keep === true,
    rollback: {
      ...(config.flags['batch-size'] ? { batchSize: Number(config.flags['batch-size']) } : {}),
      ...(config.flags['batches-in-flight']
        ? { batchesInFlight: Number(config.flags['batches-in-flight']) }
        : {}),
    },
    prefix: `${config.prefix}-drill-${Date.now().toString(36)}`,
    onPhase: (next, total) => {
      endPhase();
      phase = next;
      phaseStart = Date.now();
      lastTenth = -1;
      if (total !== undefined && interactive) {
        bar.start(total, 0, { phase: next.padEnd(38) });
        barOn = true;
      }
    },
    onProgress: (done, total) => {
      if (!barOn) {
        // Without a terminal (CI logs, files): a line per tenth instead of a bar.
        const step = Math.max(1, Math.ceil(total / 10));
        if (!json && total >= 100 && done > 0 && (done % step === 0 || done === total)) {
          const tenth = Math.floor((done * 10) / total);
          if (tenth !== lastTenth) log(color.dim(`    ${done}/${total}`));
          lastTenth = tenth;
        }
        return;
      }
      bar.setTotal(total);
      bar.update(done);
    },
  });
  endPhase();
} catch (error) {
  if (barOn) bar.stop();
  console.error(`drill failed: ${(error as Error).stack ?? String(error)}`);
  await otel?.shutdown();
  process.exit(1);
}
await otel?.shutdown();
const totalMs = Date.now() - drillStart;

if (json) {
  console.log(JSON.stringify(summarize(result, totalMs), null, 2));
} else {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const d = result.detected;
  log('');
  log(color.bold('What the bad deploy did'));
  log(
    `  orders placed: ${result.load.good.placed} with payments 1.0.0, ${result.load.bad.placed} with payments 1.1.0`,
  );
  const signals = result.signals;
  if (signals) {
    // The alerting signals, read from the Prometheus endpoint as a dashboard would.
    log(`  from the metrics (${signals.metricsUrl}):`);
    log(
      `    dead-letter rate during payments 1.1.0: ${(signals.deadLetterRate * 100).toFixed(1)} % (${signals.deadLetters} of ${signals.messages} messages)`,
    );
    for (const [what, n] of Object.entries(signals.deadLettersBy))
      log(`    dead letters: ${n} × ${what}`);
    log(
      `    stuck sagas (gauge): ${signals.stuckSagas}; sagas ended: ${Object.entries(
        signals.sagasEnded,
      )
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}; journal pending: ${signals.journalPending}`,
    );
  } else {
    for (const [what, n] of Object.entries(result.deadLetters))
      log(`  dead letters: ${n} × ${what}`);
  }
  log(`  checker after the deploy: ${d.inconsistent.length} of ${d.orders} orders inconsistent`);
  const example = d.inconsistent[0];
  if (example) log(color.dim(`    e.g. ${example.orderId}: ${example.problems.join('; ')}`));
  log('');
  log(color.bold('Rollback of payments 1.1.0'));
  log(`  effects reversed (compensated): ${result.reversed}`);
  log(`  effects replayed (downcast to v1): ${result.replayed}`);
  log(`  effects with nothing to undo:   ${result.skipped}`);
  log(`  failed:                         ${result.failed}`);
  log(
    `  needing a person:               ${result.needsPerson.rollbackItems} rollback items, ${result.needsPerson.orders.length} orders${result.needsPerson.orders.length ? ` (${result.needsPerson.orders.slice(0, 10).join(', ')})` : ''}`,
  );
  const b = result.breakdown;
  log(
    `  rollback run (redeploy, plan, publish): ${s(result.rollbackRunMs)} (payments redeployed at ${s(b.redeployMs)}, planned at ${s(b.planMs)})`,
  );
  log(
    `  orders that were wrong all agree at ${s(b.ordersConsistentMs)}; checks while converging: ${b.checks.partial} pipelined, ${b.checks.full} full, ${s(b.checks.checkMs)} reading`,
  );
  log('');
  log(
    color.bold(
      result.converged
        ? `Time from rollback start to consistency: ${s(result.timeToConsistencyMs)}`
        : `NOT converged after ${s(result.timeToConsistencyMs)}`,
    ),
  );
  log(`  ${formatReport(result.final)}`);
  log(color.dim(`  whole drill: ${s(totalMs)}`));
}
process.exitCode = result.converged ? 0 : 1;

function summarize(r: DrillResult, totalMs: number) {
  return {
    transport: r.transport,
    orders: r.orders,
    placed: { good: r.load.good.placed, bad: r.load.bad.placed },
    loadMs: { good: r.load.good.durationMs, bad: r.load.bad.durationMs },
    detectedInconsistent: r.detected.inconsistent.length,
    deadLetters: r.deadLetters,
    ...(r.signals ? { signals: r.signals } : {}),
    reversed: r.reversed,
    replayed: r.replayed,
    skipped: r.skipped,
    failed: r.failed,
    needsPerson: r.needsPerson,
    rollbackRunMs: r.rollbackRunMs,
    timeToConsistencyMs: r.timeToConsistencyMs,
    totalMs,
    breakdown: r.breakdown,
    converged: r.converged,
    final: { orders: r.final.orders, consistent: r.final.consistent, byStatus: r.final.byStatus },
  };
}
