/** The shared Transport contract run against core's InMemoryTransport (the brokers' runs are in their packages' tests). */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { InMemoryTransport } from '../../transport/InMemoryTransport.js';
import { transportContract } from '../index.js';

transportContract(
  'InMemoryTransport',
  async () => {
    const transport = new InMemoryTransport({}, { logger: pino({ level: 'silent' }) });
    return {
      transport,
      deadLetters: async (topic, group) =>
        transport.deadLetters
          .filter((d) => d.topic === topic && d.group === group)
          .map((d) => ({ message: d.message, reason: d.reason, code: d.code })),
    };
  },
  { describe, it, expect },
);
