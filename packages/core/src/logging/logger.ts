import { pino, type Logger } from 'pino';
import { redactionLoggerOptions } from './redact.js';

export type { Logger } from 'pino';

/** The default level: what the docs promise (problems only). */
export const DEFAULT_LOG_LEVEL = 'warn';

/**
 * The logger Backtrack uses when the caller passes none: pino on stdout, level from
 * `BACKTRACK_LOG_LEVEL` (default `warn`: problems only, such as a failed step attempt or a
 * dead-lettered message). Errors are logged as type, code and message; their stacks only at
 * `debug` and `trace`, so a step retried ten times gives ten lines, not ten stack traces. Pass
 * your own pino logger to put Backtrack's records into your service's stream (with your
 * serializers); Backtrack only ever calls `child()` on it. Secrets (connection passwords, SASL
 * settings, private keys) are redacted from every line ({@link redactionLoggerOptions}: spread it
 * into your own logger's options to do the same).
 */
export function createDefaultLogger(): Logger {
  const level = process.env.BACKTRACK_LOG_LEVEL ?? DEFAULT_LOG_LEVEL;
  const stacks = level === 'debug' || level === 'trace';
  return pino({
    name: 'backtrack',
    level,
    serializers: { err: stacks ? pino.stdSerializers.err : briefError },
    ...redactionLoggerOptions(),
  });
}

/** An error without its stack: `{ type, message, code? }` (and the same for its cause). */
function briefError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    ...(error.cause !== undefined && depth < 3
      ? { cause: briefError(error.cause, depth + 1) }
      : {}),
  };
}
