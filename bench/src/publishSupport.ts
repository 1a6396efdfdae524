/**
 * Where a journaling publish spends its time: wrappers that time the journal and transport calls
 * the publisher makes, so the rest (validation, envelope, encoding) is what remains.
 */
import type { Journal, Transport } from '@backtrack/core';

export interface PhaseTimes {
  append: number;
  publish: number;
  mark: number;
  calls: number;
}

export function timedJournal(journal: Journal, times: PhaseTimes): Journal {
  return {
    append: async (r) => {
      const t = performance.now();
      try {
        return await journal.append(r);
      } finally {
        times.append += performance.now() - t;
      }
    },
    appendMany: async (records) => {
      const t = performance.now();
      try {
        return await journal.appendMany(records);
      } finally {
        times.append += performance.now() - t;
      }
    },
    markPublished: async (ids) => {
      const t = performance.now();
      try {
        return await journal.markPublished(ids);
      } finally {
        times.mark += performance.now() - t;
      }
    },
    unpublished: (q) => journal.unpublished(q),
    query: (q) => journal.query(q),
    get: (id) => journal.get(id),
    prune: (now) => journal.prune(now),
  };
}

export function timedTransport(transport: Transport, times: PhaseTimes): Transport {
  return {
    name: transport.name,
    publish: async (messages) => {
      const t = performance.now();
      try {
        return await transport.publish(messages);
      } finally {
        times.publish += performance.now() - t;
      }
    },
    subscribe: (options) => transport.subscribe(options),
    close: () => transport.close(),
  };
}

export function newPhaseTimes(): PhaseTimes {
  return { append: 0, publish: 0, mark: 0, calls: 0 };
}
