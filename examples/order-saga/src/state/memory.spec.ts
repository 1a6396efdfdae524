import { createInMemoryStates } from './memory.js';
import { serviceStatesContract } from './statesContract.js';

serviceStatesContract('in-memory maps', async () => createInMemoryStates());
