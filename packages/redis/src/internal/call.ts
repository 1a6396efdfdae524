import { StoreUnavailableError } from '@backtrack/core';
import { classifyRedisError, redisAccessFailure, watchRedisAccess } from '../connectionErrors.js';
import { RedisCommandError } from '../errors.js';
import type { RedisClient } from './cluster.js';
import { coalesceWrites } from './coalesce.js';

const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

/** Redis error replies that mean "not now" rather than "never": retry later. */
const TRANSIENT_REPLIES = [
  'LOADING',
  'BUSY',
  'READONLY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'MASTERDOWN',
  'OOM',
  'NOREPLICAS',
];

/**
 * Runs one store operation against Redis with a deadline, and maps failures to typed errors:
 * the connection being down, closed or slow (and transient error replies) become the retriable
 * `StoreUnavailableError`; any other error reply becomes `RedisCommandError`.
 *
 * Two guards keep a consumer from hanging while Redis is away:
 * - a client known to be disconnected (status `reconnecting`, `close` or `end`) fails the call
 *   at once instead of parking it in ioredis' offline queue until the next reconnection attempt;
 *   a client still making its first connection (`wait`, `connecting`, `connect`) is waited for;
 * - every call has a deadline: even with a client that queues commands without bound
 *   (`maxRetriesPerRequest: null`), the caller gets its answer within `timeoutMs`.
 *
 * With the client given, the commands `fn` sends leave with the others of the same tick in one
 * socket write (see `coalesceWrites`).
 *
 * The calls of one tick with the same `timeoutMs` share ONE timer (see `Deadline`), so a
 * call costs a small record and one promise, not a timer, a deadline promise and a
 * `Promise.race`.
 */
export function callRedis<T>(
  store: string,
  operation: string,
  timeoutMs: number,
  fn: () => Promise<T>,
  /** When given, a known-disconnected client fails the call at once (see above). */
  redis?: { readonly status: string },
  /**
   * A client whose access failures (bad credentials, certificate) the call's failure reports,
   * without the fail-at-once of `redis` (the journal waits for a reconnection).
   */
  watch?: object,
): Promise<T> {
  if (redis !== undefined) {
    watchRedisAccess(redis);
    const denied = redisAccessFailure(redis);
    // Bad credentials or certificate: fail at once, not after a timeout.
    if (denied) return Promise.reject(denied);
    if (DISCONNECTED.has(redis.status)) {
      return Promise.reject(
        new StoreUnavailableError(
          store,
          operation,
          `${store} store unavailable (${operation}): Redis connection is ${redis.status}`,
          { details: { connectionStatus: redis.status } },
        ),
      );
    }
    coalesceWrites(redis as RedisClient);
  } else if (watch !== undefined) {
    watchRedisAccess(watch);
    coalesceWrites(watch as RedisClient);
  }
  let pending: Promise<T>;
  try {
    pending = fn();
  } catch (error) {
    return Promise.reject(failure(store, operation, error, redis ?? watch));
  }
  return new Promise<T>((resolve, reject) => {
    const call = deadlines(timeoutMs).add(store, operation, redis ?? watch, reject);
    pending.then(
      (value) => {
        if (call.settle()) resolve(value);
      },
      (error: unknown) => {
        if (call.settle()) reject(failure(store, operation, error, redis ?? watch));
      },
    );
  });
}

function failure(store: string, operation: string, error: unknown, client?: object): Error {
  return (
    classifyRedisError(error) ?? redisAccessFailure(client) ?? classify(store, operation, error)
  );
}

function classify(store: string, operation: string, error: unknown): Error {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof Error && error.name === 'ReplyError') {
    const prefix = error.message.split(' ', 1)[0] ?? '';
    if (!TRANSIENT_REPLIES.includes(prefix)) return new RedisCommandError(operation, error);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(
    store,
    operation,
    `${store} store unavailable (${operation}): ${message}`,
    {
      cause: error,
    },
  );
}

/** One call waiting for its answer, as the deadline of its tick tracks it. */
class PendingCall {
  /** The call got its answer or its timeout (whichever came first wins). */
  done = false;
  constructor(
    readonly deadline: Deadline,
    readonly store: string,
    readonly operation: string,
    /** The client whose access failure, when one is known, a timeout reports instead. */
    readonly client: object | undefined,
    public reject: ((error: unknown) => void) | undefined,
  ) {}

  /** Marks the answer as arrived; false when the deadline passed first (the answer is dropped). */
  settle(): boolean {
    if (this.done) return false;
    this.done = true;
    this.reject = undefined;
    this.deadline.settled();
    return true;
  }
}

/**
 * The one deadline of every call started in the same tick with the same timeout: ONE timer of
 * `timeoutMs`, started with the tick's first call, instead of one per call. When it fires, every
 * call of the tick still unanswered fails with the retriable `StoreUnavailableError` ("did not
 * answer within"); when the last one is answered, the timer is cleared (an idle process keeps no
 * timer and can exit). A call made later in a tick than its first shares the first's deadline:
 * early by the time the tick ran so far (well under a millisecond, or a few under heavy load),
 * never late.
 */
class Deadline {
  readonly #calls: PendingCall[] = [];
  #open = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly timeoutMs: number) {
    this.#timer = setTimeout(() => this.#fire(), timeoutMs);
  }

  add(
    store: string,
    operation: string,
    client: object | undefined,
    reject: (error: unknown) => void,
  ): PendingCall {
    const call = new PendingCall(this, store, operation, client, reject);
    this.#calls.push(call);
    this.#open++;
    return call;
  }

  settled(): void {
    if (--this.#open > 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#calls.length = 0;
    // Answered within its own tick (an answer already there): later calls of the tick start anew.
    if (open.get(this.timeoutMs) === this) open.delete(this.timeoutMs);
  }

  #fire(): void {
    this.#timer = undefined;
    if (open.get(this.timeoutMs) === this) open.delete(this.timeoutMs);
    const calls = this.#calls;
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i]!;
      if (call.done) continue;
      const reject = call.reject!;
      call.done = true;
      call.reject = undefined;
      reject(
        redisAccessFailure(call.client) ??
          new StoreUnavailableError(
            call.store,
            call.operation,
            `${call.store} store did not answer ${call.operation} within ${this.timeoutMs} ms`,
            { details: { timeoutMs: this.timeoutMs } },
          ),
      );
    }
    this.#open = 0;
    calls.length = 0;
  }
}

/** The deadlines calls of the current tick join, by timeout; emptied at the end of the tick. */
const open = new Map<number, Deadline>();

function closeTick(): void {
  open.clear();
}

function deadlines(timeoutMs: number): Deadline {
  let deadline = open.get(timeoutMs);
  if (deadline === undefined) {
    if (open.size === 0) process.nextTick(closeTick);
    deadline = new Deadline(timeoutMs);
    open.set(timeoutMs, deadline);
  }
  return deadline;
}
