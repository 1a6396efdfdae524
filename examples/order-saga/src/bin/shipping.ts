/**
 * The shipping service as its own process:
 *   tsx order-saga/src/bin/shipping.ts --transport kafka [--prefix shop]
 */
import { startShipping } from '../services/shipping.js';
import { consoleStory } from '../story.js';
import { boot, runUntilSignal } from './common.js';

const { config, runtime } = await boot('shipping');
const service = await startShipping(
  await runtime.infraFor('shipping', consoleStory()),
  runtime.states.shipping,
);
console.log(
  `shipping ${service.version} consuming on ${config.transport} (prefix ${config.prefix})`,
);
runUntilSignal('shipping', runtime, () => service.stop());
