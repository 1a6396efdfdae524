import type { Logger } from '@backtrack/core';

/** Something that can be closed gracefully: a transport, a subscription, a saga engine. */
export interface Closeable {
  close(): Promise<void>;
}

/** Options of {@link closeOnSignal}. */
export interface CloseOnSignalOptions {
  /** @default ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /**
   * Longest the close may take before the process exits anyway, in ms.
   * @default 30_000
   */
  timeoutMs?: number;
  /**
   * Exit the process once closed (code 0, or 1 when closing failed or timed out). Set false when
   * the application exits by itself.
   * @default true
   */
  exit?: boolean;
  logger?: Logger;
}

/**
 * Opt-in graceful shutdown: on SIGTERM (or SIGINT) closes the given resources in order (for
 * example subscriptions first, then the transport), so consumers stop fetching, finish and
 * commit what is in flight, and disconnect. A second signal while closing exits at once.
 * Returns a function that removes the handlers.
 *
 * @example
 * ```ts
 * const stop = closeOnSignal([subscription, transport], { logger });
 * ```
 */
export function closeOnSignal(
  resources: Closeable | Closeable[],
  options: CloseOnSignalOptions = {},
): () => void {
  const list = Array.isArray(resources) ? resources : [resources];
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 30_000;
  const exit = options.exit ?? true;
  let closing = false;

  const handler = (signal: NodeJS.Signals): void => {
    if (closing) {
      options.logger?.warn({ signal }, 'second signal while closing; exiting now');
      if (exit) process.exit(1);
      return;
    }
    closing = true;
    options.logger?.info({ signal }, 'closing on signal');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
      timer.unref();
    });
    const work = (async () => {
      for (const r of list) await r.close();
      return 'closed' as const;
    })();
    Promise.race([work, timeout])
      .then((outcome) => {
        clearTimeout(timer);
        if (outcome === 'timeout') options.logger?.error({ timeoutMs }, 'graceful close timed out');
        else options.logger?.info('closed gracefully');
        if (exit) process.exit(outcome === 'closed' ? 0 : 1);
      })
      .catch((err: unknown) => {
        clearTimeout(timer);
        options.logger?.error({ err }, 'graceful close failed');
        if (exit) process.exit(1);
      });
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
