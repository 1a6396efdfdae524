import { z } from 'zod';
import type { AnyEventDefinition } from './EventRegistry.js';
import { EventRegistry } from './EventRegistry.js';
import { SchemaIncompatibleError, SchemaSnapshotError } from './errors.js';
import {
  readerAcceptsWriter,
  refinementPaths,
  REFINEMENTS_KEYWORD,
  stableStringify,
  UNREPRESENTABLE_KEYWORD,
  type JsonSchema,
  type Roles,
  type SchemaProblem,
} from './jsonSchemaCompat.js';

/**
 * Compatibility levels, in the sense of the Confluent Schema Registry modes:
 * - `BACKWARD`: consumers on the new definitions can read every event written with the old
 *   ones (upgrade consumers first);
 * - `FORWARD`: consumers on the old definitions can read events written with the new ones
 *   (after downcasting to their version; upgrade producers first, or roll consumers back);
 * - `FULL`: both;
 * - `NONE`: neither.
 */
export const COMPATIBILITY = {
  BACKWARD: 'BACKWARD',
  FORWARD: 'FORWARD',
  FULL: 'FULL',
  NONE: 'NONE',
} as const;
/** One of {@link COMPATIBILITY}. */
export type CompatibilityLevel = (typeof COMPATIBILITY)[keyof typeof COMPATIBILITY];

/** One version of an event type in a snapshot. */
export interface VersionSnapshot {
  /** JSON Schema of what the version accepts (zod input, `z.toJSONSchema(schema, { io: 'input' })`). */
  input: JsonSchema;
  /** JSON Schema of what the version produces after parsing (zod output). */
  output: JsonSchema;
  /** Whether the version has an `up` transform from the version before it. */
  up: boolean;
  /** Whether the version has a `down` transform to the version before it. */
  down: boolean;
}

/** A registry as JSON: event types, their versions, JSON Schemas and transform flags. */
export interface RegistrySnapshot {
  format: 'backtrack.registry';
  formatVersion: 1;
  /** RFC 3339, when the snapshot was taken. */
  createdAt?: string;
  /** Free label, for example the release version. */
  label?: string;
  events: Record<string, { versions: Record<string, VersionSnapshot> }>;
}

const JSON_SCHEMA = z.union([z.boolean(), z.record(z.string(), z.unknown())]);
const SNAPSHOT_SCHEMA = z.object({
  format: z.literal('backtrack.registry'),
  formatVersion: z.literal(1),
  createdAt: z.string().optional(),
  label: z.string().optional(),
  events: z.record(
    z.string().min(1),
    z.object({
      versions: z.record(
        z.string().regex(/^[1-9][0-9]*$/, 'version keys are positive integers'),
        z.object({ input: JSON_SCHEMA, output: JSON_SCHEMA, up: z.boolean(), down: z.boolean() }),
      ),
    }),
  ),
});

/**
 * Takes a JSON-serialisable snapshot of a registry (JSON Schema of each version from
 * `z.toJSONSchema`). What JSON Schema cannot express (`z.bigint()`, `z.date()`, a transform's
 * output, `z.custom()`) is marked `x-backtrack-unrepresentable` with its zod type, and is
 * compatible only with the same type; refinements (`.refine`, `.superRefine`, `.check`) are
 * counted in `x-backtrack-refinements`, so a version that adds one gets a warning.
 */
export function snapshotRegistry(
  registry: EventRegistry,
  options: { label?: string; now?: () => Date } = {},
): RegistrySnapshot {
  const events: RegistrySnapshot['events'] = {};
  for (const definition of registry.definitions())
    events[definition.type] = { versions: snapshotVersions(definition) };
  return {
    format: 'backtrack.registry',
    formatVersion: 1,
    createdAt: (options.now?.() ?? new Date()).toISOString(),
    ...(options.label === undefined ? {} : { label: options.label }),
    events,
  };
}

function snapshotVersions(definition: AnyEventDefinition): Record<string, VersionSnapshot> {
  const versions: Record<string, VersionSnapshot> = {};
  for (const version of definition.versions) {
    const schema = definition.schema(version) as z.ZodType;
    const toJson = (io: 'input' | 'output') => {
      const { $schema: _ignored, ...json } = z.toJSONSchema(schema, {
        io,
        unrepresentable: 'any',
        cycles: 'ref',
        reused: 'inline',
        override: markOpaque,
      }) as Record<string, unknown>;
      return json;
    };
    versions[String(version)] = {
      input: toJson('input'),
      output: toJson('output'),
      ...definition.transformsOf(version),
    };
  }
  return versions;
}

