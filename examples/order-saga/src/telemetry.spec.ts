/**
 * One order saga across four services (orders → inventory → payments → shipping, in-memory
 * transport) is one trace: from the request span that places the order, through every command
 * the saga publishes, every service's consumer span and handler, and every reply, to the last
 * handler of the saga. telemetry.test.ts runs the same check on Kafka and RabbitMQ.
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { expectOneTraceAcrossServices } from './oneTrace.js';

const spans = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

describe('order saga telemetry', () => {
  it('is one trace from the first publish to the last handler, across the services', () =>
    expectOneTraceAcrossServices(spans, 'memory', 'otel'));
});
