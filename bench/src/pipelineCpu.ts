/**
 * Pipeline-only CPU: core's consumer pipeline (decode, validate, upcast v1 -> v2, claimMany,
 * handler, completeMany) over pre-encoded messages in chunks of 50, in-memory dedupe, no broker.
 * Isolates the pipeline's own CPU per message from the transport's; profile it with
 * `TSX_TSCONFIG_PATH=../tsconfig.json node --cpu-prof --import tsx src/pipelineCpu.ts 30000`.
 */
import {
  createConsumerPipeline,
  handle,
  InMemoryDedupeStore,
  type IncomingMessage,
} from '@backtrack/core';
import { BenchOrderPlaced, encodedOrders, silentLogger } from './common.js';
const n = Number(process.argv[2] ?? 20000);
const msgs: IncomingMessage[] = encodedOrders(n).map((message, i) => ({
  message,
  attempt: 1,
  origin: { transport: 'kafka', topic: 't', partition: 0, offset: String(i), group: 'g' },
}));
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
    },
    { dedupeStore: new InMemoryDedupeStore(), logger: silentLogger },
  );
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i += 50) await pipeline.processBatch(msgs.slice(i, i + 50));
  const c = process.cpuUsage(c0);
  console.log(
    `round ${round}: ${((c.user + c.system) / n).toFixed(1)} µs CPU/msg, ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} msg/s, sum ${sum}`,
  );
}
