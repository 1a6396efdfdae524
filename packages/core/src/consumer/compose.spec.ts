import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { compose, createContext, type ConsumerContext, type Middleware } from './context.js';
import type { IncomingMessage } from './processor.js';

const message: IncomingMessage = {
  message: { headers: {}, body: new Uint8Array() },
  attempt: 1,
  origin: { transport: 'test', topic: 't', group: 'g' },
};
const context = (): ConsumerContext => createContext(message, 'c', pino({ level: 'silent' }));

describe('compose', () => {
  it('runs sync and async middleware in order, around next(), then last', async () => {
    const seen: string[] = [];
    const chain = compose([
      (_, next) => {
        seen.push('sync before');
        const done = next();
        seen.push('sync after');
        return done;
      },
      async (_, next) => {
        seen.push('async before');
        await next();
        seen.push('async after');
      },
      () => void seen.push('returns nothing, no next'),
    ]);
    await chain(context(), async () => void seen.push('last'));
    expect(seen).toEqual([
      'sync before',
      'async before',
      'returns nothing, no next',
      'sync after',
      'async after',
    ]);
  });

  it('calls last after the last middleware calls next', async () => {
    let reached = false;
    await compose([(_, next) => next()])(context(), async () => void (reached = true));
    expect(reached).toBe(true);
  });

  it('turns a synchronous throw into a rejection, for the middleware and for last', async () => {
    const boom = new Error('boom');
    const throwing: Middleware = () => {
      throw boom;
    };
    const chain = compose([(_, next) => next(), throwing]);
    const result = chain(context(), async () => undefined);
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toBe(boom);
    await expect(
      compose([(_, next) => next()])(context(), () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });

  it('rejects a second next() in one middleware', async () => {
    const chain = compose([
      async (_, next) => {
        await next();
        await next();
      },
    ]);
    await expect(chain(context(), async () => undefined)).rejects.toThrow(
      'next() called more than once in one middleware',
    );
  });

  it('stops at a disposition: later middleware and last are skipped even if next() is called', async () => {
    const seen: string[] = [];
    const chain = compose([
      (ctx, next) => {
        ctx.ack('ignored');
        return next();
      },
      () => void seen.push('skipped'),
    ]);
    const ctx = context();
    await chain(ctx, async () => void seen.push('last'));
    expect(seen).toEqual([]);
    expect(ctx.disposition).toEqual({ kind: 'ack', outcome: 'ignored' });
  });

  it('waits for a thenable that is not a native promise', async () => {
    const seen: string[] = [];
    const chain = compose([
      () =>
        ({
          then(resolve: () => void) {
            setTimeout(() => {
              seen.push('thenable settled');
              resolve();
            }, 5);
          },
        }) as unknown as Promise<void>,
    ]);
    await chain(context(), async () => undefined);
    expect(seen).toEqual(['thenable settled']);
  });
});
