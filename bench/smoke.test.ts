/**
 * Keeps the benchmarks working: runs `npm run bench -- --quick` against the real services and
 * checks the JSON report lists every benchmark with finite numbers. It asserts no timing at all:
 * benchmarks are measured by `npm run bench`, never by the test suite.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { probeService } from '../test/support/services.js';
import type { BenchReport } from './src/main.js';

const [redis, rabbit, kafka] = await Promise.all([
  probeService('redis'),
  probeService('rabbitmq'),
  probeService('kafka'),
]);
const ready = redis.available && rabbit.available && kafka.available;

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'backtrack-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EXPECTED = [
  'kafka-consume',
  'kafka-publish',
  'rabbitmq-consume',
  'rabbitmq-publish',
  'saga-engine',
  'dedupe-claims',
  'rollback',
  'e2e',
  'telemetry',
  'saga-retention',
];

describe.skipIf(!ready)('npm run bench -- --quick', () => {
  it(
    'runs every benchmark once and writes a report with finite numbers',
    { timeout: 420_000 },
    async () => {
      const out = join(dir, 'quick.json');
      const { stdout } = await promisify(execFile)(
        'npm',
        ['run', '-s', 'bench', '--', '--quick', '--out', out],
        {
          cwd: root,
          env: {
            ...process.env,
            REDIS_URL: redis.url,
            AMQP_URL: rabbit.url,
            KAFKA_BROKERS: kafka.url,
          },
          maxBuffer: 16 * 1024 * 1024,
        },
      );
      expect(stdout).toContain('| benchmark');

      const report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
      expect(report.failures).toEqual([]);
      expect(report.quick).toBe(true);
      expect(report.benchmarks.map((b) => b.id)).toEqual(EXPECTED);
      expect(report.machine.cpus).toBeGreaterThan(0);
      expect(report.machine.node).toBe(process.version);
      expect(report.machine.kafka.version).toMatch(/^\d+\.\d+/);
      expect(report.machine.rabbitmq).toHaveProperty('version');
      expect(report.machine.redis).toHaveProperty('redis_version');
      for (const b of report.benchmarks) {
        expect(b.metrics.length, b.id).toBeGreaterThan(0);
        expect(
          b.metrics.some((m) => m.role === 'baseline'),
          `${b.id} has a baseline`,
        ).toBe(true);
        for (const m of b.metrics) {
          expect(m.samples, `${b.id}/${m.key}`).toHaveLength(1);
          for (const v of [m.median, m.min, m.max, ...m.samples]) {
            expect(Number.isFinite(v), `${b.id}/${m.key} = ${v}`).toBe(true);
          }
        }
        for (const r of b.ratios) {
          expect(Number.isFinite(r.median), `${b.id}/${r.key} = ${r.median}`).toBe(true);
          expect(r.met === null || typeof r.met === 'boolean').toBe(true);
        }
      }
    },
  );
});
