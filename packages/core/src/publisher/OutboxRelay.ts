import type { Logger } from 'pino';
import type { Journal } from '../journal/Journal.js';
import { createDefaultLogger } from '../logging/logger.js';
import type { Transport } from '../transport/Transport.js';
import { PublisherConfigError } from './errors.js';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  /**
   * Only records pending for at least this long are republished, in ms, so the relay does not
   * race a publisher that is still waiting for the broker. Keep it well above the transport's
   * publish timeout.
   * @default 30_000
   */
  olderThanMs?: number;
  /** How often `start()` polls, in ms. @default 5_000 */
  intervalMs?: number;
  /** Records per transport call. @default 100 */
  batchSize?: number;
}

/** Defaults of {@link OutboxRelayOptions}. */
export const DEFAULT_OUTBOX_RELAY_OPTIONS = {
  olderThanMs: 30_000,
  intervalMs: 5_000,
  batchSize: 100,
} as const satisfies Required<OutboxRelayOptions>;

/** Collaborators of {@link OutboxRelay}. */
export interface OutboxRelayDependencies {
  journal: Journal;
  transport: Transport;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** @default Date.now */
  now?: () => number;
}

/** What one relay pass did. */
export interface RelayResult {
  /** Records published and marked. */
  republished: number;
  /** Records the transport rejected (they stay pending for the next pass). */
  failed: number;
}

/**
 * The outbox relay: publishes journal records that were appended but never marked published
 * (the publisher crashed, or the broker was down, between the two). Together with the publisher
 * this makes delivery at-least-once: nothing journaled is lost; a record may go out twice under
 * one envelope id, which idempotent consumers absorb.
 *
 * Several relays may run (one per service instance): they may then both publish a record, which
 * is again absorbed by consumer dedupe. Run `runOnce()` from your own scheduler, or `start()`.
 */
export class OutboxRelay {
  readonly #journal: Journal;
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #options: Required<OutboxRelayOptions>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(options: OutboxRelayOptions, dependencies: OutboxRelayDependencies) {
    const o = { ...DEFAULT_OUTBOX_RELAY_OPTIONS };
    for (const [field, value] of Object.entries(options ?? {})) {
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || (value as number) < (field === 'olderThanMs' ? 0 : 1)) {
        throw new PublisherConfigError(field, 'must be a positive integer', value);
      }
      (o as Record<string, number>)[field] = value as number;
    }
    if (!dependencies?.journal || !dependencies.transport) {
      throw new PublisherConfigError(
        !dependencies?.journal ? 'journal' : 'transport',
        'is a required dependency of the outbox relay',
      );
    }
    this.#options = o;
    this.#journal = dependencies.journal;
    this.#transport = dependencies.transport;
    this.#now = dependencies.now ?? Date.now;
    this.#logger = (dependencies.logger ?? createDefaultLogger()).child({
      component: 'outbox-relay',
    });
  }

  /** Publishes every due pending record once (in batches, oldest first). */
  async runOnce(): Promise<RelayResult> {
    const result: RelayResult = { republished: 0, failed: 0 };
    const seen = new Set<string>();
    for (;;) {
      const due = (
        await this.#journal.unpublished({
          olderThanMs: this.#options.olderThanMs,
          limit: this.#options.batchSize,
          now: this.#now(),
        })
      ).filter((r) => !seen.has(r.id));
      if (due.length === 0) return result;
      for (const r of due) seen.add(r.id);
      try {
        await this.#transport.publish(
          due.map((r) => ({ topic: r.topic, key: r.key, message: r.message })),
        );
      } catch (err) {
        result.failed += due.length;
        this.#logger.warn({ err, count: due.length }, 'relay publish failed; will retry');
        return result;
      }
      await this.#journal.markPublished(due.map((r) => r.id));
      result.republished += due.length;
      this.#logger.info({ count: due.length }, 'relayed pending journal records');
    }
  }

  /** Polls every `intervalMs` until {@link OutboxRelay.stop}. Errors are logged, never thrown. */
  start(): void {
    if (this.#timer) return;
    const tick = () => {
      this.#running = this.runOnce()
        .catch((err: unknown) => this.#logger.error({ err }, 'relay pass failed'))
        .finally(() => {
          if (this.#timer) this.#timer = setTimeout(tick, this.#options.intervalMs);
        });
    };
    this.#timer = setTimeout(tick, 0);
  }

  /** Stops polling and waits for a pass in progress. */
  async stop(): Promise<void> {
    const timer = this.#timer;
    this.#timer = undefined;
    if (timer) clearTimeout(timer);
    await this.#running;
  }
}
