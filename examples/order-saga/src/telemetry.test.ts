/**
 * The order saga's single trace across the four services (oneTrace.ts) on the real brokers:
 * the trace context travels as `ce_traceparent` (Kafka) and `cloudEvents_traceparent` (AMQP).
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { expectOneTraceAcrossServices } from './oneTrace.js';

const [redis, rabbitmq, kafka] = await Promise.all([
  probeService('redis'),
  probeService('rabbitmq'),
  probeService('kafka'),
]);

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

describe('order saga telemetry on the brokers', () => {
  it.skipIf(!redis.available || !rabbitmq.available)(
    'one trace across the services on RabbitMQ',
    () => expectOneTraceAcrossServices(spans, 'rabbitmq', uniqueName('otel18-trace')),
  );
  it.skipIf(!redis.available || !kafka.available)('one trace across the services on Kafka', () =>
    expectOneTraceAcrossServices(spans, 'kafka', uniqueName('otel18-trace')),
  );
});
