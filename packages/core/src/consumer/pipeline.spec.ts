import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import type { ClaimResult, DedupeStore } from '../dedupe/DedupeStore.js';
import { encodeEnvelope } from '../envelope/codec.js';
import type { EncodedMessage } from '../envelope/types.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { StoreUnavailableError } from '../errors/StoreUnavailableError.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import type { Logger } from '../logging/logger.js';
import type { Middleware } from './context.js';
import { ConsumerSpy } from '../testing/ConsumerSpy.js';
import { ConsumerConfigError } from './errors.js';
import { idempotent } from './idempotent/idempotent.js';
import { handle, type HandlerContext } from './middleware.js';
import { createConsumerPipeline, DEFAULT_CONSUMER_OPTIONS } from './pipeline.js';
import type { IncomingMessage } from './processor.js';

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.int() }), {
    up: (v1) => ({ orderId: v1.orderId, amountCents: Math.round(v1.amount * 100) }),
    down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
  });
const OrderShipped = defineEvent('order.shipped').version(1, z.object({ orderId: z.string() }));

let sequence = 0;
function incoming(message: EncodedMessage, attempt = 1): IncomingMessage {
  return { message, attempt, origin: { transport: 'test', topic: 'orders', group: 'billing' } };
}
function v1Message(amount = 12.5, id = `m-${++sequence}`): IncomingMessage {
  return incoming(
    encodeEnvelope(
      OrderPlaced.envelope({ orderId: 'o-1', amount }, { source: '//shop', version: 1, id }),
    ),
  );
}
function v2Message(id = `m-${++sequence}`): IncomingMessage {
  return incoming(
    encodeEnvelope(
      OrderPlaced.envelope({ orderId: 'o-2', amountCents: 500 }, { source: '//shop', id }),
    ),
  );
}
const noRandom = () => 0.5;

describe('createConsumerPipeline: routing, validation and upcasting', () => {
  it('hands the handler typed data upcast to the version it asked for', async () => {
    const seen: HandlerContext<{ orderId: string; amountCents: number }>[] = [];
    const pipeline = createConsumerPipeline({
      name: 'billing',
      handlers: [handle(OrderPlaced, (ctx) => void seen.push(ctx), { version: 2 })],
    });
    expect(await pipeline.process(v1Message(12.5))).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(seen[0]?.data).toEqual({ orderId: 'o-1', amountCents: 1250 });
    expect(seen[0]?.version).toBe(2);
    expect(seen[0]?.envelope.schemaversion).toBe(1);
    expect(seen[0]?.idempotencyKey).toMatch(/^billing:%2F%2Fshop:m-/);
  });

  it('downcasts newer data for a handler that wants an older version', async () => {
    const seen: unknown[] = [];
    const pipeline = createConsumerPipeline({
      name: 'legacy',
      handlers: [handle(OrderPlaced, ({ data }) => void seen.push(data), { version: 1 })],
    });
    await pipeline.process(v2Message());
    expect(seen).toEqual([{ orderId: 'o-2', amount: 5 }]);
  });

  it('routes by type', async () => {
    const placed = vi.fn();
    const shipped = vi.fn();
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlers: [handle(OrderPlaced, placed), handle(OrderShipped, shipped)],
    });
    await pipeline.process(
      incoming(encodeEnvelope(OrderShipped.envelope({ orderId: 'o' }, { source: '//s' }))),
    );
    expect(shipped).toHaveBeenCalledTimes(1);
    expect(placed).not.toHaveBeenCalled();
  });

  it('dead-letters an unrouted type by default, and acks it with ignore', async () => {
    const shippedMessage = incoming(
      encodeEnvelope(OrderShipped.envelope({ orderId: 'o' }, { source: '//s' })),
    );
    const strict = createConsumerPipeline({
      name: 'c',
      handlers: [handle(OrderPlaced, () => undefined)],
    });
    expect(await strict.process(shippedMessage)).toMatchObject({
      kind: 'dead-letter',
      code: 'BT_ERR_CONSUMER_UNHANDLED_EVENT',
    });
    const lenient = createConsumerPipeline({
      name: 'c',
      unhandled: 'ignore',
      handlers: [handle(OrderPlaced, () => undefined)],
    });
    expect(await lenient.process(shippedMessage)).toEqual({ kind: 'ack', outcome: 'ignored' });
  });

  it.each([
    [
      'a malformed message',
      incoming({ headers: { type: 'order.placed' }, body: new Uint8Array() }),
      'BT_ERR_MALFORMED_MESSAGE',
    ],
    [
      'an unknown schema version',
      incoming({
        ...encodeEnvelope(
          OrderPlaced.envelope({ orderId: 'o', amountCents: 1 }, { source: '//s' }),
        ),
        headers: {
          ...encodeEnvelope(
            OrderPlaced.envelope({ orderId: 'o', amountCents: 1 }, { source: '//s' }),
          ).headers,
          schemaversion: '3',
        },
      }),
      'BT_ERR_SCHEMA_VERSION_UNKNOWN',
    ],
    [
      'data that fails its schema',
      incoming({
        headers: encodeEnvelope(
          OrderPlaced.envelope({ orderId: 'o', amountCents: 1 }, { source: '//s' }),
        ).headers,
        body: new TextEncoder().encode('{"orderId":42}'),
      }),
      'BT_ERR_SCHEMA_VALIDATION',
    ],
  ])('dead-letters %s at once, without calling the handler', async (_label, message, code) => {
    const handler = vi.fn();
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlers: [handle(OrderPlaced, handler)],
    });
    const disposition = await pipeline.process(message);
    expect(disposition).toMatchObject({ kind: 'dead-letter', code });
    expect((disposition as { error: BacktrackError }).error).toBeInstanceOf(BacktrackError);
    expect(handler).not.toHaveBeenCalled();
  });

  it('dead-letters an unknown type with a handler-less registry entry through validate', async () => {
    const registry = new EventRegistry([OrderPlaced]);
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, () => undefined)] },
      { registry },
    );
    expect(pipeline.routes.get('order.placed')).toBe(2);
  });

  it('dead-letters when a transform is missing for the version the handler wants', async () => {
    const UpOnly = defineEvent('up.only')
      .version(1, z.object({ a: z.string() }))
      .version(2, z.object({ renamed: z.string() }), { up: (v) => ({ renamed: v.a }) });
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlers: [handle(UpOnly, () => undefined, { version: 1 })],
    });
    const message = incoming(encodeEnvelope(UpOnly.envelope({ renamed: 'x' }, { source: '//s' })));
    expect(await pipeline.process(message)).toMatchObject({
      kind: 'dead-letter',
      code: 'BT_ERR_SCHEMA_TRANSFORM_MISSING',
    });
  });
});

