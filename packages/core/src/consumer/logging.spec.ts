import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { encodeEnvelope } from '../envelope/codec.js';
import { defineEvent } from '../schema/defineEvent.js';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { handle } from './middleware.js';
import { createConsumerPipeline } from './pipeline.js';
import type { IncomingMessage } from './processor.js';

const Routed = defineEvent('log.routed').version(1, z.object({ n: z.number() }));
const Unrouted = defineEvent('log.unrouted').version(1, z.object({ n: z.number() }));

function incoming(message: IncomingMessage['message'], offset: number): IncomingMessage {
  return {
    message,
    attempt: 1,
    origin: { transport: 'kafka', topic: 't', partition: 0, offset: String(offset), group: 'g' },
  };
}

describe("a message's logger", () => {
  it('is not made for a disposition its level does not write, and carries origin and envelope when it is', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'silent' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const child = vi.spyOn(logger, 'child');
    const pipeline = createConsumerPipeline(
      {
        name: 'c',
        handlers: [
          handle(Routed, () => {
            throw new Error('boom');
          }),
        ],
        idempotency: {},
        retry: { attempts: 1 },
      },
      { dedupeStore: new InMemoryDedupeStore(), logger },
    );
    // The pipeline's own logger (its child with the consumer name); messages' children inherit the spy.
    child.mockClear();
    const routed = encodeEnvelope(Routed.envelope({ n: 1 }, { source: '//s', sagaid: 's-1' }));
    const unrouted = encodeEnvelope(Unrouted.envelope({ n: 2 }, { source: '//s' }));
    const dispositions = await pipeline.processBatch([incoming(routed, 7), incoming(unrouted, 8)]);
    // A dead letter each (retries exhausted; no handler): logged at error, which is off.
    expect(dispositions.map((d) => d.kind)).toEqual(['dead-letter', 'dead-letter']);
    expect(child).not.toHaveBeenCalled();

    logger.level = 'error';
    const again = encodeEnvelope(Routed.envelope({ n: 3 }, { source: '//s', sagaid: 's-2' }));
    await pipeline.processBatch([incoming(again, 9)]);
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'message dead-lettered',
      topic: 't',
      partition: 0,
      offset: '9',
      attempt: 1,
      type: 'log.routed',
      sagaId: 's-2',
      schemaVersion: 1,
    });
  });
});
