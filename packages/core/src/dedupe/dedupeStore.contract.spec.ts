import { dedupeStoreContract } from '../testing/contracts/dedupeStoreContract.js';
import { InMemoryDedupeStore } from './InMemoryDedupeStore.js';

// A fake clock: lease and retention expiry without waiting (the Redis run uses real time).
dedupeStoreContract('InMemoryDedupeStore (fake clock)', async () => {
  let now = 1_700_000_000_000;
  const store = new InMemoryDedupeStore({ now: () => now });
  return {
    store,
    ttlOf: async (key) => store.ttlOf(key),
    advance: async (ms) => {
      now += ms;
    },
  };
});
