import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';

/** A compensation registry entry is malformed (unknown type, registered twice, missing reason). */
export class CompensationDefinitionError extends BacktrackError {
  constructor(message: string, details: Record<string, unknown>) {
    super('BT_ERR_COMPENSATION_DEFINITION', message, { details });
  }
}

/** `planRollback` or `runRollback` got invalid options (no service/version, bad strategy, ...). */
export class RollbackConfigError extends BacktrackError {
  constructor(message: string, options?: BacktrackErrorOptions) {
    super('BT_ERR_ROLLBACK_CONFIG', message, options);
  }
}

/** The window selects more effects than `maxEffects`: narrow it with `since`/`until`/`types`. */
export class RollbackPlanTooLargeError extends BacktrackError {
  constructor(maxEffects: number, details: Record<string, unknown>) {
    super(
      'BT_ERR_ROLLBACK_PLAN_TOO_LARGE',
      `the rollback window selects more than ${maxEffects} effects; narrow it (since/until/types) or raise maxEffects`,
      { details: { maxEffects, ...details } },
    );
  }
}

/** Another runner holds the run's lease. Retriable: it expires if that runner died. */
export class RollbackRunLockedError extends BacktrackError {
  constructor(runId: string, details: Record<string, unknown>) {
    super(
      'BT_ERR_ROLLBACK_RUN_LOCKED',
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
  constructor(runId: string) {
    super(
      'BT_ERR_ROLLBACK_LEASE_LOST',
      `lost the lease of rollback run ${runId}: another runner took it over; this runner stopped`,
      { details: { runId } },
    );
  }
}

/** A run id is already used by a run of a different plan. */
export class RollbackRunConflictError extends BacktrackError {
  constructor(runId: string, existingPlanId: string, planId: string) {
    super(
      'BT_ERR_ROLLBACK_RUN_CONFLICT',
      `rollback run ${runId} already exists for plan ${existingPlanId}, not ${planId}; pick another run id`,
      { details: { runId, existingPlanId, planId } },
    );
  }
}

/** No rollback run with this id in the progress store. */
export class RollbackRunNotFoundError extends BacktrackError {
  constructor(runId: string) {
    super('BT_ERR_ROLLBACK_RUN_NOT_FOUND', `rollback run ${runId} not found`, {
      details: { runId },
    });
  }
}
