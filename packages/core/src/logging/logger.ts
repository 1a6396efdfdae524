import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The logger Backtrack uses when the caller passes none: pino on stdout, level from
 * `BACKTRACK_LOG_LEVEL` (default `info`). Pass your own pino logger to put Backtrack's records
 * into your service's stream; Backtrack only ever calls `child()` on it.
 */
export function createDefaultLogger(): Logger {
  return pino({ name: 'backtrack', level: process.env.BACKTRACK_LOG_LEVEL ?? 'info' });
}
