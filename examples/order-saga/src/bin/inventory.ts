/**
 * The inventory service as its own process:
 *   tsx order-saga/src/bin/inventory.ts --transport kafka [--prefix shop] [--orders 10000]
 * Sets the initial stock (sized for --orders) when this prefix has none yet.
 */
import { initialStock } from '../catalog.js';
import { startInventory } from '../services/inventory.js';
import { consoleStory } from '../story.js';
import { boot, runUntilSignal } from './common.js';

const { config, runtime } = await boot('inventory');
const state = runtime.states.inventory;
if (Object.keys(await state.initial()).length === 0) {
  for (const [sku, qty] of Object.entries(initialStock(config.orders)))
    await state.setStock(sku, qty);
}
const service = await startInventory(await runtime.infraFor('inventory', consoleStory()), state);
console.log(
  `inventory ${service.version} consuming on ${config.transport} (prefix ${config.prefix})`,
);
runUntilSignal('inventory', runtime, () => service.stop());
