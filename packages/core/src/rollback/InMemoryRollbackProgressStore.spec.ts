import { describe, expect, it } from 'vitest';
import { rollbackProgressStoreContract } from '../adapter/index.js';
import { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';

rollbackProgressStoreContract(
  'InMemoryRollbackProgressStore',
  async () => ({
    store: new InMemoryRollbackProgressStore(),
  }),
  { describe, it, expect },
);