describe('createConsumerPipeline: logging', () => {
  it('gives the handler a logger bound to consumer, topic, messageId, type and sagaId', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line)) },
    );
    const pipeline = createConsumerPipeline(
      {
        name: 'billing',
        handlers: [handle(OrderPlaced, ({ logger: log }) => log.info('charging'))],
      },
      { logger },
    );
    const message = incoming(
      encodeEnvelope(
        OrderPlaced.envelope(
          { orderId: 'o', amountCents: 1 },
          { source: '//s', id: 'log-1', sagaid: 'saga-9' },
        ),
      ),
    );
    await pipeline.process(message);
    expect(lines.find((l) => l.msg === 'charging')).toMatchObject({
      consumer: 'billing',
      topic: 'orders',
      attempt: 1,
      messageId: 'log-1',
      type: 'order.placed',
      schemaVersion: 2,
      sagaId: 'saga-9',
    });
  });

  it('logs a dead letter with its reason at error level', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line)) },
    );
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, () => undefined)] },
      { logger },
    );
    await pipeline.process(incoming({ headers: {}, body: new Uint8Array() }));
    expect(lines[0]).toMatchObject({
      level: 50,
      msg: 'message dead-lettered',
      disposition: { code: 'BT_ERR_MALFORMED_MESSAGE' },
    });
  });
});

describe('createConsumerPipeline: handler failures', () => {
  const failing = (error: unknown = new Error('db down')) =>
    createConsumerPipeline(
      {
        name: 'c',
        retry: { attempts: 3, initialDelayMs: 100, maxDelayMs: 1_000, jitter: 'none' },
        handlers: [
          handle(OrderPlaced, () => {
            throw error;
          }),
        ],
      },
      { random: noRandom },
    );

  it('retries with exponential backoff until the last attempt, then dead-letters', async () => {
    const pipeline = failing();
    const message = v2Message();
    expect(await pipeline.process({ ...message, attempt: 1 })).toMatchObject({
      kind: 'retry',
      delayMs: 100,
    });
    expect(await pipeline.process({ ...message, attempt: 2 })).toMatchObject({
      kind: 'retry',
      delayMs: 200,
    });
    const last = await pipeline.process({ ...message, attempt: 3 });
    expect(last).toMatchObject({ kind: 'dead-letter', code: 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED' });
    expect((last as { reason: string }).reason).toMatch(/db down/);
  });

  it('applies jitter from the injected random source', async () => {
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        retry: { attempts: 3, initialDelayMs: 1_000, jitter: 'full' },
        handlers: [
          handle(OrderPlaced, () => {
            throw new Error('x');
          }),
        ],
      },
      { random: () => 0.25 },
    );
    expect(await pipeline.process(v2Message())).toMatchObject({ kind: 'retry', delayMs: 250 });
  });

  it('dead-letters a non-retriable BacktrackError from the handler at once', async () => {
    const disposition = await failing(
      new BacktrackError('BT_ERR_APP_REFUSED', 'order is cancelled'),
    ).process(v2Message());
    expect(disposition).toMatchObject({ kind: 'dead-letter', code: 'BT_ERR_APP_REFUSED' });
  });

  it('retries a retriable BacktrackError from the handler', async () => {
    const error = new BacktrackError('BT_ERR_APP_BUSY', 'busy', { retriable: true });
    expect(await failing(error).process(v2Message())).toMatchObject({ kind: 'retry' });
  });

  it('redelivers with a pause when a store is unavailable inside the handler', async () => {
    const error = new StoreUnavailableError('redis', 'get');
    expect(await failing(error).process(v2Message())).toMatchObject({
      kind: 'redeliver',
      pause: true,
    });
  });

  it('never throws, even when the handler throws a non-Error', async () => {
    expect(await failing('a string').process(v2Message())).toMatchObject({ kind: 'retry' });
  });
});

describe('createConsumerPipeline: handler timeout', () => {
  it('abandons a hung handler after handlerTimeoutMs, aborts its signal and retries', async () => {
    let signal: AbortSignal | undefined;
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlerTimeoutMs: 20,
      handlers: [
        handle(OrderPlaced, (ctx) => {
          signal = ctx.signal;
          return new Promise(() => undefined);
        }),
      ],
    });
    const disposition = await pipeline.process(v2Message());
    expect(disposition).toMatchObject({ kind: 'retry' });
    expect((disposition as { error: BacktrackError }).error).toMatchObject({
      code: 'BT_ERR_CONSUMER_HANDLER_TIMEOUT',
      retriable: true,
    });
    expect(signal?.aborted).toBe(true);
  });

  it('stops extending the lease of an abandoned handler, so it expires instead of being released', async () => {
    const store = new InMemoryDedupeStore();
    const extend = vi.spyOn(store, 'extend');
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlerTimeoutMs: 30,
        idempotency: { leaseMs: 30 },
        handlers: [handle(OrderPlaced, () => new Promise(() => undefined))],
      },
      { dedupeStore: store },
    );
    const message = v2Message();
    expect(await pipeline.process(message)).toMatchObject({ kind: 'retry' });
    const calls = extend.mock.calls.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(extend.mock.calls.length).toBe(calls);
    // The zombie never released the claim; its lease has expired, so the retry can claim.
    expect(store.size).toBe(0);
  });

  it('in a batch, stops extending the lease of an abandoned handler while the rest of the batch runs', async () => {
    const store = new InMemoryDedupeStore();
    const extend = vi.spyOn(store, 'extend');
    let abortedAt: number | undefined;
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlerTimeoutMs: 30,
        idempotency: { leaseMs: 30 },
        handlers: [
          handle(OrderPlaced, ({ envelope, signal }) =>
            envelope.id === 'hung'
              ? new Promise(() => {
                  signal.addEventListener('abort', () => (abortedAt = extend.mock.calls.length));
                })
              : new Promise((r) => setTimeout(r, 25)),
          ),
        ],
      },
      { dedupeStore: store },
    );
    // Different record keys: the hung handler and the slow ones run in different lanes.
    const keyed = (message: IncomingMessage, key: string): IncomingMessage => ({
      ...message,
      origin: { ...message.origin, key },
    });
    const batch = [
      keyed(v2Message('hung'), 'a'),
      keyed(v2Message('slow-1'), 'b'),
      keyed(v2Message('slow-2'), 'b'),
      keyed(v2Message('slow-3'), 'b'),
    ];
    const dispositions = await pipeline.processBatch(batch);
    expect(dispositions[0]).toMatchObject({ kind: 'retry' });
    expect(dispositions.slice(1)).toEqual(Array(3).fill({ kind: 'ack', outcome: 'handled' }));
    // The slow lane ran ~75 ms and the keeper extended its leases every 10 ms after the hung
    // handler's timeout (30 ms), but never the hung message's lease.
    expect(abortedAt).toBeDefined();
    const after = extend.mock.calls.slice(abortedAt).map(([key]) => key);
    expect(after.some((key) => key.endsWith(':slow-3'))).toBe(true);
    expect(after.filter((key) => key.endsWith(':hung'))).toEqual([]);
  });

  it('leaves a handler that finishes in time alone', async () => {
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlerTimeoutMs: 1_000,
      handlers: [handle(OrderPlaced, async () => undefined)],
    });
    expect(await pipeline.process(v2Message())).toEqual({ kind: 'ack', outcome: 'handled' });
  });
});

