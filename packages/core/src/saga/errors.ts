import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/** A saga definition is malformed (duplicate step, compensation after a pivot, ...). */
export class SagaDefinitionError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaDefinitionError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(CORE_ERROR_CODES.SAGA_DEFINITION, message, options);
  }
}

/**
 * The input given to `start` fails the saga's input schema. The message names each field and
 * its zod issue (`details.issues` holds them all).
 */
export class SagaInputError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaInputError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(
      CORE_ERROR_CODES.SAGA_INPUT_INVALID,
      withIssues(message, options?.details?.issues),
      options,
    );
  }
}

/** `message: amountCents: Invalid input: expected number, received string; ...` (5 at most). */
function withIssues(message: string, issues: unknown): string {
  if (!Array.isArray(issues) || issues.length === 0) return message;
  const shown = (issues as { path?: PropertyKey[]; message?: string }[])
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path?.length ? issue.path.map(String).join('.') : '(the input)';
      return `${path}: ${issue.message ?? 'invalid'}`;
    });
  const more = issues.length > shown.length ? ` (and ${issues.length - shown.length} more)` : '';
  return `${message}: ${shown.join('; ')}${more}`;
}

/** Another writer advanced the saga first (optimistic concurrency); re-read and decide again. */
export class SagaConcurrencyError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaConcurrencyError';
  constructor(sagaId: string, expectedRevision: number, options?: BacktrackErrorOptions) {
    super(
      CORE_ERROR_CODES.SAGA_CONCURRENT_UPDATE,
      `saga ${sagaId} was updated by someone else (expected revision ${expectedRevision})`,
      { ...options, details: { sagaId, expectedRevision, ...options?.details }, retriable: true },
    );
  }
}

/** No saga with this id in the store. */
export class SagaNotFoundError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaNotFoundError';
  constructor(sagaId: string) {
    super(CORE_ERROR_CODES.SAGA_NOT_FOUND, `saga ${sagaId} not found`, { details: { sagaId } });
  }
}

/** The engine has no definition registered for a stored saga's name and version. */
export class SagaDefinitionNotRegisteredError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaDefinitionNotRegisteredError';
  constructor(sagaName: string, version: number) {
    super(
      CORE_ERROR_CODES.SAGA_DEFINITION_NOT_REGISTERED,
      `no definition registered for saga ${sagaName} v${version}; register every version that may still be in flight`,
      { details: { sagaName, version } },
    );
  }
}

/** The operation is not allowed in the saga's current state (for example retrying a completed saga). */
export class SagaStateError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaStateError';
  constructor(message: string, details: Record<string, unknown>) {
    super(CORE_ERROR_CODES.SAGA_INVALID_STATE, message, { details });
  }
}

/** A step or compensation did not finish within its `timeoutMs`. */
export class StepTimeoutError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.StepTimeoutError';
  constructor(step: string, timeoutMs: number) {
    super(CORE_ERROR_CODES.STEP_TIMEOUT, `step ${step} timed out after ${timeoutMs} ms`, {
      details: { step, timeoutMs },
      retriable: true,
    });
  }
}

/** Another live engine holds the saga's lease: it is driven there (see `SagaRecord.lease`). */
export class SagaLeaseHeldError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaLeaseHeldError';
  constructor(sagaId: string, lease: { owner: string; expiresAt: string }) {
    super(
      CORE_ERROR_CODES.SAGA_LEASE_HELD,
      `saga ${sagaId} is driven by engine ${lease.owner} (lease until ${lease.expiresAt})`,
      { details: { sagaId, owner: lease.owner, expiresAt: lease.expiresAt }, retriable: true },
    );
  }
}

/** This engine lost a saga's lease (it expired and another engine took the saga over): it stops. */
export class SagaLeaseLostError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SagaLeaseLostError';
  constructor(sagaId: string, owner: string | undefined) {
    super(
      CORE_ERROR_CODES.SAGA_LEASE_LOST,
      `saga ${sagaId}: this engine's lease expired and ${owner ? `engine ${owner}` : 'another engine'} took it over; stopping`,
      { details: { sagaId, owner: owner ?? null }, retriable: true },
    );
  }
}

/** A saga engine option or dependency is invalid (`details.field` names it); thrown by `createSagaEngine`. */
export class SagaEngineConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.SagaEngineConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(
      CORE_ERROR_CODES.SAGA_ENGINE_CONFIG_INVALID,
      'saga engine',
      field,
      expectation,
      value,
      options,
    );
  }
}
