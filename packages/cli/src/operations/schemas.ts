/**
 * The schema compatibility check shared by `backtrack schemas check` and the web console: the
 * config's registry against the committed snapshot, through core's checkCompatibility.
 */
import { readFile } from 'node:fs/promises';
import {
  checkCompatibility,
  loadSnapshot,
  type CompatibilityLevel,
  type CompatibilityReport,
} from '@backtrack/core';
import { requireRegistry } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';

export const DEFAULT_SNAPSHOT = 'backtrack.schemas.json';

export interface CheckOptions {
  snapshot?: string;
  required: CompatibilityLevel;
  transitive?: boolean;
}

export async function checkSchemas(
  ctx: CliContext,
  options: CheckOptions,
): Promise<{ file: string; report: CompatibilityReport }> {
  const registry = requireRegistry(ctx.config);
  const file = options.snapshot ?? ctx.config.schemaSnapshot ?? DEFAULT_SNAPSHOT;
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch {
    throw new CliError(
      `cannot read snapshot ${file}`,
      EXIT.Usage,
      undefined,
      `create one with \`backtrack schemas snapshot --out ${file}\``,
    );
  }
  const report = checkCompatibility(loadSnapshot(raw), registry, {
    required: options.required,
    transitive: options.transitive ?? false,
  });
  return { file, report };
}