/** zod types whose JSON Schema is legitimately `{}`: they do accept anything. */
const ACCEPTS_ANYTHING = new Set(['any', 'unknown']);

function markOpaque(ctx: {
  zodSchema: { _zod: { def: { type: string; checks?: { _zod: { def: { check: string } } }[] } } };
  jsonSchema: Record<string, unknown>;
}): void {
  const def = ctx.zodSchema._zod.def;
  const refinements = (def.checks ?? []).filter((c) => c._zod.def.check === 'custom').length;
  if (refinements > 0) ctx.jsonSchema[REFINEMENTS_KEYWORD] = refinements;
  const constraints = Object.keys(ctx.jsonSchema).filter((k) => k !== REFINEMENTS_KEYWORD);
  if (constraints.length === 0 && !ACCEPTS_ANYTHING.has(def.type)) {
    ctx.jsonSchema[UNREPRESENTABLE_KEYWORD] = def.type;
  }
}

/** Serialises a snapshot as stable, pretty JSON (sorted keys: diffs stay small). */
export function serializeSnapshot(snapshot: RegistrySnapshot): string {
  return `${JSON.stringify(JSON.parse(stableStringify(snapshot)), null, 2)}\n`;
}

/**
 * Reads a snapshot from its JSON text (or an already parsed value).
 * @throws {SchemaSnapshotError} when it is not JSON or not a Backtrack registry snapshot.
 */