describe('createConsumerPipeline: user middleware', () => {
  it('runs user middleware in order around the handler, with the decoded envelope', async () => {
    const calls: string[] = [];
    const tracing: Middleware = async (ctx, next) => {
      calls.push(`trace:before:${ctx.envelope?.type}:${JSON.stringify(ctx.data)}`);
      await next();
      calls.push(`trace:after:${ctx.handled}`);
    };
    const metrics: Middleware = async (_ctx, next) => {
      calls.push('metrics');
      await next();
    };
    const pipeline = createConsumerPipeline({
      name: 'c',
      middleware: [tracing, metrics],
      handlers: [handle(OrderPlaced, () => void calls.push('handler'))],
    });
    await pipeline.process(v1Message(1));
    expect(calls).toEqual([
      'trace:before:order.placed:{"orderId":"o-1","amountCents":100}',
      'metrics',
      'handler',
      'trace:after:true',
    ]);
  });

  it('lets a middleware decide the outcome (auth check dead-letters)', async () => {
    const handler = vi.fn();
    const auth: Middleware = (ctx) => {
      if (ctx.envelope?.source !== '//trusted') ctx.deadLetter('untrusted source', 'APP_UNTRUSTED');
    };
    const pipeline = createConsumerPipeline({
      name: 'c',
      middleware: [auth],
      handlers: [handle(OrderPlaced, handler)],
    });
    expect(await pipeline.process(v2Message())).toMatchObject({
      kind: 'dead-letter',
      code: 'APP_UNTRUSTED',
    });
    expect(handler).not.toHaveBeenCalled();
  });

  it('acks as ignored when a middleware swallows the message without a decision', async () => {
    const pipeline = createConsumerPipeline({
      name: 'c',
      middleware: [() => undefined],
      handlers: [handle(OrderPlaced, () => undefined)],
    });
    expect(await pipeline.process(v2Message())).toEqual({ kind: 'ack', outcome: 'ignored' });
  });

  it('treats an error thrown by user middleware like a handler error', async () => {
    const pipeline = createConsumerPipeline({
      name: 'c',
      middleware: [
        () => {
          throw new Error('tracer crashed');
        },
      ],
      handlers: [handle(OrderPlaced, () => undefined)],
    });
    expect(await pipeline.process(v2Message())).toMatchObject({ kind: 'retry' });
  });
});

