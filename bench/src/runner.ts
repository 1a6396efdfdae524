/**
 * The benchmark runner: options, the per-run recorder, statistics, the table and the JSON file.
 */
import { stats, type Stats } from './common.js';

/** Command-line options, resolved. */
export interface BenchOptions {
  /** Smoke mode: tiny sizes, one run. */
  quick: boolean;
  /** Runs per benchmark (each run measures its baseline and Backtrack side by side). */
  runs: number;
  /** Messages per consume run (Kafka, RabbitMQ). */
  messages: number;
  /** Messages per publish run (Kafka, RabbitMQ). */
  publish: number;
  /** Publishes in flight at once in the publish benchmarks. */
  concurrency: number;
  /** RabbitMQ prefetch of both consumers. */
  prefetch: number;
  /** Sagas per run, in-memory store. */
  sagas: number;
  /** Sagas per run, Redis store. */
  redisSagas: number;
  /** Sagas driven at once. */
  sagaConcurrency: number;
  /** saga-retention: finished sagas written per side. */
  retentionSagas: number;
  /** Dedupe claims per run. */
  claims: number;
  /** Keys per batched claim / pipeline. */
  batch: number;
  /** Journaled effects a rollback reverses per run. */
  effects: number;
  /** e2e: orders per load-driver run. */
  orders: number;
  /** e2e: sagas placed at once by the load driver and the drill. */
  orderConcurrency: number;
  /**
   * e2e: orders each load-driver and hand-written run places first, unmeasured, before a second
   * (warm) run of `orders` is measured (0: cold runs only).
   */
  e2eWarmup: number;
  /** e2e: orders of the rollback drill on each broker (0: no drill). */
  drillOrders: number;
  /** e2e: partitions per topic (Kafka, memory). */
  e2ePartitions: number;
  /** e2e: consumers per service in its group. */
  e2eConsumers: number;
  /** Only these benchmark ids (all when empty). */
  only: string[];
  /** kafka-consume: only these sides (all when empty), for profiling one side. */
  sides: string[];
  /** Where the JSON goes. */
  out: string;
}

/** Sizes of a full run. */
export type Sizes = Omit<BenchOptions, 'quick' | 'only' | 'sides' | 'out'>;

export const FULL_DEFAULTS: Readonly<Sizes> = {
  runs: 5,
  messages: 50_000,
  publish: 2_000,
  concurrency: 16,
  prefetch: 50,
  sagas: 20_000,
  redisSagas: 2_000,
  sagaConcurrency: 64,
  retentionSagas: 100_000,
  claims: 20_000,
  batch: 100,
  effects: 5_000,
  orders: 2_000,
  orderConcurrency: 256,
  e2eWarmup: 2_000,
  drillOrders: 0,
  e2ePartitions: 8,
  e2eConsumers: 1,
};

export const QUICK_DEFAULTS: Readonly<Sizes> = {
  runs: 1,
  messages: 300,
  publish: 100,
  concurrency: 16,
  prefetch: 50,
  sagas: 300,
  redisSagas: 50,
  sagaConcurrency: 16,
  retentionSagas: 200,
  claims: 300,
  batch: 50,
  effects: 100,
  orders: 40,
  orderConcurrency: 16,
  e2eWarmup: 10,
  drillOrders: 0,
  e2ePartitions: 8,
  e2eConsumers: 1,
};

export type Role = 'baseline' | 'backtrack' | 'info';

interface MetricSpec {
  label: string;
  role: Role;
  unit: string;
  /** An absolute target from the issue (for example 50k transitions/s). */
  target?: number;
  /** `min`: the median must be at least the target; `max`: at most. @default 'min' */
  direction?: 'min' | 'max';
}

interface RatioSpec {
  label: string;
  numerator: string;
  denominator: string;
  /** The issue's target; undefined when the issue only asks to report it. */
  target?: number;
  /** `min`: the ratio must be at least the target; `max`: at most. @default 'min' */
  direction?: 'min' | 'max';
}

export interface MetricResult extends Stats {
  key: string;
  label: string;
  role: Role;
  unit: string;
  target: number | null;
  direction: 'min' | 'max';
  /** Whether the median meets the target (null without a target). */
  met: boolean | null;
}

