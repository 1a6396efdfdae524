import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { encodeEnvelope } from '../envelope/codec.js';
import { defineEvent } from '../schema/defineEvent.js';
import { compose, createContext, type Middleware } from './context.js';
import { ConsumerConfigError } from './errors.js';
import { handle, routeByType, type HandlerRoute } from './middleware.js';
import { createConsumerPipeline } from './pipeline.js';
import type { IncomingMessage } from './processor.js';

const types = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] as const;
const events = types.map((t) => defineEvent(`t.${t}`).version(1, z.object({ n: z.number() })));
const Other = defineEvent('t.other').version(1, z.object({ n: z.number() }));

function message(definition: (typeof events)[number] | typeof Other, n = 1): IncomingMessage {
  return {
    message: encodeEnvelope(definition.envelope({ n }, { source: '//s' })),
    attempt: 1,
    origin: { transport: 'test', topic: 't', group: 'g' },
  };
}

function memoryLogger(level: string): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('route dispatch (one lookup for all routes)', () => {
  it('runs the route of each type, once, after the middleware, and nothing else', async () => {
    const calls: string[] = [];
    const handlers = events.map((e) => handle(e, () => void calls.push(e.type)));
    const order: string[] = [];
    const middleware: Middleware[] = [
      async (ctx, next) => {
        order.push(`before ${ctx.envelope?.type}`);
        await next();
        order.push(`after ${ctx.envelope?.type} handled=${ctx.handled}`);
      },
    ];
    const pipeline = createConsumerPipeline({ name: 'c', handlers, middleware });
    for (const e of [...events].reverse()) {
      expect(await pipeline.process(message(e))).toEqual({ kind: 'ack', outcome: 'handled' });
    }
    expect(calls).toEqual([...events].reverse().map((e) => e.type));
    expect(order.slice(0, 2)).toEqual(['before t.h', 'after t.h handled=true']);
  });

  it('passes an unrouted type to the unhandled policy, after the middleware saw it', async () => {
    const seen: (string | undefined)[] = [];
    const handlers = events.map((e) => handle(e, () => undefined));
    const middleware: Middleware[] = [(ctx, next) => (seen.push(ctx.envelope?.type), next())];
    const strict = createConsumerPipeline({ name: 'c', handlers, middleware });
    expect(await strict.process(message(Other))).toMatchObject({
      kind: 'dead-letter',
      code: 'BT_ERR_CONSUMER_UNHANDLED_EVENT',
    });
    const lenient = createConsumerPipeline({
      name: 'c',
      handlers,
      middleware,
      unhandled: 'ignore',
    });
    expect(await lenient.process(message(Other))).toEqual({ kind: 'ack', outcome: 'ignored' });
    expect(seen).toEqual(['t.other', 't.other']);
  });

  it('keeps a disposition set by the middleware before the routes', async () => {
    const handler = vi.fn();
    const pipeline = createConsumerPipeline({
      name: 'c',
      handlers: [handle(events[0]!, handler)],
      middleware: [(ctx, next) => (ctx.retry('not now', 5), next())],
    });
    expect(await pipeline.process(message(events[0]!))).toMatchObject({ kind: 'retry' });
    expect(handler).not.toHaveBeenCalled();
  });

  it('is one middleware for handle() routes and sees the type at dispatch time', async () => {
    const a = vi.fn();
    const b = vi.fn();
    const routes = routeByType([handle(events[0]!, a), handle(events[1]!, b)]);
    expect(routes).toHaveLength(1);
    const context = createContext(message(events[0]!), 'c', pino({ level: 'silent' }));
    const next = vi.fn(async () => undefined);
    // A middleware may change the envelope before the routes: the routes see the change.
    const chain = compose([
      (ctx, n) => {
        ctx.envelope = {
          ...encodedEnvelope(events[1]!),
          type: events[1]!.type,
        } as typeof ctx.envelope;
        return n();
      },
      ...routes,
    ]);
    await chain(context, next);
    expect(b).toHaveBeenCalledTimes(1);
    expect(a).not.toHaveBeenCalled();
    expect(next).not.toHaveBeenCalled();
  });

  it('finds a wrapper that copies onlyOwnType by type too', async () => {
    const inner = handle(events[3]!, () => undefined);
    const seen: string[] = [];
    const wrapped = Object.assign(
      ((ctx, next) => (seen.push(ctx.envelope!.type), inner(ctx, next))) as Middleware,
      { eventType: inner.eventType, version: 1, definition: inner.definition, onlyOwnType: true },
    ) as HandlerRoute;
    const routes = [handle(events[0]!, () => undefined), wrapped];
    expect(routeByType(routes)).toHaveLength(1);
    const pipeline = createConsumerPipeline({ name: 'c', handlers: routes, unhandled: 'ignore' });
    expect(await pipeline.process(message(events[0]!))).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(await pipeline.process(message(events[3]!))).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(await pipeline.process(message(Other))).toEqual({ kind: 'ack', outcome: 'ignored' });
    // Called for its own type only.
    expect(seen).toEqual(['t.d']);
  });

  it('without an envelope, throws as the chained routes did (decode() missing)', async () => {
    const routes = routeByType([handle(events[0]!, () => undefined)]);
    const context = createContext(message(events[0]!), 'c', pino({ level: 'silent' }));
    await expect(compose(routes)(context, async () => undefined)).rejects.toBeInstanceOf(
      ConsumerConfigError,
    );
  });

  it('chains the routes as given when one does not say onlyOwnType', async () => {
    const custom = Object.assign(
      ((ctx, next) => {
        // Handles two types: a Map keyed by its eventType alone would miss the second.
        if (ctx.envelope?.type === 't.a' || ctx.envelope?.type === 't.b') ctx.handled = true;
        else return next();
      }) as Middleware,
      { eventType: 't.a', version: 1, definition: events[0]! },
    ) as unknown as HandlerRoute;
    const routes = [custom, handle(events[2]!, () => undefined)];
    expect(routeByType(routes)).toEqual(routes);
    const pipeline = createConsumerPipeline({ name: 'c', handlers: routes, unhandled: 'ignore' });
    expect(await pipeline.process(message(events[1]!))).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(await pipeline.process(message(events[2]!))).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(await pipeline.process(message(events[3]!))).toEqual({
      kind: 'ack',
      outcome: 'ignored',
    });
  });
});

