import type { z } from 'zod';
import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/**
 * An event definition or registry is malformed: a duplicate version, a gap between versions, a
 * version that is not a positive integer, two definitions of one type in a registry. Thrown
 * while the definitions are built (at import time), never on a message.
 */
export class SchemaDefinitionError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SchemaDefinitionError';
  constructor(message: string, details: Record<string, unknown>) {
    super(CORE_ERROR_CODES.SCHEMA_DEFINITION, message, { details });
  }
}

/** A message's `type` is not in the registry. Never retriable: dead-letter it. */
export class UnknownEventTypeError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.UnknownEventTypeError';
  readonly eventType: string;
  constructor(eventType: string, options: Omit<BacktrackErrorOptions, 'retriable'> = {}) {
    super(CORE_ERROR_CODES.SCHEMA_UNKNOWN_EVENT_TYPE, `unknown event type "${eventType}"`, {
      ...options,
      details: { eventType, ...options.details },
    });
    this.eventType = eventType;
  }
}

/** The event type is known, but not this schema version. Never retriable: dead-letter it. */
export class UnknownSchemaVersionError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.UnknownSchemaVersionError';
  readonly eventType: string;
  readonly version: number;
  constructor(eventType: string, version: number, knownVersions: readonly number[]) {
    super(
      CORE_ERROR_CODES.SCHEMA_VERSION_UNKNOWN,
      `event type "${eventType}" has no schema version ${version} (known: ${knownVersions.join(', ') || 'none'})`,
      { details: { eventType, version, knownVersions: [...knownVersions] } },
    );
    this.eventType = eventType;
    this.version = version;
  }
}

/**
 * Data does not match the zod schema of its (type, version). `issues` are zod's issues,
 * unchanged (path, code, message, ...), so callers can format them with `z.prettifyError` or
 * `z.treeifyError`. Never retriable.
 */
export class SchemaValidationError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SchemaValidationError';
  readonly eventType: string;
  readonly version: number;
  readonly issues: z.core.$ZodIssue[];
  constructor(eventType: string, version: number, issues: z.core.$ZodIssue[], cause?: unknown) {
    const first = issues[0];
    const where = first && first.path.length > 0 ? ` at ${first.path.map(String).join('.')}` : '';
    super(
      CORE_ERROR_CODES.SCHEMA_VALIDATION,
      `data of "${eventType}" v${version} does not match its schema${where}: ${first?.message ?? 'invalid'}` +
        (issues.length > 1 ? ` (+${issues.length - 1} more issues)` : ''),
      { cause, details: { eventType, version, issues } },
    );
    this.eventType = eventType;
    this.version = version;
    this.issues = issues;
  }
}

/**
 * Converting between two versions needs an `up` (older to newer) or `down` (newer to older)
 * transform that the definition does not have, and the data does not satisfy the target schema
 * unchanged. Add it to the `.version(n, schema, { up, down })` call. Never retriable.
 */
export class MissingTransformError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.MissingTransformError';
  /** Why the data could not pass unchanged: the target schema's zod issues. */
  readonly issues: z.core.$ZodIssue[];
  constructor(
    eventType: string,
    from: number,
    to: number,
    direction: 'up' | 'down',
    issues: z.core.$ZodIssue[] = [],
  ) {
    super(
      CORE_ERROR_CODES.SCHEMA_TRANSFORM_MISSING,
      `event type "${eventType}" has no "${direction}" transform from v${from} to v${to}, and the data does not fit v${to} unchanged`,
      { details: { eventType, from, to, direction, issues } },
    );
    this.issues = issues;
  }
}

/** An `up` or `down` transform threw. The error is its `cause`. Never retriable. */
export class TransformFailedError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.TransformFailedError';
  constructor(
    eventType: string,
    from: number,
    to: number,
    direction: 'up' | 'down',
    cause: unknown,
  ) {
    super(
      CORE_ERROR_CODES.SCHEMA_TRANSFORM_FAILED,
      `the "${direction}" transform of "${eventType}" from v${from} to v${to} threw: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause, details: { eventType, from, to, direction } },
    );
  }
}

/**
 * `assertCompatible` found a change that breaks the required compatibility mode. `details.report`
 * is the full {@link CompatibilityReport}.
 */
export class SchemaIncompatibleError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SchemaIncompatibleError';
  constructor(message: string, details: Record<string, unknown>) {
    super(CORE_ERROR_CODES.SCHEMA_INCOMPATIBLE, message, { details });
  }
}

/** A registry snapshot (JSON) could not be read: not JSON, or not the snapshot format. */
export class SchemaSnapshotError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SchemaSnapshotError';
  constructor(message: string, options: Omit<BacktrackErrorOptions, 'retriable'> = {}) {
    super(CORE_ERROR_CODES.SCHEMA_SNAPSHOT_INVALID, message, options);
  }
}