export interface RatioResult extends Stats {
  key: string;
  label: string;
  target: number | null;
  direction: 'min' | 'max';
  /** Whether the median meets the target (null without a target). */
  met: boolean | null;
}

export interface BenchmarkResult {
  id: string;
  title: string;
  params: Record<string, string | number | boolean>;
  metrics: MetricResult[];
  ratios: RatioResult[];
  notes: string[];
  durationS: number;
}

/** Collects one benchmark's samples, run by run. */
export class Recorder {
  readonly #metrics = new Map<string, MetricSpec & { samples: number[] }>();
  readonly #ratios = new Map<string, RatioSpec>();
  readonly params: Record<string, string | number | boolean> = {};
  readonly notes: string[] = [];

  constructor(
    readonly id: string,
    readonly title: string,
    readonly log: (message: string) => void,
  ) {}

  metric(key: string, spec: MetricSpec): this {
    this.#metrics.set(key, { ...spec, samples: [] });
    return this;
  }

  ratio(key: string, spec: RatioSpec): this {
    this.#ratios.set(key, spec);
    return this;
  }

  record(key: string, value: number): void {
    const metric = this.#metrics.get(key);
    if (!metric) throw new Error(`benchmark ${this.id}: unknown metric ${key}`);
    metric.samples.push(value);
    this.log(`  ${metric.label}: ${format(value)} ${metric.unit}`);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  result(durationS: number): BenchmarkResult {
    const metrics: MetricResult[] = [...this.#metrics].map(([key, m]) => {
      const s = stats(m.samples);
      const direction = m.direction ?? 'min';
      return {
        key,
        label: m.label,
        role: m.role,
        unit: m.unit,
        target: m.target ?? null,
        direction,
        met: meets(s.median, m.target, direction),
        ...s,
      };
    });
    const ratios: RatioResult[] = [...this.#ratios].map(([key, r]) => {
      const num = this.#metrics.get(r.numerator)?.samples ?? [];
      const den = this.#metrics.get(r.denominator)?.samples ?? [];
      // Ratios are taken run by run (both sides measured in the same run), then summarised.
      const perRun = num.slice(0, den.length).map((n, i) => n / den[i]!);
      const s = stats(perRun);
      const direction = r.direction ?? 'min';
      return {
        key,
        label: r.label,
        target: r.target ?? null,
        direction,
        met: meets(s.median, r.target, direction),
        ...s,
      };
    });
    return {
      id: this.id,
      title: this.title,
      params: this.params,
      metrics,
      ratios,
      notes: this.notes,
      durationS,
    };
  }
}

function meets(
  value: number,
  target: number | undefined,
  direction: 'min' | 'max',
): boolean | null {
  if (target === undefined) return null;
  return direction === 'min' ? value >= target : value <= target;
}

function targetText(t: { target: number | null; direction: 'min' | 'max'; met: boolean | null }) {
  if (t.target === null) return '';
  return `${t.direction === 'min' ? '>=' : '<='} ${format(t.target)} ${t.met ? 'met' : 'MISSED'}`;
}

/** A benchmark: sets itself up, runs `options.runs` runs recording into `rec`, cleans up. */
export interface Benchmark {
  id: string;
  title: string;
  run(options: BenchOptions, rec: Recorder): Promise<void>;
}

/** Formats a number with 3 significant digits (thousands separated). */
export function format(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

/** The results as a plain-text table (also valid Markdown). */
export function table(results: readonly BenchmarkResult[]): string {
  const rows: string[][] = [['benchmark', 'measure', 'median', 'min', 'max', 'unit', 'target']];
  for (const b of results) {
    let first = true;
    for (const m of b.metrics) {
      rows.push([
        first ? b.id : '',
        `${m.role === 'baseline' ? '[raw] ' : m.role === 'backtrack' ? '[bt] ' : ''}${m.label}`,
        format(m.median),
        format(m.min),
        format(m.max),
        m.unit,
        targetText(m),
      ]);
      first = false;
    }
    for (const r of b.ratios) {
      rows.push([
        first ? b.id : '',
        `ratio: ${r.label}`,
        format(r.median),
        format(r.min),
        format(r.max),
        '',
        targetText(r),
      ]);
      first = false;
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    `| ${r.map((cell, c) => (c >= 2 && c <= 4 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, c) => (c >= 2 && c <= 4 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}