describe('createConsumerPipeline: idempotent step', () => {
  function build(
    store: DedupeStore,
    handler: (ctx: HandlerContext<unknown>) => unknown = vi.fn(),
    options = {},
  ) {
    return createConsumerPipeline(
      {
        name: 'billing',
        handlers: [handle(OrderPlaced, handler)],
        idempotency: { leaseMs: 1_000, ...options },
      },
      { dedupeStore: store },
    );
  }

  it('runs the handler once for a duplicate and acks the duplicate', async () => {
    const store = new InMemoryDedupeStore();
    const handler = vi.fn();
    const pipeline = build(store, handler);
    const message = v2Message();
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler.mock.calls[0]?.[0].idempotencyKey).toMatch(/^billing:%2F%2Fshop:m-/);
    expect(handler.mock.calls[0]?.[0].dedupe).toMatchObject({ status: 'claimed' });
  });

  it('scopes keys by consumer name: two consumers each handle the event once', async () => {
    const store = new InMemoryDedupeStore();
    const a = vi.fn();
    const b = vi.fn();
    const message = v2Message();
    await createConsumerPipeline(
      { name: 'a', handlers: [handle(OrderPlaced, a)] },
      { dedupeStore: store },
    ).process(message);
    await createConsumerPipeline(
      { name: 'b', handlers: [handle(OrderPlaced, b)] },
      { dedupeStore: store },
    ).process(message);
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(1);
  });

  it('redelivers without a pause while another consumer holds the lease', async () => {
    const store = new InMemoryDedupeStore();
    const message = v2Message();
    let release!: () => void;
    const slow = build(store, () => new Promise<void>((resolve) => (release = resolve)));
    const running = slow.process(message);
    await vi.waitFor(() => expect(release).toBeDefined());
    const other = build(store);
    expect(await other.process(message)).toMatchObject({
      kind: 'redeliver',
      pause: false,
      delayMs: 1_000,
    });
    release();
    expect(await running).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await other.process(message)).toEqual({ kind: 'ack', outcome: 'duplicate' });
  });

  it('releases the claim when the handler fails, so the retry runs it', async () => {
    const store = new InMemoryDedupeStore();
    let calls = 0;
    const pipeline = build(store, () => {
      calls += 1;
      if (calls === 1) throw new Error('first try fails');
    });
    const message = v2Message();
    expect(await pipeline.process(message)).toMatchObject({ kind: 'retry' });
    expect(await pipeline.process({ ...message, attempt: 2 })).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(calls).toBe(2);
  });

  it('runs the handler again after a crash once the lease expires', async () => {
    let now = 1_000;
    const store = new InMemoryDedupeStore({ now: () => now });
    const message = v2Message();
    // A consumer claimed the key and died: nothing completes or releases it.
    const key = `billing:%2F%2Fshop:${(await import('../envelope/codec.js')).decodeEnvelope(message.message).id}`;
    expect((await store.claim(key, { leaseMs: 1_000 })).status).toBe('claimed');
    const handler = vi.fn();
    const pipeline = build(store, handler);
    expect(await pipeline.process(message)).toMatchObject({ kind: 'redeliver', pause: false });
    now += 1_001;
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it('redelivers with a pause, without calling the handler, when the store is down', async () => {
    const down: DedupeStore = {
      claim: () => Promise.reject(new StoreUnavailableError('redis', 'claim')),
      claimMany: () => Promise.reject(new StoreUnavailableError('redis', 'claimMany')),
      complete: () => Promise.resolve(true),
      completeMany: (entries) => Promise.resolve(entries.map(() => true)),
      release: () => Promise.resolve(true),
      extend: () => Promise.resolve(true),
    };
    const handler = vi.fn();
    expect(await build(down, handler).process(v2Message())).toMatchObject({
      kind: 'redeliver',
      pause: true,
      delayMs: 5_000,
    });
    expect(handler).not.toHaveBeenCalled();
  });

  it('treats a plain Error from the store as unavailable (pause), not as a handler failure', async () => {
    const store = new InMemoryDedupeStore();
    vi.spyOn(store, 'claim').mockRejectedValue(new Error('ECONNRESET'));
    expect(await build(store).process(v2Message())).toMatchObject({
      kind: 'redeliver',
      pause: true,
    });
  });

  it('does not ack when the done mark cannot be stored after the handler ran', async () => {
    const store = new InMemoryDedupeStore();
    vi.spyOn(store, 'complete').mockRejectedValue(new StoreUnavailableError('redis', 'complete'));
    const handler = vi.fn();
    expect(await build(store, handler).process(v2Message())).toMatchObject({
      kind: 'redeliver',
      pause: true,
    });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it('stores the handler result with the done mark and shows it to duplicates', async () => {
    const store = new InMemoryDedupeStore();
    const seen: unknown[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        middleware: [
          async (ctx, next) => {
            await next();
            seen.push(ctx.dedupe);
          },
        ],
        handlers: [handle(OrderPlaced, () => 'invoice-7')],
      },
      { dedupeStore: store },
    );
    const message = v2Message();
    await pipeline.process(message);
    await pipeline.process(message);
    expect(seen[1]).toMatchObject({ status: 'done', result: 'invoice-7' });
  });

  it('derives the key from the data when asked', async () => {
    const store = new InMemoryDedupeStore();
    const handler = vi.fn();
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, handler)],
        idempotency: { key: (ctx) => (ctx.data as { orderId: string }).orderId },
      },
      { dedupeStore: store },
    );
    // Two different messages about the same order: handled once.
    await pipeline.process(v2Message());
    expect(await pipeline.process(v2Message())).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler.mock.calls[0]?.[0].idempotencyKey).toBe('c:key:o-2');
  });

  it('dead-letters when the key function throws', async () => {
    const store = new InMemoryDedupeStore();
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, () => undefined)],
        idempotency: {
          key: () => {
            throw new Error('no id');
          },
        },
      },
      { dedupeStore: store },
    );
    expect(await pipeline.process(v2Message())).toMatchObject({
      kind: 'dead-letter',
      code: 'BT_ERR_IDEMPOTENCY_KEY_INVALID',
    });
  });

  it('does not touch the store for an event no handler routes', async () => {
    const store = new InMemoryDedupeStore();
    const claim = vi
      .spyOn(store, 'claim')
      .mockRejectedValue(new StoreUnavailableError('redis', 'claim'));
    const pipeline = createConsumerPipeline(
      { name: 'c', unhandled: 'ignore', handlers: [handle(OrderShipped, () => undefined)] },
      { dedupeStore: store },
    );
    expect(await pipeline.process(v2Message())).toEqual({ kind: 'ack', outcome: 'ignored' });
    expect(claim).not.toHaveBeenCalled();
  });

  it('does not mark a dead-lettered or unhandled message done', async () => {
    const store = new InMemoryDedupeStore();
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [
          handle(OrderPlaced, () => {
            throw new BacktrackError('BT_ERR_APP', 'no');
          }),
        ],
      },
      { dedupeStore: store },
    );
    await pipeline.process(v2Message());
    expect(store.size).toBe(0);
  });

  it('extends the lease while a long handler runs', async () => {
    vi.useFakeTimers();
    try {
      const store = new InMemoryDedupeStore();
      const extend = vi.spyOn(store, 'extend');
      let finish!: () => void;
      const pipeline = build(store, () => new Promise<void>((resolve) => (finish = resolve)), {
        leaseMs: 300,
      });
      const running = pipeline.process(v2Message());
      await vi.advanceTimersByTimeAsync(650);
      expect(extend.mock.calls.length).toBeGreaterThanOrEqual(5);
      finish();
      expect(await running).toEqual({ kind: 'ack', outcome: 'handled' });
      const count = extend.mock.calls.length;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(extend.mock.calls.length).toBe(count);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('createConsumerPipeline: processBatch', () => {
  it('claims every distinct key in one round trip and keeps input order', async () => {
    const store = new InMemoryDedupeStore();
    const claimMany = vi.spyOn(store, 'claimMany');
    const claim = vi.spyOn(store, 'claim');
    const order: string[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, ({ envelope }) => void order.push(envelope.id))],
      },
      { dedupeStore: store },
    );
    const a = v2Message('a');
    const b = v1Message(1, 'b');
    const bad = incoming({ headers: {}, body: new Uint8Array() });
    const dispositions = await pipeline.processBatch([a, b, bad, a]);
    expect(claimMany).toHaveBeenCalledTimes(1);
    // `a` twice in the batch: its key is claimed once, and the copy is absorbed in this batch.
    expect(claimMany.mock.calls[0]?.[0]).toHaveLength(2);
    expect(claim).not.toHaveBeenCalled();
    expect(order).toEqual(['a', 'b']);
    expect(dispositions).toEqual([
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'handled' },
      expect.objectContaining({ kind: 'dead-letter' }),
      { kind: 'ack', outcome: 'duplicate' },
    ]);
  });

  it('redelivers the whole batch with a pause when claimMany fails', async () => {
    const store = new InMemoryDedupeStore();
    vi.spyOn(store, 'claimMany').mockRejectedValue(new StoreUnavailableError('redis', 'claimMany'));
    const handler = vi.fn();
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, handler)] },
      { dedupeStore: store },
    );
    const dispositions = await pipeline.processBatch([v2Message(), v2Message()]);
    expect(dispositions).toEqual([
      expect.objectContaining({ kind: 'redeliver', pause: true }),
      expect.objectContaining({ kind: 'redeliver', pause: true }),
    ]);
    expect(handler).not.toHaveBeenCalled();
  });

  it('releases a batch claim a middleware never used', async () => {
    const store = new InMemoryDedupeStore();
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        middleware: [(ctx) => ctx.ack('ignored')],
        handlers: [handle(OrderPlaced, () => undefined)],
      },
      { dedupeStore: store },
    );
    await pipeline.processBatch([v2Message()]);
    expect(store.size).toBe(0);
  });

  function onPartition(message: IncomingMessage, partition: number | undefined, offset = 0) {
    return {
      ...message,
      origin: {
        ...message.origin,
        ...(partition === undefined ? {} : { partition, offset: String(offset) }),
      },
    };
  }
  function keyed(id: string, partitionkey: string): IncomingMessage {
    return incoming(
      encodeEnvelope(
        OrderPlaced.envelope(
          { orderId: 'o-k', amountCents: 1 },
          { source: '//shop', id, partitionkey },
        ),
      ),
    );
  }

  it('runs nothing later of a partition after a redeliver in that batch, and frees its claims', async () => {
    const store = new InMemoryDedupeStore();
    const seen: string[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, ({ envelope }) => void seen.push(envelope.id))],
      },
      { dedupeStore: store },
    );
    // Another consumer holds the lease of p0-a: it is redelivered.
    expect((await store.claim('c:%2F%2Fshop:p0-a', { leaseMs: 60_000 })).status).toBe('claimed');
    const batch = [
      onPartition(v2Message('p0-a'), 0, 1),
      onPartition(v2Message('p1-a'), 1, 1),
      onPartition(v2Message('p0-b'), 0, 2),
      onPartition(v2Message('p0-c'), 0, 3),
      onPartition(v2Message('p1-b'), 1, 2),
    ];
    const dispositions = await pipeline.processBatch(batch);
    expect(dispositions.map((d) => d.kind)).toEqual([
      'redeliver',
      'ack',
      'redeliver',
      'redeliver',
      'ack',
    ]);
    // A lease held elsewhere is no outage: nothing pauses.
    expect(dispositions.some((d) => d.kind === 'redeliver' && d.pause)).toBe(false);
    expect(seen).toEqual(['p1-a', 'p1-b']);
    // The held-back messages' batch claims are released: their redelivery runs at once.
    expect((await store.claim('c:%2F%2Fshop:p0-b', { leaseMs: 1_000 })).status).toBe('claimed');
    expect((await store.claim('c:%2F%2Fshop:p0-c', { leaseMs: 1_000 })).status).toBe('claimed');
  });

  it('runs no handler after the first record of a partition is redelivered: one successful run per record', async () => {
    const store = new InMemoryDedupeStore();
    let calls = 0;
    let down = true;
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [
          handle(OrderPlaced, () => {
            calls += 1;
            if (down) {
              down = false;
              throw new StoreUnavailableError('ledger', 'write');
            }
          }),
        ],
      },
      { dedupeStore: store },
    );
    const batch = [
      onPartition(v2Message(), 0, 1),
      onPartition(v2Message(), 0, 2),
      onPartition(v2Message(), 0, 3),
    ];
    const first = await pipeline.processBatch(batch);
    expect(first.map((d) => d.kind)).toEqual(['redeliver', 'redeliver', 'redeliver']);
    // The store was down: the held-back records pause with the one that met the outage.
    expect(first.map((d) => d.kind === 'redeliver' && d.pause)).toEqual([true, true, true]);
    // Only the failed call ran: nothing whose result the transport throws away.
    expect(calls).toBe(1);
    // The transport rewinds to the first redeliver and delivers all three again.
    const second = await pipeline.processBatch(batch);
    expect(second.map((d) => d.kind)).toEqual(['ack', 'ack', 'ack']);
    // One failed attempt, then one successful run per record.
    expect(calls).toBe(4);
  });

  it('holds back later messages with the same key when there is no partition (RabbitMQ)', async () => {
    const store = new InMemoryDedupeStore();
    const seen: string[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, ({ envelope }) => void seen.push(envelope.id))],
      },
      { dedupeStore: store },
    );
    expect((await store.claim('c:%2F%2Fshop:k1-a', { leaseMs: 60_000 })).status).toBe('claimed');
    const dispositions = await pipeline.processBatch([
      keyed('k1-a', 'k1'),
      keyed('k2-a', 'k2'),
      keyed('k1-b', 'k1'),
    ]);
    expect(dispositions.map((d) => d.kind)).toEqual(['redeliver', 'ack', 'redeliver']);
    expect(seen).toEqual(['k2-a']);
  });

  it('holds back a partition after a retry only when the transport asks for strict order', async () => {
    let calls = 0;
    const make = () =>
      createConsumerPipeline({
        name: 'c',
        handlers: [
          handle(OrderPlaced, () => {
            calls += 1;
            if (calls === 1) throw new Error('boom');
          }),
        ],
      });
    const batch = [onPartition(v2Message(), 0, 1), onPartition(v2Message(), 0, 2)];
    expect((await make().processBatch(batch)).map((d) => d.kind)).toEqual(['retry', 'ack']);
    calls = 0;
    expect((await make().processBatch(batch, { holdAfterRetry: true })).map((d) => d.kind)).toEqual(
      ['retry', 'redeliver'],
    );
    expect(calls).toBe(1);
  });

  it('keeps pre-claimed leases alive through a long batch: a slow handler late in 50 runs once', async () => {
    vi.useFakeTimers();
    try {
      const store = new InMemoryDedupeStore({ now: () => Date.now() });
      const runs = new Map<string, number>();
      let competitor: ClaimResult['status'] | undefined;
      const pipeline = createConsumerPipeline(
        {
          name: 'c',
          handlers: [
            handle(OrderPlaced, async ({ envelope }) => {
              runs.set(envelope.id, (runs.get(envelope.id) ?? 0) + 1);
              if (envelope.id === 'long-30') {
                // Another consumer meets the last message now (its redelivery, a rebalance).
                const claim = await store.claim('c:%2F%2Fshop:long-49', { leaseMs: 300 });
                competitor = claim.status;
                if (claim.status === 'claimed') {
                  runs.set('long-49', (runs.get('long-49') ?? 0) + 1);
                  await store.complete('c:%2F%2Fshop:long-49', claim.token, { ttlMs: 60_000 });
                }
              }
              await new Promise((resolve) => setTimeout(resolve, 100));
            }),
          ],
          idempotency: { leaseMs: 300 },
        },
        { dedupeStore: store },
      );
      const batch = Array.from({ length: 50 }, (_, i) => onPartition(v2Message(`long-${i}`), 0, i));
      const running = pipeline.processBatch(batch);
      await vi.advanceTimersByTimeAsync(6_000);
      const dispositions = await running;
      expect(competitor).toBe('in-progress');
      expect(runs.get('long-49')).toBe(1);
      expect(dispositions.every((d) => d.kind === 'ack' && d.outcome === 'handled')).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('writes the done marks of a batch in one completeMany, after the handlers', async () => {
    const store = new InMemoryDedupeStore();
    const events: string[] = [];
    const completeMany = vi.spyOn(store, 'completeMany').mockImplementation(async (entries) => {
      events.push(`marks:${entries.length}`);
      return entries.map(() => true);
    });
    const complete = vi.spyOn(store, 'complete');
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(OrderPlaced, ({ envelope }) => void events.push(envelope.id))],
      },
      { dedupeStore: store },
    );
    const dispositions = await pipeline.processBatch([
      v2Message('d1'),
      v2Message('d2'),
      v2Message('d3'),
    ]);
    expect(dispositions).toEqual([
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'handled' },
    ]);
    expect(events).toEqual(['d1', 'd2', 'd3', 'marks:3']);
    expect(completeMany).toHaveBeenCalledTimes(1);
    expect(complete).not.toHaveBeenCalled();
  });

  it('does not ack a message whose done mark lost its lease, nor any when the flush fails', async () => {
    const store = new InMemoryDedupeStore();
    const spy = new ConsumerSpy();
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, () => undefined)] },
      { dedupeStore: store, spy },
    );
    vi.spyOn(store, 'completeMany').mockResolvedValueOnce([true, false]);
    const lost = await pipeline.processBatch([v2Message('l1'), v2Message('l2')]);
    expect(lost[0]).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(lost[1]).toMatchObject({ kind: 'redeliver', pause: false });
    expect(spy.records.at(-1)?.disposition).toMatchObject({ kind: 'redeliver' });
    vi.spyOn(store, 'completeMany').mockRejectedValueOnce(
      new StoreUnavailableError('redis', 'completeMany'),
    );
    const failed = await pipeline.processBatch([v2Message('f1'), v2Message('f2')]);
    expect(failed).toEqual([
      expect.objectContaining({ kind: 'redeliver', pause: true }),
      expect.objectContaining({ kind: 'redeliver', pause: true }),
    ]);
  });

  describe('concurrency across keys', () => {
    /** A handler whose calls wait until released, recording starts, ends and overlap. */
    function gate() {
      const started: string[] = [];
      const finished: string[] = [];
      const waiting = new Map<string, () => void>();
      let running = 0;
      let peak = 0;
      const perKey = new Map<string, number>();
      let keyOverlap = false;
      const fn = async ({ envelope }: HandlerContext<unknown>) => {
        const key = envelope.partitionkey ?? '';
        running++;
        peak = Math.max(peak, running);
        perKey.set(key, (perKey.get(key) ?? 0) + 1);
        if (perKey.get(key)! > 1) keyOverlap = true;
        started.push(envelope.id);
        await new Promise<void>((resolve) => waiting.set(envelope.id, resolve));
        perKey.set(key, perKey.get(key)! - 1);
        running--;
        finished.push(envelope.id);
      };
      /** Releases every waiting handler, turn by turn, until `done` settles. */
      async function drive<T>(done: Promise<T>): Promise<T> {
        let settled = false;
        void done.finally(() => (settled = true));
        while (!settled) {
          await new Promise((resolve) => setImmediate(resolve));
          for (const [id, release] of [...waiting]) {
            waiting.delete(id);
            release();
          }
        }
        return done;
      }
      return {
        fn,
        drive,
        started,
        finished,
        peak: () => peak,
        keyOverlap: () => keyOverlap,
        waiting,
      };
    }

    it('runs different keys at once, up to `concurrency`, and one key in input order', async () => {
      const g = gate();
      const store = new InMemoryDedupeStore();
      const completeMany = vi.spyOn(store, 'completeMany');
      const pipeline = createConsumerPipeline(
        { name: 'c', handlers: [handle(OrderPlaced, g.fn)], concurrency: 3 },
        { dedupeStore: store },
      );
      const keys = ['a', 'b', 'a', 'c', 'd', 'a', 'b', 'e'];
      const batch = keys.map((k, i) => onPartition(keyed(`${k}${i}`, k), 0, i));
      const running = pipeline.processBatch(batch);
      await new Promise((resolve) => setImmediate(resolve));
      // Three lanes started at once (a, b, c: the first three keys), none finished, no marks yet.
      expect(g.started).toEqual(['a0', 'b1', 'c3']);
      expect(completeMany).not.toHaveBeenCalled();
      const dispositions = await g.drive(running);
      expect(dispositions.every((d) => d.kind === 'ack' && d.outcome === 'handled')).toBe(true);
      expect(g.peak()).toBe(3);
      expect(g.keyOverlap()).toBe(false);
      for (const key of ['a', 'b']) {
        const own = keys.flatMap((k, i) => (k === key ? [`${k}${i}`] : []));
        expect(g.finished.filter((id) => id.startsWith(key))).toEqual(own);
      }
      // One done-mark round trip for the batch, after the last handler.
      expect(completeMany).toHaveBeenCalledTimes(1);
      expect(completeMany.mock.calls[0]?.[0]).toHaveLength(8);
    });

    it('runs the batch one by one in input order with concurrency 1', async () => {
      const g = gate();
      const pipeline = createConsumerPipeline({
        name: 'c',
        handlers: [handle(OrderPlaced, g.fn)],
        concurrency: 1,
      });
      const keys = ['a', 'b', 'a', 'c'];
      const running = pipeline.processBatch(keys.map((k, i) => keyed(`${k}${i}`, k)));
      await g.drive(running);
      expect(g.peak()).toBe(1);
      expect(g.started).toEqual(['a0', 'b1', 'a2', 'c3']);
    });

    it('returns no disposition before every handler ran and the marks are durable', async () => {
      const g = gate();
      const store = new InMemoryDedupeStore();
      let marksDone = false;
      const original = store.completeMany.bind(store);
      vi.spyOn(store, 'completeMany').mockImplementation(async (entries, options) => {
        expect(g.waiting.size).toBe(0);
        expect(g.finished).toHaveLength(4);
        const owned = await original(entries, options);
        marksDone = true;
        return owned;
      });
      const pipeline = createConsumerPipeline(
        { name: 'c', handlers: [handle(OrderPlaced, g.fn)] },
        { dedupeStore: store },
      );
      const running = pipeline.processBatch(['a', 'b', 'c', 'd'].map((k) => keyed(`${k}`, k)));
      let returned = false;
      void running.then(() => (returned = true));
      await new Promise((resolve) => setImmediate(resolve));
      expect(g.started).toHaveLength(4);
      expect(returned).toBe(false);
      await g.drive(running);
      expect(marksDone).toBe(true);
    });

    it('after a redeliver, holds back the rest of its key and the later unstarted records of its partition, not earlier ones', async () => {
      const store = new InMemoryDedupeStore();
      const seen: string[] = [];
      const pipeline = createConsumerPipeline(
        {
          name: 'c',
          handlers: [handle(OrderPlaced, ({ envelope }) => void seen.push(envelope.id))],
          concurrency: 2,
        },
        { dedupeStore: store },
      );
      // Another consumer holds the lease of a1: it is redelivered.
      expect((await store.claim('c:%2F%2Fshop:a1', { leaseMs: 60_000 })).status).toBe('claimed');
      const batch = [
        onPartition(keyed('b0', 'b'), 0, 0),
        onPartition(keyed('a1', 'a'), 0, 1),
        onPartition(keyed('a2', 'a'), 0, 2),
        onPartition(keyed('c3', 'c'), 0, 3),
        onPartition(keyed('d4', 'd'), 1, 4),
      ];
      const dispositions = await pipeline.processBatch(batch);
      expect(dispositions.map((d) => d.kind)).toEqual([
        'ack',
        'redeliver',
        'redeliver',
        'redeliver',
        'ack',
      ]);
      // c3 came after the redeliver of partition 0: the transport rewinds to a1, so it did not run.
      expect(seen.sort()).toEqual(['b0', 'd4']);
      // Their claims are released: the redelivery runs them at once.
      expect((await store.claim('c:%2F%2Fshop:a2', { leaseMs: 1_000 })).status).toBe('claimed');
      expect((await store.claim('c:%2F%2Fshop:c3', { leaseMs: 1_000 })).status).toBe('claimed');
    });

    it('a crash (a handler that never returns) leaves the whole batch unacknowledged, marks unwritten', async () => {
      const store = new InMemoryDedupeStore();
      const completeMany = vi.spyOn(store, 'completeMany');
      const pipeline = createConsumerPipeline(
        {
          name: 'c',
          handlers: [
            handle(OrderPlaced, ({ envelope }) =>
              envelope.id === 'x1' ? new Promise(() => undefined) : undefined,
            ),
          ],
        },
        { dedupeStore: store },
      );
      let returned = false;
      void pipeline
        .processBatch(['x0', 'x1', 'x2'].map((id, i) => keyed(id, `k${i}`)))
        .then(() => (returned = true));
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(returned).toBe(false);
      expect(completeMany).not.toHaveBeenCalled();
      // No done mark: a redelivery (after the leases expire) runs them again.
      // x0 ran, but its key is only leased, not done.
      expect((await store.claim('c:%2F%2Fshop:x0', { leaseMs: 1_000 })).status).toBe('in-progress');
    });

    it('keeps keyless messages without a partition in order, without holding them back', async () => {
      const store = new InMemoryDedupeStore();
      const seen: string[] = [];
      const pipeline = createConsumerPipeline(
        {
          name: 'c',
          handlers: [
            handle(OrderPlaced, async ({ envelope }) => {
              // Later messages finish sooner: only a shared lane keeps them in order.
              await new Promise((resolve) =>
                setTimeout(resolve, 12 - Number(envelope.id.slice(1))),
              );
              seen.push(envelope.id);
            }),
          ],
        },
        { dedupeStore: store },
      );
      expect((await store.claim('c:%2F%2Fshop:n1', { leaseMs: 60_000 })).status).toBe('claimed');
      const batch = ['n0', 'n1', 'n2', 'n3'].map((id) => v2Message(id));
      const dispositions = await pipeline.processBatch(batch);
      expect(dispositions.map((d) => d.kind)).toEqual(['ack', 'redeliver', 'ack', 'ack']);
      expect(seen).toEqual(['n0', 'n2', 'n3']);
    });

    it('rejects a concurrency that is not a positive integer', () => {
      expect(() => createConsumerPipeline({ name: 'c', handlers: [], concurrency: 0 })).toThrow(
        ConsumerConfigError,
      );
    });
  });

  it('processes a batch one by one without a store', async () => {
    const handler = vi.fn();
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlers: [handle(OrderPlaced, handler)],
    });
    expect((await pipeline.processBatch([v2Message(), v2Message()])).map((d) => d.kind)).toEqual([
      'ack',
      'ack',
    ]);
  });
});

