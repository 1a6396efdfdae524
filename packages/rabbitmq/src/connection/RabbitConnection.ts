import { type Logger } from '@backtrack/core';
import { TransportEventEmitter } from '@backtrack/core/adapter';
import type { ConnectionOptions } from 'node:tls';
import amqplib from 'amqplib';
import type { Channel, ChannelModel, Options, RecoveringChannelModel } from 'amqplib';
import { RabbitClosedError, RabbitConfigError, RabbitConnectionError } from '../errors.js';
import { classifyRabbitError, type RabbitAccessError } from './connectionErrors.js';
import { coalesceWrites } from './coalesceWrites.js';
import { decodeContentHeadersFast } from './decodeContentHeaders.js';
import { settleWithin } from '../timeouts.js';
import { capabilitiesOf, type BrokerCapabilities } from '../topology/topology.js';

/** Reconnect backoff, handed to amqplib's opt-in connection recovery. */
export interface ReconnectOptions {
  /** First delay before reconnecting, in ms. @default 200 */
  initialDelayMs?: number;
  /** Largest delay between attempts, in ms (jitter included). @default 10_000 */
  maxDelayMs?: number;
  /** Multiplier per attempt. @default 2 */
  factor?: number;
  /** Random spread of each delay, 0 to 1. @default 0.2 */
  jitter?: number;
  /** Attempts after a connection was lost before giving up for good. @default Infinity */
  maxRetries?: number;
  /**
   * Attempts before the first connection succeeds: startup fails fast (the transport factory
   * rejects) against a broker that is not there, while a running service keeps reconnecting.
   * @default 5
   */
  initialMaxRetries?: number;
}

/** Defaults of {@link ReconnectOptions}. */
export const DEFAULT_RECONNECT_OPTIONS: Readonly<Required<ReconnectOptions>> = Object.freeze({
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  factor: 2,
  jitter: 0.2,
  maxRetries: Infinity,
  initialMaxRetries: 5,
});

/**
 * {@link ReconnectOptions} checked, with the defaults filled in (`createRabbitTransport`, the
 * `RabbitTransport` constructor and {@link RabbitConnection.open} all check them here).
 * @throws {RabbitConfigError} naming the field (`reconnect.jitter`, ...).
 */
export function resolveReconnectOptions(
  reconnect: ReconnectOptions | undefined,
): Required<ReconnectOptions> {
  const resolved = { ...DEFAULT_RECONNECT_OPTIONS, ...reconnect };
  for (const [field, value] of Object.entries(resolved)) {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RabbitConfigError(`reconnect.${field}`, 'must be a non-negative number', value);
    }
  }
  if (resolved.jitter > 1) {
    throw new RabbitConfigError('reconnect.jitter', 'must be between 0 and 1', resolved.jitter);
  }
  return resolved;
}

/** Options of {@link RabbitConnection.open}. */
export interface RabbitConnectionOptions {
  /** `amqp://user:pass@host:port/vhost` or amqplib's connect object. */
  url: string | Options.Connect;
  /** Shown in the management UI and `rabbitmqctl list_connections`. @default 'backtrack' */
  connectionName?: string;
  /**
   * AMQP heartbeat, in seconds: a connection that died silently (no reset, no FIN) is noticed
   * after two to three of these. A `heartbeat` already in the URL wins. `0` disables heartbeats.
   * @default 10
   */
  heartbeatSeconds?: number;
  reconnect?: ReconnectOptions;
  /**
   * TLS options for `amqps://` URLs (Node's `tls.connect` options): `ca` for a private CA,
   * `cert` and `key` for client certificates (mTLS), `servername`. Certificates are verified
   * unless you set `rejectUnauthorized: false`.
   */
  tls?: ConnectionOptions;
  /**
   * Socket options handed to amqplib (and on to `tls.connect` for an `amqps://` URL): `ca` of a
   * private CA, `cert` and `key` for mutual TLS, `servername`. Verification stays on unless
   * `rejectUnauthorized: false` is given. Same shape as `tls`; when both are given, `tls` wins.
   */
  socketOptions?: ConnectionOptions;
}

