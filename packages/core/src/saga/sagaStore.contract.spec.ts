import { sagaStoreContract } from '../testing/contracts/sagaStoreContract.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';

sagaStoreContract('InMemorySagaStore', async () => ({ store: new InMemorySagaStore() }));