describe('ignored messages and the logger', () => {
  it('logs the ignored message at info, with its bindings, when info is on', async () => {
    const { logger, lines } = memoryLogger('info');
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(events[0]!, () => undefined)], unhandled: 'ignore' },
      { logger },
    );
    await pipeline.process(message(Other));
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'no handler for this event type; acknowledged and ignored',
        consumer: 'c',
        type: 't.other',
        topic: 't',
      }),
    );
  });

  it('does not make the message logger when info is off', async () => {
    for (const level of ['warn', 'info']) {
      const { logger, lines } = memoryLogger(level);
      // pino children inherit `child` from their parent: this spy sees every child made.
      const child = vi.spyOn(logger, 'child');
      const pipeline = createConsumerPipeline(
        { name: 'c', handlers: [handle(events[0]!, () => undefined)], unhandled: 'ignore' },
        { logger },
      );
      const made = child.mock.calls.length; // the pipeline's own child
      expect(await pipeline.process(message(Other))).toEqual({ kind: 'ack', outcome: 'ignored' });
      expect(child.mock.calls.length - made).toBe(level === 'warn' ? 0 : 1);
      expect(lines).toHaveLength(level === 'warn' ? 0 : 1);
    }
  });

  it('asks the logger a middleware put on the context', async () => {
    const { logger, lines } = memoryLogger('info');
    const quiet = memoryLogger('warn');
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [handle(events[0]!, () => undefined)],
        unhandled: 'ignore',
        middleware: [(ctx, next) => ((ctx.logger = logger), next())],
      },
      { logger: quiet.logger },
    );
    await pipeline.process(message(Other));
    expect(lines.map((l) => l['msg'])).toContain(
      'no handler for this event type; acknowledged and ignored',
    );
  });
});

function encodedEnvelope(definition: (typeof events)[number]) {
  return definition.envelope({ n: 2 }, { source: '//s' });
}