describe('createContext: per-message allocations', () => {
  it('makes the AbortController only when signal is read, and an abort before that still shows', async () => {
    const { abortContext, createContext } = await import('./context.js');
    const logger = pino({ level: 'silent' });
    const untouched = createContext(v2Message(), 'c', logger);
    abortContext(untouched, new Error('timed out'));
    expect(untouched.signal.aborted).toBe(true);
    const lazy = createContext(v2Message(), 'c', logger);
    const signal = lazy.signal;
    expect(lazy.signal).toBe(signal);
    expect(signal.aborted).toBe(false);
    // Disposition methods are shared, not per-message closures.
    expect(lazy.ack).toBe(untouched.ack);
  });

  it('makes a message its child logger only when something logs for it', async () => {
    const child = vi.fn();
    const spied = (logger: Logger): Logger =>
      Object.assign(Object.create(logger) as Logger, {
        child: (...args: Parameters<Logger['child']>) => {
          child();
          return spied(logger.child(...args) as unknown as Logger);
        },
      });
    let runs = 0;
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [
          handle(OrderPlaced, (ctx) => {
            runs += 1;
            if (runs === 2) ctx.logger.info('only the second message logs');
          }),
        ],
      },
      { logger: spied(pino({ level: 'silent' }) as unknown as Logger) },
    );
    child.mockClear(); // the consumer's own child logger, made once at construction
    await pipeline.processBatch([v2Message(), v2Message(), v2Message()]);
    expect(runs).toBe(3);
    expect(child).toHaveBeenCalledTimes(1);
  });
});

