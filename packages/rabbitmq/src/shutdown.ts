import type { Logger, Transport } from '@backtrack/core';

/** Options of {@link closeOnSignals}. */
export interface CloseOnSignalsOptions {
  /** @default ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /**
   * Hard limit for the whole shutdown, in ms; after it the process exits with code 1 (the broker
   * redelivers whatever was unacknowledged).
   * @default 30_000
   */
  timeoutMs?: number;
  /** Exit the process after closing. Set false to run your own shutdown after `onClosed`. @default true */
  exit?: boolean;
  /** Called after the transports closed (or failed to). */
  onClosed?: (error?: unknown) => void | Promise<void>;
  logger?: Logger;
}

/**
 * Opt-in graceful shutdown: on the first of `signals`, closes every transport (consumers are
 * cancelled, in-flight handlers finish and are acknowledged, unconfirmed publishes wait), then
 * exits with 0 (1 on failure or timeout). Returns a function that removes the handlers.
 *
 * @example
 * ```ts
 * const transport = await createRabbitTransport({ url });
 * closeOnSignals([transport], { logger });
 * ```
 */
export function closeOnSignals(
  transports: ReadonlyArray<Pick<Transport, 'close'>>,
  options: CloseOnSignalsOptions = {},
): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 30_000;
  let started = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (started) return;
    started = true;
    options.logger?.info({ signal }, 'shutting down: closing transports');
    const timer = setTimeout(() => {
      options.logger?.error({ timeoutMs }, 'shutdown timed out');
      if (options.exit ?? true) process.exit(1);
    }, timeoutMs);
    timer.unref();
    void Promise.all(transports.map((t) => t.close()))
      .then(
        () => undefined,
        (error: unknown) => error ?? new Error('close failed'),
      )
      .then(async (error) => {
        clearTimeout(timer);
        if (error) options.logger?.error({ err: error }, 'shutdown failed');
        else options.logger?.info('transports closed');
        await options.onClosed?.(error);
        if (options.exit ?? true) process.exit(error ? 1 : 0);
      });
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