export function loadSnapshot(json: string | unknown): RegistrySnapshot {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (cause) {
      throw new SchemaSnapshotError(
        `registry snapshot is not valid JSON: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
  const result = SNAPSHOT_SCHEMA.safeParse(value);
  if (!result.success) {
    throw new SchemaSnapshotError(
      `not a Backtrack registry snapshot: ${z.prettifyError(result.error)}`,
      {
        cause: result.error,
        details: { issues: result.error.issues },
      },
    );
  }
  for (const [type, { versions }] of Object.entries(result.data.events)) {
    const numbers = Object.keys(versions)
      .map(Number)
      .sort((a, b) => a - b);
    if (numbers.length === 0 || numbers.some((n, i) => i > 0 && n !== numbers[i - 1]! + 1)) {
      throw new SchemaSnapshotError(
        `snapshot event type "${type}" has no versions or a gap between versions`,
        {
          details: { type, versions: numbers },
        },
      );
    }
  }
  return result.data as RegistrySnapshot;
}

/** One reason a change is not backward or not forward compatible. */
export interface CompatibilityProblem extends SchemaProblem {
  direction: 'backward' | 'forward';
  /**
   * What change the problem belongs to, shared by the problems of one change, for example
   * `published v1 changed` or `v1→v2 has no "up" transform`.
   */
  context: string;
  /** The version (or the new version of a step `from → to`) the problem is about. */
  version?: number;
  from?: number;
  to?: number;
}

/** The verdict for one event type. */
export interface EventCompatibility {
  type: string;
  status: 'added' | 'removed' | 'unchanged' | 'changed';
  /** What the change achieves. */
  level: CompatibilityLevel;
  /** What was required. */
  required: CompatibilityLevel;
  ok: boolean;
  previousVersions: number[];
  nextVersions: number[];
  problems: CompatibilityProblem[];
  /** What the check cannot verify but a person should (they do not change `level` or `ok`). */
  warnings: CompatibilityWarning[];
}

/** Something the check cannot see, for example a refinement (`.refine`) a new version adds. */
export interface CompatibilityWarning {
  version: number;
  path: string;
  message: string;
}

/** The result of {@link checkCompatibility}. */
export interface CompatibilityReport {
  ok: boolean;
  events: EventCompatibility[];
}

/** Options of {@link checkCompatibility}. */
export interface CompatibilityOptions {
  /**
   * The level each event type must reach: one for all, or per type (types not listed: `BACKWARD`).
   * @default 'BACKWARD' (the Confluent default)
   */
  required?: CompatibilityLevel | Record<string, CompatibilityLevel>;
  /**
   * Check every step of each type's chain, not only the new ones (Confluent's `*_TRANSITIVE`).
   * @default false
   */
  transitive?: boolean;
}

type Side = EventRegistry | RegistrySnapshot;

/**
 * Compares the event types of a previous release (usually a saved snapshot) with the next one
 * (usually the live registry) and gives a verdict per type. A step between two versions is
 * backward compatible when it has an `up` transform or the new version's schema accepts every
 * value of the old one unchanged (JSON Schema comparison), and forward compatible when it has a
 * `down` transform or the old schema accepts every value of the new one. Published versions
 * must not change incompatibly, and removing a version breaks backward compatibility (events of
 * that version may still be in topics, journals and dead-letter queues).
 *
 * @example
 * const report = checkCompatibility(loadSnapshot(readFileSync('schemas.json', 'utf8')), registry);
 */
export function checkCompatibility(
  previous: Side,
  next: Side,
  options: CompatibilityOptions = {},
): CompatibilityReport {
  const before = toSnapshot(previous);
  const after = toSnapshot(next);
  const types = [...new Set([...Object.keys(before.events), ...Object.keys(after.events)])].sort();
  const events = types.map((type) =>
    checkType(
      type,
      before.events[type]?.versions,
      after.events[type]?.versions,
      requiredFor(type, options.required),
      options.transitive ?? false,
    ),
  );
  return { ok: events.every((event) => event.ok), events };
}

/**
 * {@link checkCompatibility}, throwing when any type misses its required level.
 * @throws {SchemaIncompatibleError} with the report in `details.report` and a message listing
 *   each problem.
 */
export function assertCompatible(
  previous: Side,
  next: Side,
  options: CompatibilityOptions = {},
): CompatibilityReport {
  const report = checkCompatibility(previous, next, options);
  if (!report.ok) {
    const failing = report.events.filter((event) => !event.ok);
    const lines = failing.flatMap((event) => [
      `${event.type}: ${event.level}, required ${event.required}`,
      ...formatProblems(event.problems).map((line) => `  ${line}`),
    ]);
    throw new SchemaIncompatibleError(`incompatible event schema change:\n${lines.join('\n')}`, {
      report,
      types: failing.map((e) => e.type),
    });
  }
  return report;
}

/**
 * The problems of one event type as text lines: one heading per change (its context and
 * direction), then each problem's path and message, indented.
 */
export function formatProblems(problems: readonly CompatibilityProblem[]): string[] {
  const lines: string[] = [];
  let heading: string | undefined;
  for (const p of problems) {
    const next = `${p.context} (${p.direction === 'backward' ? 'BACKWARD: new readers, old events' : 'FORWARD: old readers, new events'}):`;
    if (next !== heading) lines.push((heading = next));
    lines.push(`  - ${p.path}: ${p.message}`);
  }
  return lines;
}

/** True when `actual` satisfies `required`. */
export function satisfies(actual: CompatibilityLevel, required: CompatibilityLevel): boolean {
  if (required === 'NONE' || actual === 'FULL') return true;
  return actual === required;
}

function requiredFor(type: string, required: CompatibilityOptions['required']): CompatibilityLevel {
  const level = typeof required === 'string' ? required : (required?.[type] ?? 'BACKWARD');
  if (!Object.hasOwn(COMPATIBILITY, level)) {
    throw new SchemaIncompatibleError(`unknown compatibility level "${level}"`, { type, level });
  }
  return level;
}

function toSnapshot(side: Side): RegistrySnapshot {
  return side instanceof EventRegistry ? snapshotRegistry(side) : loadSnapshot(side);
}

function checkType(
  type: string,
  before: Record<string, VersionSnapshot> | undefined,
  after: Record<string, VersionSnapshot> | undefined,
  required: CompatibilityLevel,
  transitive: boolean,
): EventCompatibility {
  const previousVersions = before ? sortedVersions(before) : [];
  const nextVersions = after ? sortedVersions(after) : [];
  const problems: CompatibilityProblem[] = [];
  const warnings: CompatibilityWarning[] = [];
  let status: EventCompatibility['status'];
  if (before === undefined) {
    status = 'added';
  } else if (after === undefined) {
    status = 'removed';
    problems.push({
      direction: 'backward',
      context: 'event type removed',
      path: '$',
      message: 'its events (in topics, journals, dead letters) can no longer be read',
    });
  } else {
    status = stableStringify(before) === stableStringify(after) ? 'unchanged' : 'changed';
    const previousLatest = previousVersions.at(-1)!;
    // Published versions: removed, or changed.
    for (const version of previousVersions) {
      const old = before[String(version)]!;
      const now = after[String(version)];
      if (now === undefined) {
        problems.push({
          direction: 'backward',
          context: `published v${version} removed`,
          version,
          path: '$',
          message: `its events can no longer be read`,
        });
        continue;
      }
      if (
        stableStringify(old.input) !== stableStringify(now.input) ||
        stableStringify(old.output) !== stableStringify(now.output)
      ) {
        const context = `published v${version} changed`;
        const roles = { reader: `the new v${version}`, writer: `the old v${version}` };
        for (const p of readerAcceptsWriter(now.input, old.output, roles))
          problems.push({ direction: 'backward', context, version, ...p });
        const back = { reader: roles.writer, writer: roles.reader };
        for (const p of readerAcceptsWriter(old.input, now.output, back))
          problems.push({ direction: 'forward', context, version, ...p });
        warnings.push(...addedRefinements(old.input, now.input, version, `the old v${version}`));
      }
    }
    // Steps: the new ones (non-transitive, as Confluent compares with the latest), the ones
    // whose published transform was removed, or all of them (transitive).
    for (const version of nextVersions) {
      const lower = after[String(version - 1)];
      const upper = after[String(version)]!;
      if (lower === undefined) continue;
      const published = before[String(version)];
      const isNew = version > previousLatest;
      const upRemoved = published?.up === true && !upper.up;
      const downRemoved = published?.down === true && !upper.down;
      if (!transitive && !isNew && !upRemoved && !downRemoved) continue;
      const step = { version, from: version - 1, to: version };
      const older: Roles = { reader: `v${version}`, writer: `v${version - 1}` };
      if (!upper.up && (transitive || isNew || upRemoved)) {
        const context = upRemoved
          ? `v${version - 1}→v${version}: the "up" transform of published v${version} was removed`
          : `v${version - 1}→v${version} has no "up" transform`;
        for (const p of readerAcceptsWriter(upper.input, lower.output, older))
          problems.push({ direction: 'backward', context, ...step, ...p });
      }
      if (!upper.down && (transitive || isNew || downRemoved)) {
        const context = downRemoved
          ? `v${version}→v${version - 1}: the "down" transform of published v${version} was removed`
          : `v${version}→v${version - 1} has no "down" transform`;
        const newer: Roles = { reader: older.writer, writer: older.reader };
        for (const p of readerAcceptsWriter(lower.input, upper.output, newer)) {
          problems.push({
            direction: 'forward',
            context,
            ...step,
            from: version,
            to: version - 1,
            ...p,
          });
        }
      }
      if (isNew || transitive) {
        warnings.push(...addedRefinements(lower.input, upper.input, version, `v${version - 1}`));
      }
    }
  }
  const backward = !problems.some((p) => p.direction === 'backward');
  const forward = !problems.some((p) => p.direction === 'forward');
  const level: CompatibilityLevel =
    backward && forward ? 'FULL' : backward ? 'BACKWARD' : forward ? 'FORWARD' : 'NONE';
  return {
    type,
    status,
    level,
    required,
    ok: satisfies(level, required),
    previousVersions,
    nextVersions,
    problems,
    warnings,
  };
}

/** Refinements `next` has that `previous` did not, as warnings about `version`. */
function addedRefinements(
  previous: JsonSchema,
  next: JsonSchema,
  version: number,
  previousName: string,
): CompatibilityWarning[] {
  const before = refinementPaths(previous);
  return [...refinementPaths(next)]
    .filter(([path, count]) => count > (before.get(path) ?? 0))
    .map(([path]) => ({
      version,
      path,
      message: `v${version} adds a refinement (.refine, .superRefine or .check) here, which JSON Schema cannot show: check by hand that every event of ${previousName} passes it`,
    }));
}

function sortedVersions(versions: Record<string, VersionSnapshot>): number[] {
  return Object.keys(versions)
    .map(Number)
    .sort((a, b) => a - b);
}
