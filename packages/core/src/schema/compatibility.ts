import { z } from 'zod';
import type { AnyEventDefinition } from './EventRegistry.js';
import { EventRegistry } from './EventRegistry.js';
import { SchemaIncompatibleError, SchemaSnapshotError } from './errors.js';
import {
  readerAcceptsWriter,
  stableStringify,
  type JsonSchema,
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
 * `z.toJSONSchema`; what JSON Schema cannot express, such as `z.date()` or a transform's
 * output, becomes `{}`, "anything").
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
      ...event.problems.map(
        (p) =>
          `  - ${p.direction}${p.version === undefined ? '' : ` v${p.from ?? p.version}→v${p.to ?? p.version}`} ${p.path}: ${p.message}`,
      ),
    ]);
    throw new SchemaIncompatibleError(`incompatible event schema change:\n${lines.join('\n')}`, {
      report,
      types: failing.map((e) => e.type),
    });
  }
  return report;
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
  let status: EventCompatibility['status'];
  if (before === undefined) {
    status = 'added';
  } else if (after === undefined) {
    status = 'removed';
    problems.push({
      direction: 'backward',
      path: '$',
      message: 'the event type was removed; its events can no longer be read',
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
          version,
          path: '$',
          message: `version ${version} was removed; its events can no longer be read`,
        });
        continue;
      }
      if (
        stableStringify(old.input) !== stableStringify(now.input) ||
        stableStringify(old.output) !== stableStringify(now.output)
      ) {
        for (const p of readerAcceptsWriter(now.input, old.output)) {
          problems.push({
            direction: 'backward',
            version,
            ...p,
            message: `published version ${version} changed: ${p.message}`,
          });
        }
        for (const p of readerAcceptsWriter(old.input, now.output)) {
          problems.push({
            direction: 'forward',
            version,
            ...p,
            message: `published version ${version} changed: ${p.message}`,
          });
        }
      }
    }
    // Steps: the new ones (non-transitive, as Confluent compares with the latest), or all.
    const lowest = transitive ? (nextVersions[0] ?? 1) : previousLatest;
    for (const version of nextVersions) {
      if (version <= lowest) continue;
      const lower = after[String(version - 1)];
      const upper = after[String(version)]!;
      if (lower === undefined) continue;
      const step = { version, from: version - 1, to: version };
      if (!upper.up) {
        for (const p of readerAcceptsWriter(upper.input, lower.output)) {
          problems.push({
            direction: 'backward',
            ...step,
            ...p,
            message: `no "up" transform v${version - 1}→v${version} and the change needs one: ${p.message}`,
          });
        }
      }
      if (!upper.down) {
        for (const p of readerAcceptsWriter(lower.input, upper.output)) {
          problems.push({
            direction: 'forward',
            ...step,
            from: version,
            to: version - 1,
            ...p,
            message: `no "down" transform v${version}→v${version - 1} and the change needs one: ${p.message}`,
          });
        }
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
  };
}

function sortedVersions(versions: Record<string, VersionSnapshot>): number[] {
  return Object.keys(versions)
    .map(Number)
    .sort((a, b) => a - b);
}
