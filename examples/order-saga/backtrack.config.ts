/**
 * The `backtrack` CLI's view of the order-saga example: its events, how to reverse a bad
 * payments deploy, and where the services keep their journal and saga log in Redis (the same
 * prefixes as `src/infra/runtime.ts`). Run the CLI through tsx so this TypeScript file loads:
 *
 *   npx tsx packages/cli/src/bin.ts --config examples/order-saga/backtrack.config.ts --transport rabbitmq rollback plan --service payments --version 1.1.0
 */
import { defineConfig } from '@backtrack/cli';
import { currentRegistry } from './src/events.js';
import { paymentsCompensations } from './src/services/payments.js';

const prefix = process.env.BACKTRACK_PREFIX ?? 'shop';

export default defineConfig({
  registry: currentRegistry(),
  compensations: paymentsCompensations,
  redis: {
    journalPrefix: `${prefix}:journal`,
    progressPrefix: `${prefix}:rollback`,
    sagaPrefix: `${prefix}:saga:`,
  },
});