describe('createConsumerPipeline: options', () => {
  it('exports frozen defaults', () => {
    expect(DEFAULT_CONSUMER_OPTIONS.unhandled).toBe('dead-letter');
    expect(DEFAULT_CONSUMER_OPTIONS.retry.attempts).toBe(5);
    expect(Object.isFrozen(DEFAULT_CONSUMER_OPTIONS.retry)).toBe(true);
  });

  it.each([
    [{ name: '' }, 'name'],
    [{ unhandled: 'drop' }, 'unhandled'],
    [{ retry: { attempts: 0 } }, 'retry.attempts'],
    [{ retry: { jitter: 'some' } }, 'retry.jitter'],
    [{ limits: { maxBytes: 0 } }, 'limits.maxBytes'],
    [{ handlers: 'x' }, 'handlers'],
    [{ handlers: [() => undefined] }, 'handlers[0]'],
    [{ middleware: [42] }, 'middleware'],
    [{ handlerTimeoutMs: 0 }, 'handlerTimeoutMs'],
    [{ idempotency: { leaseMs: 1 } }, 'dependencies.dedupeStore'],
  ])('rejects %o naming %s', (override, field) => {
    const build = () =>
      createConsumerPipeline({ name: 'c', handlers: [], ...(override as object) } as never);
    expect(build).toThrow(ConsumerConfigError);
    try {
      build();
    } catch (error) {
      expect((error as ConsumerConfigError).code).toBe('BT_ERR_CONSUMER_CONFIG_INVALID');
      expect((error as ConsumerConfigError).details.field).toBe(field);
    }
  });

  it.each([
    [{ leaseMs: 0 }, 'idempotency.leaseMs'],
    [{ ttlMs: 1.5 }, 'idempotency.ttlMs'],
    [{ extendLease: 'yes' }, 'idempotency.extendLease'],
  ])('rejects idempotency option %o naming %s', (idempotency, field) => {
    try {
      createConsumerPipeline({ name: 'c', handlers: [], idempotency } as never, {
        dedupeStore: new InMemoryDedupeStore(),
      });
      expect.unreachable();
    } catch (error) {
      expect((error as ConsumerConfigError).details.field).toBe(field);
    }
  });

  it('rejects two handlers for one type and a definition that differs from the registry', () => {
    expect(() =>
      createConsumerPipeline({
        name: 'c',
        handlers: [handle(OrderPlaced, () => undefined), handle(OrderPlaced, () => undefined)],
      }),
    ).toThrow(/second time/);
    const copy = defineEvent('order.placed').version(1, z.object({}));
    expect(() =>
      createConsumerPipeline(
        { name: 'c', handlers: [handle(copy, () => undefined)] },
        { registry: new EventRegistry([OrderPlaced]) },
      ),
    ).toThrow(/different definition/);
  });

  it('rejects handle() with an unknown version', () => {
    expect(() => handle(OrderPlaced, () => undefined, { version: 7 as 2 })).toThrow(
      ConsumerConfigError,
    );
  });
});