/**
 * Runs on every (re)connect, in registration order, before the connection is handed out. A hook
 * that throws makes the attempt fail: the connection is closed and another attempt scheduled.
 */
export type SetupHook = (model: ChannelModel, capabilities: BrokerCapabilities) => Promise<void>;

/**
 * The order setup hooks run in after a (re)connect: topology first (so re-sent messages find
 * their exchanges and queues), then the publisher (re-sends unconfirmed messages), then the
 * consumers.
 */
export const SETUP_PHASES = { topology: 0, publisher: 1, consumers: 2 } as const;
/** One of the keys of {@link SETUP_PHASES}. */
export type SetupPhase = keyof typeof SETUP_PHASES;

interface HookEntry {
  name: string;
  phase: SetupPhase;
  hook: SetupHook;
}

/**
 * One AMQP connection with automatic recovery (amqplib's `recovery` option: exponential backoff
 * with jitter). Components register {@link SetupHook}s that re-create what lives on the
 * connection (topology, the publisher's confirm channel, consumers) every time it comes back.
 */
export class RabbitConnection {
  readonly #recovering: RecoveringChannelModel;
  readonly #logger: Logger;
  readonly #hooks: HookEntry[];
  #model: ChannelModel | undefined;
  #capabilities: BrokerCapabilities = capabilitiesOf(undefined);
  #closed = false;
  #waiters: Array<{ resolve: (model: ChannelModel) => void; reject: (error: Error) => void }> = [];
  #failure: Error | undefined;
  #connects = 0;
  #disconnectedAt: number | undefined;
  /** Consecutive restarts of each subscription's consumer (by queue), for `consumer.crashed`. */
  readonly #consumerRestarts = new Map<string, number>();
  /**
   * Connection and consumer events (`connection.blocked`, `.unblocked`, `.disconnected`,
   * `.reconnected`, `consumer.crashed`); `RabbitTransport.on` subscribes here.
   */
  readonly events: TransportEventEmitter;
  #onDenied: ((error: RabbitAccessError) => void) | undefined;

  private constructor(recovering: RecoveringChannelModel, hooks: HookEntry[], logger: Logger) {
    this.#recovering = recovering;
    this.#hooks = hooks;
    this.#logger = logger;
    this.events = new TransportEventEmitter('rabbitmq', logger);
  }

