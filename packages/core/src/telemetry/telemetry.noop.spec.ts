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
import { activeInstruments, activeTracer, otelRegistered } from './provider.js';

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

  it('answers from one global read while nothing was ever registered with the API', () => {
    // The key is the API's own (major 1): registering anything makes it, so the fast path can
    // never hide a registered SDK (if the API's major changed, this would fail first).
    const key = Symbol.for('opentelemetry.js.api.1');
    const global = globalThis as Record<symbol, unknown>;
    const saved = global[key];
    try {
      trace.setGlobalTracerProvider(trace.getTracerProvider());
      expect(global[key]).toBeDefined();
      expect(otelRegistered()).toBe(true);
      delete global[key]; // as in a process where nothing ever registered
      expect(otelRegistered()).toBe(false);
      expect(activeTracer()).toBeUndefined();
      expect(activeInstruments()).toBeUndefined();
    } finally {
      global[key] = saved;
      trace.disable();
    }
  });
});
