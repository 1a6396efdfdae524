import { rollbackProgressStoreContract } from '../testing/contracts/rollbackProgressStoreContract.js';
import { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';

rollbackProgressStoreContract('InMemoryRollbackProgressStore', async () => ({
  store: new InMemoryRollbackProgressStore(),
}));
