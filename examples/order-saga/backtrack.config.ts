/**
 * Config of the `backtrack` CLI for the order-saga services: their events, how payments'
 * events are reversed (to which topic of the prefix), and where the run's journal, rollback progress and saga log live in Redis
 * (under BACKTRACK_PREFIX, default `shop`, like the services). TypeScript: the CLI loads it
 * through tsx (a dev dependency of the repository):
 *
 *   npx backtrack --config order-saga/backtrack.config.ts rollback plan \
 *     --transport kafka --service payments --version 1.1.0 --strategy compensate
 */
import { defineConfig } from '@backtrack/cli';
import { currentRegistry } from './src/events.js';
import { shopTopics } from './src/infra/topics.js';
import { paymentsCompensationsFor } from './src/services/payments.js';

const prefix = process.env.BACKTRACK_PREFIX ?? 'shop';

export default defineConfig({
  registry: currentRegistry(),
  // Adjustments go to `<prefix>.to.payments`, the topic payments reads (src/infra/topics.ts).
  compensations: paymentsCompensationsFor(shopTopics(prefix)),
  redis: {
    journalPrefix: `${prefix}:journal`,
    progressPrefix: `${prefix}:rollback`,
    sagaPrefix: `${prefix}:saga:`,
  },
});
