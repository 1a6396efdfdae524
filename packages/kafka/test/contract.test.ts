/** The shared Transport contract (`@backtrack/core/adapter`) run against KafkaTransport on the real broker. */
import { afterAll, describe, expect, it } from 'vitest';
import { readDeadLetter } from '@backtrack/kafka';
import { transportContract } from '@backtrack/core/adapter';
import { kafkaBroker } from './broker.js';
import { makeTransport, readTopic } from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

describe.skipIf(!broker.available)('KafkaTransport', () => {
  transportContract(
    'KafkaTransport (real broker)',
    async () => {
      const transport = makeTransport(broker.brokers);
      return {
        transport,
        prepare: async (topic) =>
          void (await transport.ensureTopics({ topics: [topic], partitions: 2 })),
        deadLetters: async (topic, group, expected) => {
          const records = await readTopic(broker.brokers, `${topic}.dlq`, expected, 10_000);
          return records
            .map((r) =>
              readDeadLetter(
                {
                  offset: r.offset,
                  key: r.key === null ? null : Buffer.from(r.key),
                  value: r.value,
                  headers: r.headers,
                  timestamp: '0',
                },
                r.partition,
              ),
            )
            .filter((d) => d.group === group)
            .map((d) => ({ message: d.message, reason: d.reason, code: d.code }));
        },
      };
    },
    { describe, it, expect },
  );
});
