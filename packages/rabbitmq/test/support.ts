/**
 * Helpers of the RabbitMQ integration tests: a transport per test on the real broker, envelope
 * builders, a recording processor, and a raw amqplib connection to inspect queues.
 */
import { execFile } from 'node:child_process';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import type { ChannelModel, GetMessage } from 'amqplib';
import { afterAll, beforeAll } from 'vitest';
import {
  createEnvelope,
  encodeEnvelope,
  type DedupeStore,
  type Disposition,
  type EncodedMessage,
  type IncomingMessage,
  type MessageProcessor,
} from '@backtrack/core';
import {
  createRabbitTransport,
  type RabbitTransport,
  type RabbitTransportOptions,
} from '@backtrack/rabbitmq';
import { uniqueName } from '../../../test/support/services.js';

export { uniqueName };

const declared = new WeakMap<RabbitTransport, { queues: Set<string>; exchanges: Set<string> }>();

/**
 * Fast reconnects and short retry TTLs so the tests run in seconds. Every subscription's topology
 * is remembered for {@link declaredNames}, also after the subscription closed.
 */
export async function openTransport(
  url: string,
  overrides: Partial<RabbitTransportOptions> = {},
): Promise<RabbitTransport> {
  const transport = await createRabbitTransport({
    url,
    connectionName: uniqueName('bt-rabbit-test'),
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, initialMaxRetries: 2 },
    publishTimeoutMs: 20_000,
    ...overrides,
    // One retry queue and a classic dead-letter queue per subscription: every quorum queue is a
    // Raft group, and the shared test broker runs on two cores. The consumer queue stays quorum.
    consumer: {
      retryDelaysMs: [200],
      deadLetter: { queueType: 'classic' },
      shutdownTimeoutMs: 5_000,
      ...overrides.consumer,
    },
  });
  const names = { queues: new Set<string>(), exchanges: new Set<string>() };
  declared.set(transport, names);
  const subscribe = transport.subscribe.bind(transport);
  transport.subscribe = async (options) => {
    const subscription = await subscribe(options);
    for (const q of subscription.topology.topology.queues ?? []) names.queues.add(q.name);
    for (const e of subscription.topology.topology.exchanges ?? []) names.exchanges.add(e.name);
    return subscription;
  };
  return transport;
}

/** An encoded envelope of `type` v`version`. */
export function eventMessage(
  type: string,
  data: unknown,
  extra: { version?: number; id?: string; sagaid?: string; time?: string } = {},
): EncodedMessage {
  return encodeEnvelope(
    createEnvelope({
      type,
      source: '//backtrack/tests',
      schemaversion: extra.version ?? 1,
      data,
      ...(extra.id ? { id: extra.id } : {}),
      ...(extra.sagaid ? { sagaid: extra.sagaid } : {}),
      ...(extra.time ? { time: extra.time } : {}),
      producerservice: 'rabbit-tests',
      producerversion: '1.0.0',
    }),
  );
}

/** A processor that records every message and answers with `decide` (default: ack). */
export class RecordingProcessor implements MessageProcessor {
  readonly seen: IncomingMessage[] = [];
  constructor(
    private readonly decide: (
      message: IncomingMessage,
    ) => Disposition | Promise<Disposition> = () => ({
      kind: 'ack',
      outcome: 'handled',
    }),
  ) {}
  async process(message: IncomingMessage): Promise<Disposition> {
    this.seen.push(message);
    return this.decide(message);
  }
  ids(): string[] {
    return this.seen.map((m) => m.message.headers['id'] ?? '?');
  }
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A plain amqplib connection for looking into queues and cleaning up. */
export class BrokerProbe {
  private constructor(private readonly model: ChannelModel) {}

  static async open(url: string): Promise<BrokerProbe> {
    return new BrokerProbe(await amqplib.connect(url));
  }

  /** Takes (acknowledges) every message in `queue` until `count` arrived or `timeoutMs` passed. */
  async take(queue: string, count: number, timeoutMs = 15_000): Promise<GetMessage[]> {
    const channel = await this.model.createChannel();
    const out: GetMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    try {
      while (out.length < count && Date.now() < deadline) {
        const message = await channel.get(queue, { noAck: true });
        if (message) out.push(message);
        else await sleep(50);
      }
    } finally {
      await channel.close();
    }
    return out;
  }

