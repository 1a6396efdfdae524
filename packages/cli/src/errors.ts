/** Exit codes of the `backtrack` command. */
export const EXIT = {
  /** Done. */
  Ok: 0,
  /** An operation failed: a store or broker unreachable, a Backtrack error. */
  Error: 1,
  /** Bad arguments or configuration. */
  Usage: 2,
  /** The rollback run is held by another runner (its lease is live). */
  Locked: 3,
  /** The rollback ended with failed items (`backtrack rollback resume` retries them). */
  Incomplete: 4,
  /** `schemas check` found an incompatible schema change. */
  Incompatible: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * Stable codes of the errors the `backtrack` command reports itself (listed, each with a fix, in
 * docs/errors.md; never reused). Errors of the libraries keep their own codes.
 */
export const CLI_ERROR_CODES = {
  /** An operation failed for a reason outside Backtrack's libraries. */
  FAILED: 'BT_ERR_CLI',
  /** A bad argument or configuration. */
  USAGE: 'BT_ERR_CLI_USAGE',
  /** Redis, Kafka or RabbitMQ could not be reached. */
  CONNECTION: 'BT_ERR_CLI_CONNECTION',
} as const;

/** One of {@link CLI_ERROR_CODES}. */
export type CliErrorCode = (typeof CLI_ERROR_CODES)[keyof typeof CLI_ERROR_CODES];

/** An error the CLI reports as one clear line and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.Error,
    readonly code: string = exitCode === EXIT.Usage
      ? CLI_ERROR_CODES.USAGE
      : CLI_ERROR_CODES.FAILED,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
