/**
 * The payments service as its own process:
 *   tsx order-saga/src/bin/payments.ts --transport kafka [--prefix shop] [--bad] [--version 1.1.0]
 * `--bad` runs the drill's bad build (charges 100×, publishes payment.charged v2).
 */
import { startPayments } from '../services/payments.js';
import { consoleStory } from '../story.js';
import { boot, runUntilSignal } from './common.js';

const { config, runtime } = await boot('payments', {
  bad: { type: 'boolean' },
  version: { type: 'string' },
});
const service = await startPayments(
  await runtime.infraFor('payments', consoleStory()),
  runtime.states.payments,
  {
    bad: config.flags.bad === true,
    ...(typeof config.flags.version === 'string' ? { version: config.flags.version } : {}),
  },
);
console.log(
  `payments ${service.version} consuming on ${config.transport} (prefix ${config.prefix})`,
);
runUntilSignal('payments', runtime, () => service.stop());
