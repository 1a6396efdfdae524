import { metrics, trace } from '@opentelemetry/api';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { createPublisher } from '../publisher/Publisher.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import { InMemoryTransport } from '../transport/InMemoryTransport.js';
import { startConsume, startPublish } from './messaging.js';
import { activeInstruments, activeTracer } from './provider.js';

const Ping = defineEvent('ping').version(1, z.object({ n: z.int() }));

describe('telemetry without an OpenTelemetry SDK', () => {
  it('starts nothing and sends no trace context', async () => {
    trace.disable();
    metrics.disable();
    expect(activeTracer()).toBeUndefined();
    expect(activeInstruments()).toBeUndefined();
    expect(startPublish('x', 'ping', undefined, () => 't', undefined)).toBeUndefined();
    expect(
      startConsume(
        {
          message: { headers: {}, body: new Uint8Array() },
          attempt: 1,
          origin: { transport: 'x', topic: 't', group: 'g' },
        },
        'c',
      ),
    ).toBeUndefined();
    const transport = new InMemoryTransport();
    const publisher = createPublisher(
      { service: 's', version: '1' },
      {
        transport,
        journal: new InMemoryJournal(),
        registry: new EventRegistry([Ping]),
        logger: pino({ level: 'silent' }),
      },
    );
    const envelope = await publisher.publish(Ping, { n: 1 });
    expect(envelope.extensions?.['traceparent']).toBeUndefined();
    expect(transport.published('s')[0]!.message.headers['traceparent']).toBeUndefined();
  });
});