  /**
   * Connects (retrying `reconnect.initialMaxRetries` times) and keeps the connection up.
   * @throws {RabbitConnectionError} when the first connection cannot be made.
   */
  static async open(options: RabbitConnectionOptions, logger: Logger): Promise<RabbitConnection> {
    const reconnect = resolveReconnectOptions(options.reconnect);
    const hooks: HookEntry[] = [];
    const holder: { self?: RabbitConnection } = {};
    const setup = async (model: ChannelModel): Promise<void> => {
      // amqplib binds its own listeners only after setup: without this an error during setup
      // would be an unhandled 'error' event.
      model.on('error', (error: Error) => logger.warn({ err: error }, 'amqp connection error'));
      // The frames sent in one turn (publishes, acks) go to the socket in one write.
      coalesceWrites(model.connection);
      // The content headers of deliveries are decoded reusing the strings of the previous ones.
      decodeContentHeadersFast(model.connection);
      const capabilities = capabilitiesOf(
        String(
          (model.connection.serverProperties as unknown as Record<string, unknown>)['version'] ??
            '',
        ),
      );
      const self = holder.self;
      if (self) {
        self.#model = model;
        self.#capabilities = capabilities;
      }
      for (const { name, hook } of [...hooks]) {
        try {
          await hook(model, capabilities);
        } catch (error) {
          logger.error({ err: error, hook: name }, 'amqp setup after (re)connect failed');
          throw error;
        }
      }
    };
    const socketOptions = {
      ...options.socketOptions,
      ...options.tls,
      clientProperties: { connection_name: options.connectionName ?? 'backtrack' },
      recovery: {
        initialDelay: reconnect.initialDelayMs,
        maxDelay: reconnect.maxDelayMs,
        factor: reconnect.factor,
        jitter: reconnect.jitter,
        maxRetries: reconnect.maxRetries,
        initialMaxRetries: reconnect.initialMaxRetries,
        waitForConnect: false,
        setup,
      },
    };
    const url = withHeartbeat(options.url, options.heartbeatSeconds ?? 10);
    const recovering = await amqplib.connect(url, socketOptions);
    const connection = new RabbitConnection(recovering, hooks, logger);
    holder.self = connection;
    connection.#listen();
    try {
      await Promise.race([recovering.waitForConnect(), connection.#denied()]);
    } catch (cause) {
      await recovering.close().catch(() => undefined);
      const denied = classifyRabbitError(cause);
      if (denied) throw denied;
      throw new RabbitConnectionError(
        `could not connect to RabbitMQ after ${reconnect.initialMaxRetries} retries: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause },
      );
    }
    return connection;
  }

  /** Rejects at the first attempt refused for good (credentials, permissions, certificate). */
  #denied(): Promise<never> {
    return new Promise((_, reject) => (this.#onDenied = reject));
  }

  #listen(): void {
    const r = this.#recovering;
    r.on('error', (error: Error) => this.#logger.warn({ err: error }, 'amqp connection error'));
    r.on('connect', (model: ChannelModel) => {
      this.#model = model;
      this.#connects += 1;
      this.#logger.info(
        { connects: this.#connects, broker: this.#capabilities.version },
        this.#connects === 1 ? 'amqp connected' : 'amqp reconnected',
      );
      for (const waiter of this.#waiters.splice(0)) waiter.resolve(model);
      if (this.#connects > 1) {
        const since = this.#disconnectedAt;
        this.#disconnectedAt = undefined;
        this.events.emit('connection.reconnected', {
          connects: this.#connects,
          ...(since === undefined ? {} : { downtimeMs: Date.now() - since }),
        });
      }
    });
    r.on('disconnect', (error: Error) => {
      this.#model = undefined;
      this.#logger.warn({ err: error }, 'amqp connection lost; reconnecting');
      this.#disconnectedAt ??= Date.now();
      this.events.emit('connection.disconnected', { error, reconnecting: !this.#closed });
    });
    r.on('connect-failed', (error: Error) => {
      this.#model = undefined;
      const denied = classifyRabbitError(error);
      if (denied) {
        // Reconnecting cannot fix it: stop, and fail whoever waits for the connection.
        this.#failure = denied;
        this.#logger.error({ err: denied }, 'amqp connection refused; not reconnecting');
        this.#onDenied?.(denied);
        for (const waiter of this.#waiters.splice(0)) waiter.reject(denied);
        void r.close().catch(() => undefined);
        return;
      }
      this.#logger.warn({ err: error }, 'amqp connection attempt failed');
    });
    r.on('reconnect-scheduled', (info: { attempt: number; delay: number }) =>
      this.#logger.info({ attempt: info.attempt, delayMs: info.delay }, 'amqp reconnect scheduled'),
    );
    r.on('reconnect-failed', (error: Error) => {
      this.#failure = new RabbitConnectionError(
        `gave up reconnecting to RabbitMQ: ${error.message}`,
        {
          cause: error,
        },
      );
      this.#logger.error({ err: error }, 'amqp reconnect failed for good');
      this.events.emit('connection.disconnected', { error: this.#failure, reconnecting: false });
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure);
    });
    r.on('blocked', (reason: string) => {
      this.#logger.warn({ reason }, 'amqp connection blocked');
      this.events.emit('connection.blocked', { reason: String(reason) });
    });
    r.on('unblocked', () => {
      this.#logger.info('amqp connection unblocked');
      this.events.emit('connection.unblocked', {});
    });
  }

  /**
   * A subscription's consumer stopped (its channel closed, the broker cancelled it, or attaching
   * it failed) and is re-attached after `retryInMs`: emits `consumer.crashed`.
   */
  consumerCrashed(queue: string, error: unknown, retryInMs: number): void {
    if (!this.events.listens('consumer.crashed')) return;
    // A lost connection closes every channel just before amqplib reports the disconnect: wait a
    // turn, and leave that case to `connection.disconnected` (the reconnect re-attaches them).
    setImmediate(() => {
      if (this.#model === undefined || this.#closed) return;
      const attempt = (this.#consumerRestarts.get(queue) ?? 0) + 1;
      this.#consumerRestarts.set(queue, attempt);
      this.events.emit('consumer.crashed', {
        group: queue,
        error,
        restarting: false,
        attempt,
        retryInMs,
      });
    });
  }

  /** A subscription's consumer is attached: its next crash is attempt 1 again. */
  consumerStarted(queue: string): void {
    this.#consumerRestarts.delete(queue);
  }

  /** The live amqplib connection, if connected (diagnostics and tests). */
  get model(): ChannelModel | undefined {
    return this.#model;
  }

  /** What the broker supports (from its version). */
  get capabilities(): BrokerCapabilities {
    return this.#capabilities;
  }

  /** How many times the connection was established (1 after the first connect). */
  get connects(): number {
    return this.#connects;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Registers a hook run on every future (re)connect, in `phase` order (registration order within
   * a phase). The caller runs it itself for the current connection. Returns a function that
   * unregisters it.
   */
  addSetupHook(name: string, hook: SetupHook, phase: SetupPhase = 'consumers'): () => void {
    const entry: HookEntry = { name, phase, hook };
    let i = this.#hooks.length;
    while (i > 0 && SETUP_PHASES[this.#hooks[i - 1]!.phase] > SETUP_PHASES[phase]) i -= 1;
    this.#hooks.splice(i, 0, entry);
    return () => {
      const i = this.#hooks.indexOf(entry);
      if (i >= 0) this.#hooks.splice(i, 1);
    };
  }

  /** Resolves with the live connection, waiting for a reconnect when there is none. */
  waitForModel(): Promise<ChannelModel> {
    if (this.#closed) return Promise.reject(new RabbitClosedError('the RabbitMQ connection'));
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#model) return Promise.resolve(this.#model);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Runs `fn` on a fresh channel of the live connection and closes the channel after. Declaring
   * topology uses its own channel because a failed declaration closes the channel it ran on.
   */
  async withChannel<T>(fn: (channel: Channel, model: ChannelModel) => Promise<T>): Promise<T> {
    const model = await this.waitForModel();
    const channel = await model.createChannel();
    channel.on('error', (error: Error) =>
      this.#logger.debug({ err: error }, 'amqp utility channel closed by the broker'),
    );
    try {
      return await fn(channel, model);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Closes the connection; no reconnect follows. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new RabbitClosedError('the RabbitMQ connection'));
    }
    const model = this.#model;
    this.#model = undefined;
    const done = await settleWithin(
      this.#recovering.close().then(() => true),
      5_000,
    );
    if (!done && model) {
      // The broker never answered the close (the connection died silently): drop the socket.
      (model.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
    }
  }
}

/** Puts the heartbeat into the URL (amqplib reads it from there, not from the socket options). */
function withHeartbeat(url: string | Options.Connect, seconds: number): string | Options.Connect {
  if (typeof url !== 'string')
    return url.heartbeat === undefined ? { ...url, heartbeat: seconds } : url;
  try {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat'))
      parsed.searchParams.set('heartbeat', String(seconds));
    return parsed.toString();
  } catch {
    return url;
  }
}