  async messageCount(queue: string): Promise<number> {
    const channel = await this.model.createChannel();
    try {
      return (await channel.checkQueue(queue)).messageCount;
    } finally {
      await channel.close();
    }
  }

  /** Deletes queues and exchanges; ignores the ones that do not exist. */
  async remove(queues: string[], exchanges: string[]): Promise<void> {
    const channel = await this.model.createChannel();
    channel.on('error', () => undefined);
    for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
    for (const e of exchanges) await channel.deleteExchange(e).catch(() => undefined);
    await channel.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.model.close();
  }
}

/**
 * For one describe block: a transport and a broker probe, opened before its tests; after them
 * the transport closes and every queue and exchange its subscriptions declared is deleted.
 */
export function useBroker(url: string): {
  readonly transport: RabbitTransport;
  readonly probe: BrokerProbe;
} {
  const opened = {} as { transport: RabbitTransport; probe: BrokerProbe };
  beforeAll(async () => {
    opened.transport = await openTransport(url);
    opened.probe = await BrokerProbe.open(url);
  });
  afterAll(async () => {
    const names = declaredNames(opened.transport);
    await opened.transport?.close();
    await opened.probe?.remove(names.queues, names.exchanges);
    await opened.probe?.close();
  });
  return opened;
}

/** Every queue and exchange the subscriptions of `transport` declared (open or closed). */
export function declaredNames(transport: RabbitTransport): {
  queues: string[];
  exchanges: string[];
} {
  const names = declared.get(transport);
  return { queues: [...(names?.queues ?? [])], exchanges: [...(names?.exchanges ?? [])] };
}

const run = promisify(execFile);

/**
 * Closes a connection from the broker's side with `rabbitmqctl close_connection`, found by the
 * client's local port. Returns false when rabbitmqctl is not usable here (then the caller drops
 * the socket instead).
 */
export async function brokerCloseConnection(localPort: number): Promise<boolean> {
  try {
    const { stdout } = await run(
      'rabbitmqctl',
      ['-q', '--no-table-headers', 'list_connections', 'pid', 'name'],
      {
        timeout: 20_000,
      },
    );
    // Lines look like `<rabbit@host.1.2345.0>\t127.0.0.1:41588 -> 127.0.0.1:5672`.
    const line = stdout.split('\n').find((l) => l.includes(`:${localPort} -> `));
    const pid = line?.split('\t')[0]?.trim();
    if (!pid) {
      console.warn(`rabbitmqctl: no connection on local port ${localPort} in: ${stdout}`);
      return false;
    }
    await run('rabbitmqctl', ['-q', 'close_connection', pid, 'backtrack test: forced close'], {
      timeout: 20_000,
    });
    return true;
  } catch (error) {
    console.warn(`rabbitmqctl is not usable here: ${String(error)}`);
    return false;
  }
}

/** The local TCP port and socket of the transport's live connection. */
export function socketOf(transport: RabbitTransport): {
  localPort: number;
  destroy: (error?: Error) => void;
} {
  const model = transport.connection.model;
  if (!model) throw new Error('not connected');
  const stream = (model.connection as unknown as { stream: Socket }).stream;
  return { localPort: stream.localPort ?? 0, destroy: (error?: Error) => stream.destroy(error) };
}

/**
 * A hand-written idempotent processor over a DedupeStore (claim, effect, complete, ack), the
 * shape of core's idempotent middleware, for tests that need "effect once" without the pipeline.
 */
export function idempotentProcessor(
  store: DedupeStore,
  scope: string,
  effect: (message: IncomingMessage) => Promise<void>,
): RecordingProcessor {
  return new RecordingProcessor(async (message) => {
    const key = `${scope}:${message.message.headers['id']}`;
    const claim = await store.claim(key, { leaseMs: 10_000 });
    if (claim.status === 'done') return { kind: 'ack', outcome: 'duplicate' };
    if (claim.status === 'in-progress') {
      return { kind: 'redeliver', reason: 'lease held', delayMs: 100, pause: false };
    }
    await effect(message);
    await store.complete(key, claim.token, { ttlMs: 600_000 });
    return { kind: 'ack', outcome: 'handled' };
  });
}
