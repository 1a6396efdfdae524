/**
 * The two pieces a team writes around the raw clients to get Backtrack's guarantees by hand:
 *
 * - {@link Outbox}: every message is appended to the service's journal (a Redis stream, so a
 *   bad deploy's messages can be found and reversed) before it is sent; messages published
 *   while a send is in flight go out together in the next one (one XADD pipeline, one send).
 * - {@link inbox}: a consumer's batch handler. Unreadable input goes to the dead-letter topic
 *   with the reason and the original bytes; every message id is claimed in Redis first
 *   (`SET NX GET`, one pipeline per batch) so a redelivered message is handled once; messages
 *   run one after the other per key and in parallel across keys; done marks are written in one
 *   pipeline after the handlers (and the replies they sent) finished.
 */
import type { Redis } from 'ioredis';
import type { Bus, Delivery, Outgoing } from './bus.js';
import { decode, encode, TOPIC_OF, UnreadableMessage, type Message } from './messages.js';

const CLAIM_MS = 60_000;
const DONE_MS = 24 * 3_600_000;

interface Pending {
  out: Outgoing;
  message: Message;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class Outbox {
  #queue: Pending[] = [];
  #running = false;

  constructor(
    private readonly redis: Redis,
    private readonly bus: Bus,
    private readonly journalKey: string,
    /** Also send the CloudEvents binary-mode attributes as headers, with this prefix. */
    private readonly cloudEventsPrefix?: string,
  ) {}

  publish(message: Message): Promise<void> {
    return new Promise((resolve, reject) => {
      const out: Outgoing = {
        topic: TOPIC_OF[message.type],
        key: message.key,
        value: encode(message),
      };
      if (this.cloudEventsPrefix !== undefined)
        out.headers = cloudEventsHeaders(this.cloudEventsPrefix, message, this.journalKey);
      this.#queue.push({ out, message, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      try {
        const journal = this.redis.pipeline();
        for (const { out, message } of batch)
          journal.xadd(
            this.journalKey,
            '*',
            'id',
            message.id,
            'type',
            message.type,
            'key',
            message.key,
            'saga',
            message.sagaId ?? message.causationId ?? '',
            'topic',
            out.topic,
            'bytes',
            out.value,
          );
        for (const [error] of (await journal.exec()) ?? []) if (error) throw error;
        await this.bus.send(batch.map((p) => p.out));
        for (const p of batch) p.resolve();
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.#running = false;
  }
}

/**
 * What a team that also speaks CloudEvents would add (binary content mode): the attributes and
 * extensions Backtrack sends, as headers (`ce_` on Kafka, `cloudEvents_` on AMQP). The body
 * stays this saga's own JSON; only the cost of the attributes is measured with it.
 */
function cloudEventsHeaders(prefix: string, m: Message, source: string): Record<string, string> {
  return {
    [`${prefix}id`]: m.id,
    [`${prefix}source`]: `//shop/${source}`,
    [`${prefix}type`]: m.type,
    [`${prefix}specversion`]: '1.0',
    [`${prefix}schemaversion`]: '1',
    [`${prefix}time`]: new Date().toISOString(),
    ...(m.sagaId === undefined ? {} : { [`${prefix}sagaid`]: m.sagaId }),
    ...(m.causationId === undefined ? {} : { [`${prefix}causationid`]: m.causationId }),
    [`${prefix}producerversion`]: '1.0.0',
    [`${prefix}partitionkey`]: m.key,
  };
}

/** Thrown when another consumer holds a message's claim: the batch is handed again later. */
class ClaimedElsewhere extends Error {}

export function inbox(
  redis: Redis,
  bus: Bus,
  dedupePrefix: string,
  handler: (message: Message) => Promise<void> | void,
): (batch: Delivery[]) => Promise<void> {
  return async (batch) => {
    const readable: Message[] = [];
    const dead: Outgoing[] = [];
    const ids = new Set<string>();
    for (const delivery of batch) {
      try {
        const message = decode(delivery.value);
        if (ids.has(message.id)) continue; // the same message twice in one batch: once
        ids.add(message.id);
        readable.push(message);
      } catch (error) {
        if (!(error instanceof UnreadableMessage)) throw error;
        dead.push({
          topic: 'dlq',
          key: delivery.key,
          value: delivery.value,
          headers: { reason: error.message },
        });
      }
    }
    if (dead.length > 0) await bus.send(dead);
    if (readable.length === 0) return;

    const claims = redis.pipeline();
    for (const m of readable)
      claims.set(dedupePrefix + m.id, 'claimed', 'PX', CLAIM_MS, 'NX', 'GET');
    const results = (await claims.exec()) ?? [];
    const lanes = new Map<string, Message[]>();
    const claimed: Message[] = [];
    let heldElsewhere: string | undefined;
    readable.forEach((m, i) => {
      const [error, previous] = results[i] ?? [new Error('no reply')];
      if (error) throw error;
      if (previous === 'done') return; // handled before: a redelivery
      if (previous === 'claimed') {
        heldElsewhere ??= m.id;
        return;
      }
      claimed.push(m);
      const lane = lanes.get(m.key);
      if (lane === undefined) lanes.set(m.key, [m]);
      else lane.push(m);
    });
    if (heldElsewhere !== undefined) {
      // Another consumer is on one of these (or crashed holding it): hand the batch again
      // later, without keeping our own claims.
      if (claimed.length > 0) await redis.del(...claimed.map((m) => dedupePrefix + m.id));
      throw new ClaimedElsewhere(heldElsewhere);
    }
    const handled: Message[] = [];
    let failure: unknown;
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const m of lane) {
          if (failure !== undefined) return;
          try {
            await handler(m);
            handled.push(m);
          } catch (error) {
            failure ??= error;
          }
        }
      }),
    );
    // Done marks for what was handled; on a failure the claims of the rest are dropped, so the
    // batch handed again runs only those.
    const marks = redis.pipeline();
    for (const m of handled) marks.set(dedupePrefix + m.id, 'done', 'PX', DONE_MS);
    if (failure !== undefined) {
      const done = new Set(handled);
      for (const m of claimed) if (!done.has(m)) marks.del(dedupePrefix + m.id);
    }
    for (const [error] of (await marks.exec()) ?? []) if (error) throw error;
    if (failure !== undefined) throw failure;
  };
}
