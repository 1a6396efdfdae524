/** The shared contract suites run against core's in-memory stores (the Redis runs are in packages/redis/test). */
import { describe, expect, it } from 'vitest';
import { InMemoryDedupeStore } from '../../dedupe/InMemoryDedupeStore.js';
import { InMemorySagaStore } from '../../saga/InMemorySagaStore.js';
import { dedupeStoreContract } from '../index.js';
import { sagaStoreContract } from '../index.js';

// A fake clock: lease and retention expiry without waiting (the Redis run uses real time).
dedupeStoreContract(
  'InMemoryDedupeStore (fake clock)',
  async () => {
    let now = 1_700_000_000_000;
    const store = new InMemoryDedupeStore({ now: () => now });
    return {
      store,
      ttlOf: async (key) => store.ttlOf(key),
      advance: async (ms) => {
        now += ms;
      },
    };
  },
  { describe, it, expect },
);

// Retention on a fake clock: advance moves it.
sagaStoreContract(
  'InMemorySagaStore',
  async ({ finishedRetentionMs }) => {
    let now = 1_700_000_000_000;
    return {
      store: new InMemorySagaStore({ finishedRetentionMs, now: () => now }),
      advance: async (ms) => {
        now += ms;
      },
    };
  },
  { describe, it, expect },
);