describe('ConsumerSpy', () => {
  it('resolves waitForMessage when the message is processed, or at once if it was', async () => {
    const spy = new ConsumerSpy();
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, () => undefined)] },
      { spy },
    );
    const message = v2Message('spy-1');
    const waiting = spy.waitForMessage('spy-1', { kind: 'ack' });
    await pipeline.process(message);
    expect((await waiting).disposition).toEqual({ kind: 'ack', outcome: 'handled' });
    expect((await spy.waitForMessage('spy-1')).type).toBe('order.placed');
    await expect(spy.waitForMessage('never', { timeoutMs: 10 })).rejects.toThrow(/not seen/);
  });
});

describe('idempotent() wrapper', () => {
  it('runs a plain function once per envelope and reports duplicates', async () => {
    const store = new InMemoryDedupeStore();
    const charge = vi.fn(
      async (
        _input: { envelope: { source: string; id: string } },
        ctx: { idempotencyKey: string },
      ) => ctx.idempotencyKey,
    );
    const once = idempotent(charge, { store, consumer: 'payments' });
    const input = { envelope: { source: '//s', id: 'e-1' } };
    expect(await once(input)).toEqual({ status: 'handled', value: 'payments:%2F%2Fs:e-1' });
    expect(await once(input)).toMatchObject({
      status: 'duplicate',
      result: 'payments:%2F%2Fs:e-1',
    });
    expect(charge).toHaveBeenCalledTimes(1);
  });

  it('uses a key function, releases on failure and rethrows', async () => {
    const store = new InMemoryDedupeStore();
    let fail = true;
    const once = idempotent(
      async (order: { id: string }) => {
        if (fail) throw new Error('nope');
        return order.id;
      },
      { store, consumer: 'c', key: (order) => order.id },
    );
    await expect(once({ id: 'o-1' })).rejects.toThrow('nope');
    fail = false;
    expect(await once({ id: 'o-1' })).toEqual({ status: 'handled', value: 'o-1' });
  });

  it('throws LeaseHeldError (retriable) while another call holds the lease', async () => {
    const store = new InMemoryDedupeStore();
    let finish!: () => void;
    const once = idempotent(() => new Promise<void>((resolve) => (finish = resolve)), {
      store,
      consumer: 'c',
      key: () => 'k',
      extendLease: false,
    });
    const first = once(undefined);
    await vi.waitFor(() => expect(finish).toBeDefined());
    await expect(once(undefined)).rejects.toMatchObject({
      code: 'BT_ERR_DEDUPE_LEASE_HELD',
      retriable: true,
    });
    finish();
    await first;
  });

  it('inside handle(): a lease held elsewhere redelivers and a duplicate acks as duplicate', async () => {
    const store = new InMemoryDedupeStore();
    const effect = vi.fn();
    const wrapped = idempotent((ctx: HandlerContext<unknown>) => effect(ctx.data), {
      store,
      consumer: 'w',
    });
    const pipeline = createConsumerPipeline({
      name: 'w',
      handlers: [handle(OrderPlaced, wrapped)],
    });
    const message = v2Message();
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(effect).toHaveBeenCalledTimes(1);
    const busy: DedupeStore = {
      claim: async (): Promise<ClaimResult> => ({ status: 'in-progress' }),
      claimMany: async (keys) => keys.map((): ClaimResult => ({ status: 'in-progress' })),
      complete: async () => false,
      completeMany: async (entries) => entries.map(() => false),
      release: async () => false,
      extend: async () => false,
    };
    const held = createConsumerPipeline({
      name: 'w',
      handlers: [
        handle(
          OrderPlaced,
          idempotent(() => undefined, { store: busy, consumer: 'w' }),
        ),
      ],
    });
    expect(await held.process(v2Message())).toMatchObject({ kind: 'redeliver', pause: false });
  });

  it('throws IdempotencyKeyError for input without an envelope and no key function', async () => {
    const once = idempotent(() => undefined, { store: new InMemoryDedupeStore(), consumer: 'c' });
    await expect(once({ not: 'an envelope' })).rejects.toMatchObject({
      code: 'BT_ERR_IDEMPOTENCY_KEY_INVALID',
      retriable: false,
    });
    const empty = idempotent(() => undefined, {
      store: new InMemoryDedupeStore(),
      consumer: 'c',
      key: () => '',
    });
    await expect(empty(undefined)).rejects.toThrow(/not a non-empty string/);
  });

  it('validates its options', () => {
    expect(() =>
      idempotent(() => undefined, { store: new InMemoryDedupeStore(), consumer: '' }),
    ).toThrow(ConsumerConfigError);
    expect(() => idempotent(() => undefined, { store: {} as DedupeStore, consumer: 'c' })).toThrow(
      /DedupeStore/,
    );
    expect(() => idempotent({ store: new InMemoryDedupeStore(), leaseMs: -1 })).toThrow(
      ConsumerConfigError,
    );
  });
});
