import type { Logger } from 'pino';
import type { Journal } from '../journal/Journal.js';
import { seqToTimeMs } from '../journal/Journal.js';
import { createDefaultLogger } from '../logging/logger.js';
import { ATTR } from './names.js';
import {
  activeInstruments,
  registerPolledSource,
  type GaugeSample,
  type PolledGauge,
} from './provider.js';

export type { GaugeSample, PolledGauge };

/** Options of {@link startGaugePoller}. */
export interface GaugePollerOptions {
  /** What to read: the samples of each gauge, all replaced at once. */
  poll: () => Promise<Partial<Record<PolledGauge, GaugeSample[]>>>;
  /** How often to poll, in ms. @default 15_000 */
  intervalMs?: number;
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/** A running poller: the gauges report its last samples. */
export interface GaugePoller {
  /** Polls now (also when no SDK is registered) and resolves with what the gauges report. */
  pollOnce(): Promise<Partial<Record<PolledGauge, GaugeSample[]>>>;
  /** Stops polling and removes its samples from the gauges. */
  stop(): void;
}

/**
 * Polls `options.poll` every `intervalMs` while an OpenTelemetry meter provider is registered
 * (without an SDK it makes no call at all) and reports the last samples on the polled gauges. A
 * failed poll is logged and clears the samples: a stale lag would read as healthy.
 */
export function startGaugePoller(options: GaugePollerOptions): GaugePoller {
  const intervalMs = options.intervalMs ?? 15_000;
  const logger = options.logger ?? createDefaultLogger();
  let last: Partial<Record<PolledGauge, GaugeSample[]>> = {};
  const removals = (['consumerLag', 'journalPending', 'journalLag'] as const).map((name) =>
    registerPolledSource(name, () => last[name] ?? []),
  );
  let polling: Promise<unknown> | undefined;
  const run = async () => {
    try {
      last = await options.poll();
    } catch (err) {
      last = {};
      logger.warn({ err }, 'telemetry gauge poll failed');
    }
    return last;
  };
  const tick = () => {
    // No SDK: no broker or store call. One poll at a time.
    if (polling !== undefined || activeInstruments() === undefined) return;
    polling = run().finally(() => (polling = undefined));
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick(); // the first values now (and the gauges created, if an SDK is registered)
  return {
    async pollOnce() {
      await polling; // after the timer's poll in flight, so that one cannot overwrite this one
      return run();
    },
    stop() {
      clearInterval(timer);
      for (const remove of removals) remove();
    },
  };
}

/** Options of {@link monitorJournalLag}. */
export interface JournalLagOptions {
  /** How often to read the journal, in ms. @default 15_000 */
  intervalMs?: number;
  /** Most pending records read per poll: the pending count saturates there. @default 1000 */
  limit?: number;
  /** @default Date.now */
  now?: () => number;
  logger?: Logger;
  /** Producing services reported from the start (0 until they have a backlog); others once seen. */
  services?: readonly string[];
}

/**
 * Reports the publisher journal's backlog, per producing service: `backtrack.publisher.journal.pending`
 * (records appended but not yet marked published: in flight, or waiting for the outbox relay) and
 * `backtrack.publisher.journal.lag` (age in seconds of the oldest of them; 0 when none). Reads
 * `journal.unpublished` every `intervalMs` while an OpenTelemetry SDK is registered.
 */
export function monitorJournalLag(journal: Journal, options: JournalLagOptions = {}): GaugePoller {
  const limit = options.limit ?? 1000;
  const now = options.now ?? Date.now;
  const services = new Set<string>(options.services);
  return startGaugePoller({
    intervalMs: options.intervalMs,
    logger: options.logger,
    async poll() {
      const t = now();
      const pending = await journal.unpublished({ olderThanMs: 0, limit, now: t + 1 });
      const byService = new Map<string, { count: number; oldestMs: number }>();
      for (const record of pending) {
        const entry = byService.get(record.service) ?? { count: 0, oldestMs: Infinity };
        entry.count += 1;
        entry.oldestMs = Math.min(entry.oldestMs, seqToTimeMs(record.seq));
        byService.set(record.service, entry);
        services.add(record.service);
      }
      // A service seen once keeps reporting, 0 when its backlog is gone, so the gauge drops.
      const journalPending: GaugeSample[] = [];
      const journalLag: GaugeSample[] = [];
      for (const service of services) {
        const entry = byService.get(service);
        const attributes = { [ATTR.PRODUCER_SERVICE]: service };
        journalPending.push({ value: entry?.count ?? 0, attributes });
        journalLag.push({
          value: entry === undefined ? 0 : Math.max(0, t - entry.oldestMs) / 1000,
          attributes,
        });
      }
      return { journalPending, journalLag };
    },
  });
}
