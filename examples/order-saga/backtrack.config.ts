/**
 * Config of the `backtrack` CLI for the order-saga services: their events, how payments'
 * events are reversed, and where the run's journal, rollback progress and saga log live in Redis
 * (under BACKTRACK_PREFIX, default `shop`, like the services). TypeScript: the CLI loads it
 * through tsx (a dev dependency of the repository):
 *
 *   npx backtrack --config order-saga/backtrack.config.ts rollback plan \
 *     --transport kafka --service payments --version 1.1.0 --strategy compensate
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
