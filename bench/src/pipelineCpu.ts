/**
 * Pipeline-only CPU: core's consumer pipeline (decode, validate, upcast v1 -> v2, claimMany,
 * handler, completeMany) over pre-encoded messages in chunks of 50, in-memory dedupe, no broker.
 * Isolates the pipeline's own CPU per message from the transport's; profile it with
 * `TSX_TSCONFIG_PATH=../tsconfig.json node --cpu-prof --import tsx src/pipelineCpu.ts 30000`.
 *
 * `src/pipelineCpu.ts N ROUNDS mix`: the load driver's shape instead (session 7): every other
 * message is of a type no handler routes (`bench.order.cancelled`), and the batches are small
 * (sizes 1, 1, 1, 1, 2, 3, 6, 6, 12, 20, 20 in turn: 6.6 on average, as the in-memory
 * transport hands the example's services).
 *
 * `src/pipelineCpu.ts N ROUNDS kafka`: what the Kafka subscription hands the pipeline for the
 * kafka-consume benchmark (session 9): records as kafkajs decodes them (every header value a
 * Buffer, the record key a Buffer), turned into messages as the subscription does (`fromKafkaRecord`,
 * the origin with its record key: every message its own lane), in batches of 500.
 */
import {
  createConsumerPipeline,
  handle,
  InMemoryDedupeStore,
  type IncomingMessage,
} from '@backtrack/core';
import { fromKafkaRecord, toKafkaRecord } from '@backtrack/kafka/adapter';
import { BenchOrderPlaced, encodedCancellations, encodedOrders, silentLogger } from './common.js';
const n = Number(process.argv[2] ?? 20000);
const mix = process.argv[4] === 'mix';
const kafka = process.argv[4] === 'kafka';
const orders = encodedOrders(mix ? n / 2 : n);
const cancellations = mix ? encodedCancellations(n / 2, 'bench') : [];
const encoded = mix ? orders.flatMap((order, i) => [order, cancellations[i]!]) : orders;
const sizes = mix ? [1, 1, 1, 1, 2, 3, 6, 6, 12, 20, 20] : kafka ? [500] : [50];
/** As kafkajs hands them: header values and key as Buffers (copied per round, see `messagesOf`). */
const records = encoded.map((message) => {
  const record = toKafkaRecord(message);
  const headers: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(record.headers ?? {}))
    headers[name] = Buffer.from(String(value));
  return {
    key: record.key === null ? null : Buffer.from(String(record.key)),
    value: record.value as Buffer,
    headers,
  };
});
/** The messages of one round (Kafka: made from the records as the subscription makes them). */
function messagesOf(): IncomingMessage[] {
  if (!kafka) {
    return encoded.map((message, i) => ({
      message,
      attempt: 1,
      origin: { transport: 'kafka', topic: 't', partition: 0, offset: String(i), group: 'g' },
    }));
  }
  return records.map((record, i) => {
    const origin: IncomingMessage['origin'] = {
      transport: 'kafka',
      topic: 't',
      partition: 0,
      offset: String(i),
      group: 'g',
    };
    if (record.key !== null) origin.key = record.key.toString('latin1');
    return { message: fromKafkaRecord(record), attempt: 1, origin };
  });
}
const rounds = Number(process.argv[3] ?? 5);
for (let round = 0; round < rounds; round++) {
  let sum = 0;
  const pipeline = createConsumerPipeline(
    {
      name: `g${round}`,
      handlers: [
        handle(
          BenchOrderPlaced,
          ({ data }) => {
            sum += data.amountCents;
          },
          { version: 2 },
        ),
      ],
      idempotency: { ttlMs: 600_000 },
      // As the example's services: each topic carries types they do not handle.
      ...(mix ? { unhandled: 'ignore' as const } : {}),
    },
    { dedupeStore: new InMemoryDedupeStore(), logger: silentLogger },
  );
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const msgs = messagesOf();
  for (let i = 0, b = 0; i < n; b++) {
    const size = sizes[b % sizes.length]!;
    await pipeline.processBatch(msgs.slice(i, i + size));
    i += size;
  }
  const c = process.cpuUsage(c0);
  console.log(
    `round ${round}: ${((c.user + c.system) / n).toFixed(1)} µs CPU/msg, ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} msg/s, sum ${sum}`,
  );
}
