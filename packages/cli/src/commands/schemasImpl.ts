import { writeFile } from 'node:fs/promises';
import {
  formatProblems,
  serializeSnapshot,
  snapshotRegistry,
  type CompatibilityLevel,
} from '@backtrack/core';
import { requireRegistry } from '../config.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../errors.js';
import { checkSchemas, DEFAULT_SNAPSHOT } from '../operations/schemas.js';
import { table, type Output } from '../output.js';

/** Loaded on demand by `schemas check|snapshot` (keeps the CLI's start-up light). */
export { DEFAULT_SNAPSHOT };

export async function check(
  ctx: CliContext,
  out: Output,
  flags: { snapshot?: string; required: CompatibilityLevel; transitive?: boolean },
): Promise<number> {
  const { report } = await checkSchemas(ctx, flags);
  out.result(report, () => {
    const lines = [
      table(
        ['type', 'status', 'level', 'required', 'ok', 'versions'],
        report.events.map((e) => [
          e.type,
          e.status,
          e.level,
          e.required,
          e.ok ? 'yes' : 'NO',
          `${e.previousVersions.join(',') || '-'} -> ${e.nextVersions.join(',') || '-'}`,
        ]),
      ),
    ];
    for (const e of report.events.filter((x) => !x.ok)) {
      lines.push('', `${e.type}: ${e.level}, required ${e.required}`);
      lines.push(...formatProblems(e.problems).map((line) => `  ${line}`));
    }
    for (const e of report.events.filter((x) => x.warnings.length > 0)) {
      lines.push('', `${e.type}: warnings (not counted in the verdict)`);
      for (const w of e.warnings) lines.push(`  - ${w.path}: ${w.message}`);
    }
    lines.push('', report.ok ? 'Compatible.' : 'INCOMPATIBLE: see the problems above.');
    return lines.join('\n');
  });
  return report.ok ? EXIT.Ok : EXIT.Incompatible;
}

export async function snapshot(
  ctx: CliContext,
  out: Output,
  flags: { out?: string; label?: string },
): Promise<void> {
  const snap = snapshotRegistry(
    requireRegistry(ctx.config),
    flags.label ? { label: flags.label } : {},
  );
  const file = flags.out ?? ctx.config.schemaSnapshot ?? DEFAULT_SNAPSHOT;
  await writeFile(file, serializeSnapshot(snap));
  out.result(
    { file, types: Object.keys(snap.events) },
    () => `Snapshot of ${Object.keys(snap.events).length} event types written to ${file}.`,
  );
}
