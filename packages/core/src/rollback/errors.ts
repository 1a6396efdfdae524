import { BacktrackError } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/** A compensation registry entry is malformed (unknown type, registered twice, missing reason). */
export class CompensationDefinitionError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.CompensationDefinitionError';
  constructor(message: string, details: Record<string, unknown>) {
    super(CORE_ERROR_CODES.COMPENSATION_DEFINITION, message, { details });
  }
}

/** `planRollback` or `runRollback` got invalid options (no service/version, bad strategy, ...). */
export class RollbackConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.RollbackConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(CORE_ERROR_CODES.ROLLBACK_CONFIG_INVALID, 'rollback', field, expectation, value, options);
  }
}

/** The window selects more effects than `maxEffects`: narrow it with `since`/`until`/`types`. */
export class RollbackPlanTooLargeError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.RollbackPlanTooLargeError';
  constructor(maxEffects: number, details: Record<string, unknown>) {
    super(
      CORE_ERROR_CODES.ROLLBACK_PLAN_TOO_LARGE,
      `the rollback window selects more than ${maxEffects} effects; narrow it (since/until/types) or raise maxEffects`,
      { details: { maxEffects, ...details } },
    );
  }
}

/** Another runner holds the run's lease. Retriable: it expires if that runner died. */
export class RollbackRunLockedError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.RollbackRunLockedError';
  constructor(runId: string, details: Record<string, unknown>) {
    super(
      CORE_ERROR_CODES.ROLLBACK_RUN_LOCKED,
      `rollback run ${runId} is being run by ${String(details.owner ?? 'another runner')}` +
        (details.expiresAt
          ? ` (lease until ${new Date(details.expiresAt as number).toISOString()})`
          : ''),
      { details: { runId, ...details }, retriable: true },
    );
  }
}

/** This runner's lease expired and another runner took the run over: this one stops at once. */
export class RollbackLeaseLostError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.RollbackLeaseLostError';
  constructor(runId: string) {
    super(
      CORE_ERROR_CODES.ROLLBACK_LEASE_LOST,
      `lost the lease of rollback run ${runId}: another runner took it over; this runner stopped`,
      { details: { runId } },
    );
  }
}

/** A run id is already used by a run of a different plan. */
export class RollbackRunConflictError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.RollbackRunConflictError';
  constructor(runId: string, existingPlanId: string, planId: string) {
    super(
      CORE_ERROR_CODES.ROLLBACK_RUN_CONFLICT,
      `rollback run ${runId} already exists for plan ${existingPlanId}, not ${planId}; pick another run id`,
      { details: { runId, existingPlanId, planId } },
    );
  }
}

/** No rollback run with this id in the progress store. */
export class RollbackRunNotFoundError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.RollbackRunNotFoundError';
  constructor(runId: string) {
    super(CORE_ERROR_CODES.ROLLBACK_RUN_NOT_FOUND, `rollback run ${runId} not found`, {
      details: { runId },
    });
  }
}
