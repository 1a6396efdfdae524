import type { EncodedMessage } from '../envelope/types.js';

/** A message as a transport received it, before any decoding. */
export interface IncomingMessage {
  message: EncodedMessage;
  /** 1 for the first delivery; the transport counts retries (retry topic header, x-delivery-count). */
  attempt: number;
  /** Where it came from, for logs and dead letters. */
  origin: {
    transport: string;
    topic: string;
    partition?: number;
    offset?: string;
    /**
     * The ordering key the transport partitions by (a Kafka record key), when there is one:
     * `processBatch` runs messages of one key in order and different keys concurrently.
     */
    key?: string;
    /** Consumer group or queue name. */
    group: string;
  };
}

/**
 * What the transport must do with a message once the pipeline is done with it.
 * - `ack`: done (handled, a duplicate, or ignored on purpose).
 * - `retry`: the handler failed and may succeed later: deliver again after `delayMs`.
 * - `dead-letter`: never deliverable (bad input, or retries exhausted): park it with the reason.
 * - `redeliver`: not processed at all (another consumer holds its lease, or the dedupe store is
 *   down): do not acknowledge; deliver it again. `pause` asks the transport to stop fetching for
 *   a while, because every message would meet the same fate.
 */
export type Disposition =
  | { kind: 'ack'; outcome: 'handled' | 'duplicate' | 'ignored' }
  | { kind: 'retry'; delayMs: number; reason: string; error?: unknown }
  | { kind: 'dead-letter'; reason: string; code: string; error?: unknown }
  | { kind: 'redeliver'; reason: string; delayMs: number; pause: boolean };

/** Options of one `processBatch` call (additive: a transport that passes none gets the defaults). */
export interface BatchOptions {
  /**
   * The transport redelivers a `retry` in place (strict order, Kafka `retryMode: 'in-place'`):
   * after a retry, hold back the later messages of the same partition or key, as after a
   * `redeliver`. @default false
   */
  holdAfterRetry?: boolean;
}

/** What a transport's consumer runner calls for every message. */
export interface MessageProcessor {
  process(message: IncomingMessage): Promise<Disposition>;
  /**
   * Optional batch form for batch consumers (Kafka `eachBatch`): the same dispositions, in input
   * order, with dedupe claims for the whole batch in one store round trip and the done marks in
   * another, written before the dispositions are returned. After a `redeliver`, the later
   * messages of the same partition (or, without one, the same partition key) are redelivered
   * too without running. A message repeated within the batch (same dedupe key) runs its handler
   * once, and its copies get their dispositions in the same call (a duplicate ack once the
   * first's done mark is durable), never a redelivery for meeting the batch's own claim.
   */
  processBatch?(messages: IncomingMessage[], options?: BatchOptions): Promise<Disposition[]>;
}
