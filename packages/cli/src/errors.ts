import { redactText } from '@backtrack/core';

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
 * An error the CLI reports as one clear line and an exit code. Its message and hint are redacted
 * (a connection URL in them keeps its user, never its password).
 */
export class CliError extends Error {
  readonly hint?: string;
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.Error,
    readonly code = exitCode === EXIT.Usage ? 'BT_ERR_CLI_USAGE' : 'BT_ERR_CLI',
    hint?: string,
  ) {
    super(redactText(message));
    this.name = 'CliError';
    if (hint !== undefined) this.hint = redactText(hint);
  }
}
