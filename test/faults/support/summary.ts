/**
 * The fault suite's summary: one row per scenario (and transport), printed as a table when the
 * suite ends, and written to .cache/test-results/faults-summary.json for CI artefacts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './child.js';

export interface SummaryRow {
  scenario: string;
  /** Messages published (or sagas started, or compensations planned). */
  sent: number;
  /** Deliveries/calls that reached the code under test (duplicates included). */
  processed: number;
  /** Effects in the external ledger. */
  applied: number;
  /** Repeats the dedupe/idempotency key absorbed (processed again, no second effect). */
  duplicates: number;
  /** Expected effects missing from the ledger at the end. */
  lost: number;
  /** Ledger entries with more than one effect. */
  appliedTwice: number;
  /**
   * Consumers that stopped taking messages for good (0 expected); '-' for a scenario that runs no
   * consumer.
   */
  consumersLeftDead: number | '-';
  /** What the scenario did to the system (kills, restarts), for the reader. */
  faults: string;
}

/**
 * Consumers left dead, for scenarios without a liveness probe of their own: a consumer that never
 * applied a message it was due by the end (the scenario waits for every one) has stopped taking
 * messages. Give one count of missed messages per consumer (or one for a group sharing a stream).
 */
export function deadConsumers(missedPerConsumer: readonly number[]): number {
  return missedPerConsumer.filter((n) => n > 0).length;
}

const rows: SummaryRow[] = [];

export function recordRow(row: SummaryRow): void {
  rows.push(row);
}

export function summaryRows(): readonly SummaryRow[] {
  return rows;
}

export function formatTable(items: readonly SummaryRow[]): string {
  const header = [
    'scenario',
    'sent',
    'processed',
    'applied',
    'dup absorbed',
    'lost',
    'applied 2x',
    'consumers left dead',
    'faults injected',
  ];
  const body = items.map((r) => [
    r.scenario,
    String(r.sent),
    String(r.processed),
    String(r.applied),
    String(r.duplicates),
    String(r.lost),
    String(r.appliedTwice),
    String(r.consumersLeftDead),
    r.faults,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) =>
        i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!),
      )
      .join(' | ');
  const sep = widths.map((w) => '-'.repeat(w)).join('-+-');
  return [line(header), sep, ...body.map(line)].join('\n');
}

export function printSummary(): void {
  const table = formatTable(rows);
  // The table is the suite's deliverable: print it even under a silent reporter.
  process.stdout.write(`\n== Fault suite summary ==\n${table}\n\n`);
  try {
    const dir = join(ROOT, '.cache', 'test-results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'faults-summary.json'), JSON.stringify(rows, null, 2));
  } catch {
    // The artefact is a convenience; the printed table and the assertions are what count.
  }
}
