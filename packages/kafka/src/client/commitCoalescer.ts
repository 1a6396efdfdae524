/** The offsets of one commit request: per topic, the partitions and their next offsets. */
export type CommitTopics = { topic: string; partitions: { partition: number; offset: string }[] }[];

interface PendingCommit {
  topic: string;
  partition: number;
  offset: string;
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

/**
 * Coalesces the offset commits of the partitions a consumer processes at once into as few
 * OffsetCommit requests as possible: when none is in flight, a commit goes out after the current
 * event-loop turn (`setImmediate`), together with the commits of the other partitions whose
 * batches ended in the same turn; the commits asked for while one is in flight travel together
 * in the next request. Each caller
 * still resolves only when the request carrying its offset was acknowledged (and rejects with
 * its error), so a batch returns after its commit, exactly as before.
 *
 * Why: the broker handles the requests of one connection one at a time, so the eight commits
 * of eight partitions finishing together used to wait for each other (eight round trips in a
 * row, each batch's `eachBatch` held until its own came back, and the next fetch waiting for
 * all of them). Waiting for the end of the turn instead of sending the first commit alone: 696 ->
 * 486 OffsetCommit requests per 2,000 orders of the order-saga load driver (bench/README.md,
 * session 8); it delays a commit by one turn, not by a timer, so the redelivery bound (at most
 * the batches since the last acknowledged commit) does not change.
 *
 * With `intervalMs` > 0 a request goes out at most once per interval (the first at once): the
 * commits asked for meanwhile wait and travel together. Each OffsetCommit costs the broker about
 * as much CPU as a produce request (~1 ms on the bench machine, Kafka 4.1), and a consumer of
 * eight partitions committed ~10 times a second; the price is a longer redelivery after a crash
 * (the batches of up to one interval, which the dedupe store absorbs). `flush()` sends what
 * waits at once (close, rebalance).
 */
export class CommitCoalescer {
  readonly #send: (topics: CommitTopics) => Promise<void>;
  #pending = new Map<string, PendingCommit>();
  readonly #intervalMs: number;
  readonly #now: () => number;
  #inFlight = false;
  #scheduled = false;
  /** Set while a request waits for the interval: cancels that wait. */
  #timer: NodeJS.Timeout | undefined;
  #lastSentAt = Number.NEGATIVE_INFINITY;
  /** `flush()` was called while a request was in flight: the next one goes out without waiting. */
  #urgent = false;

  constructor(
    send: (topics: CommitTopics) => Promise<void>,
    options: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.#send = send;
    this.#intervalMs = options.intervalMs ?? 0;
    this.#now = options.now ?? Date.now;
  }

  /** Sends the commits that wait for the interval now (or right after the request in flight). */
  flush(): void {
    if (this.#inFlight) {
      this.#urgent = true;
      return;
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#scheduled = false;
    }
    this.#flush();
  }

  /** Commits `offset` (the next offset to read) of `topic`/`partition`; resolves once acknowledged. */
  commit(topic: string, partition: number, offset: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const id = `${topic}\u0000${partition}`;
      const pending = this.#pending.get(id);
      // A later commit of the same partition supersedes the earlier one (same request).
      if (pending !== undefined) {
        pending.offset = offset;
        pending.waiters.push({ resolve, reject });
      } else {
        this.#pending.set(id, { topic, partition, offset, waiters: [{ resolve, reject }] });
      }
      if (!this.#inFlight && !this.#scheduled) this.#schedule();
    });
  }

  /** The next request: after this turn, and no earlier than one interval after the last. */
  #schedule(): void {
    this.#scheduled = true;
    const waitMs = this.#lastSentAt + this.#intervalMs - this.#now();
    if (waitMs > 0) this.#timer = setTimeout(this.#flushScheduled, waitMs);
    else setImmediate(this.#flushScheduled);
  }

  readonly #flushScheduled = (): void => {
    this.#scheduled = false;
    this.#timer = undefined;
    if (!this.#inFlight) this.#flush();
  };

  #flush(): void {
    if (this.#pending.size === 0) return;
    const commits = [...this.#pending.values()];
    this.#pending = new Map();
    this.#inFlight = true;
    this.#lastSentAt = this.#now();
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const { topic, partition, offset } of commits) {
      let partitions = byTopic.get(topic);
      if (partitions === undefined) byTopic.set(topic, (partitions = []));
      partitions.push({ partition, offset });
    }
    const topics: CommitTopics = [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
    let sent: Promise<void>;
    try {
      sent = this.#send(topics);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent
      .then(
        () => {
          for (const c of commits) for (const w of c.waiters) w.resolve();
        },
        (error: unknown) => {
          for (const c of commits) for (const w of c.waiters) w.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight = false;
        if (this.#urgent || this.#intervalMs <= 0) {
          this.#urgent = false;
          this.#flush();
        } else if (this.#pending.size > 0 && !this.#scheduled) {
          this.#schedule();
        }
      });
  }
}
