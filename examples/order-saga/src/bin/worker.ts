/**
 * Participant services as a child of the load driver (`load.ts --processes K` forks these, see
 * infra/processes.ts); not meant to be started by hand (use bin/inventory.ts, payments.ts,
 * shipping.ts for that):
 *   worker.ts --services inventory|payments|shipping|inventory+payments+shipping \
 *     --transport kafka --prefix <the run's> [topology flags]
 * Says `ready` over IPC once subscribed, answers `cpu` with its `process.cpuUsage()`, and on
 * `stop`, SIGINT/SIGTERM or the parent going away closes its subscription and connections and
 * exits.
 */
import { readConfig, topologyOf } from '../config.js';
import {
  FORKED_SERVICES,
  type ForkedService,
  type ParentMessage,
  type WorkerMessage,
} from '../infra/processes.js';
import { createRuntime } from '../infra/runtime.js';
import type { RunningService } from '../infra/service.js';
import { startInventory } from '../services/inventory.js';
import { startPayments } from '../services/payments.js';
import { startShipping } from '../services/shipping.js';

const tell = (message: WorkerMessage) => {
  if (process.connected) process.send!(message, () => undefined);
};
if (!process.send) {
  console.error('worker: started without an IPC channel; the load driver forks it (--processes)');
  process.exit(2);
}

const config = readConfig(process.argv.slice(2), {}, { services: { type: 'string' } });
const name = String(config.flags.services ?? '');
const names = name.split('+') as ForkedService[];
if (
  !names.every((n) => (FORKED_SERVICES as readonly string[]).includes(n)) ||
  config.transport === 'memory'
) {
  console.error(
    `worker: needs --services with ${FORKED_SERVICES.join(', ')} (joined by +) and a broker transport`,
  );
  process.exit(2);
}

const services: RunningService[] = [];
let stopping = false;
const runtime = await createRuntime({
  transport: config.transport,
  store: config.store,
  prefix: config.prefix,
  createTopics: false,
  ...topologyOf(config),
});

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    try {
      await Promise.allSettled(services.map((s) => s.stop()));
    } finally {
      await runtime.close();
      const cpu = process.cpuUsage();
      tell({
        type: 'stopped',
        services: name,
        user: cpu.user,
        system: cpu.system,
      });
      process.disconnect?.();
    }
  }
  process.exit(code);
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'cpu') {
    const cpu = process.cpuUsage();
    tell({ type: 'cpu', services: name, user: cpu.user, system: cpu.system });
  } else if (message.type === 'stop') void shutdown(0);
});
// The parent went away (it exited, crashed or was killed): nobody will say stop.
process.once('disconnect', () => void shutdown(0));
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  const { states } = runtime;
  // Each service its own connection, as in one process (system.ts).
  for (const n of names) {
    if (n === 'inventory')
      services.push(await startInventory(await runtime.infraFor('inventory'), states.inventory));
    else if (n === 'payments')
      services.push(await startPayments(await runtime.infraFor('payments'), states.payments));
    else services.push(await startShipping(await runtime.infraFor('shipping'), states.shipping));
  }
  tell({ type: 'ready', services: name, pid: process.pid });
} catch (error) {
  tell({ type: 'failed', services: name, error: (error as Error).message });
  await shutdown(1);
}
