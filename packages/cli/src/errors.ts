import { BacktrackError, redactText } from '@backtrack/core';

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
  /** `backtrack ui`: no valid bearer token (HTTP 401). */
  UI_TOKEN: 'BT_ERR_UI_TOKEN',
  /** `backtrack ui`: an action from another origin or without the CSRF header (HTTP 403). */
  UI_CSRF: 'BT_ERR_UI_CSRF',
  /** `backtrack ui`: a non-loopback Host on a loopback console (HTTP 421). */
  UI_HOST: 'BT_ERR_UI_HOST',
  /** `backtrack ui`: a dead-letter destination the console was not started with (HTTP 404). */
  UI_NOT_FOUND: 'BT_ERR_UI_NOT_FOUND',
  /** `backtrack ui`: a malformed request (HTTP 4xx). */
  UI_REQUEST: 'BT_ERR_UI_REQUEST',
  /** `backtrack ui`: an unexpected failure (HTTP 5xx). */
  UI: 'BT_ERR_UI',
} as const;

/** One of {@link CLI_ERROR_CODES}. */
export type CliErrorCode = (typeof CLI_ERROR_CODES)[keyof typeof CLI_ERROR_CODES];

/**
 * An error the CLI reports as one clear line and an exit code. A {@link BacktrackError} like every
 * error of the libraries (a stable `code`, a brand, `retriable: false`), so a caller that catches
 * `BacktrackError` sees it too. Its message and hint are redacted (a connection URL in them keeps
 * its user, never its password).
 *
 * `code` is one of {@link CLI_ERROR_CODES}, or the code of the library error the CLI reports
 * with its own exit code (a held rollback lease exits 3 with `BT_ERR_ROLLBACK_RUN_LOCKED`).
 */
export class CliError extends BacktrackError {
  static override readonly brand: string = '@backtrack/cli.CliError';
  readonly hint?: string;
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.Error,
    code: CliErrorCode | (string & {}) = exitCode === EXIT.Usage
      ? CLI_ERROR_CODES.USAGE
      : CLI_ERROR_CODES.FAILED,
    hint?: string,
  ) {
    super(code, message);
    if (hint !== undefined) this.hint = redactText(hint);
  }
}
