import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string, file = 'index.ts') =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${file}`, import.meta.url));

// Tests import the packages by name, resolved to their sources so no build is needed first.
const alias = [
  { find: /^@backtrack\/core\/adapter$/, replacement: src('core', 'adapter/index.ts') },
  { find: /^@backtrack\/core\/testing$/, replacement: src('core', 'testing/index.ts') },
  { find: /^@backtrack\/core$/, replacement: src('core') },
  { find: /^@backtrack\/redis\/adapter$/, replacement: src('redis', 'adapter.ts') },
  { find: /^@backtrack\/redis$/, replacement: src('redis') },
  { find: /^@backtrack\/kafka\/adapter$/, replacement: src('kafka', 'adapter.ts') },
  { find: /^@backtrack\/kafka$/, replacement: src('kafka') },
  { find: /^@backtrack\/rabbitmq\/adapter$/, replacement: src('rabbitmq', 'adapter.ts') },
  { find: /^@backtrack\/rabbitmq$/, replacement: src('rabbitmq') },
  { find: /^@backtrack\/postgres\/adapter$/, replacement: src('postgres', 'adapter.ts') },
  { find: /^@backtrack\/postgres$/, replacement: src('postgres') },
  { find: /^@backtrack\/cli$/, replacement: src('cli') },
];

// Integration files spend most of their time waiting on the brokers, child processes and
// timers, not on the CPU, and every file names its topics, queues, keys and schemas with
// uniqueName(): they run side by side. Vitest's default (cores - 1) would run them one at a time
// on the 2-core CI machine; 3 at once cuts the project's wall time there. Override with
// BACKTRACK_INTEGRATION_WORKERS (1 = one file at a time, to rule parallelism out).
const integrationWorkers =
  Number(process.env.BACKTRACK_INTEGRATION_WORKERS) || Math.max(3, availableParallelism() - 1);

export default defineConfig({
  resolve: { alias },
  test: {
    env: { BACKTRACK_LOG_LEVEL: process.env.BACKTRACK_LOG_LEVEL ?? 'silent' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.spec.ts', 'examples/**/*.spec.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', 'packages/*/src/**/*.types.spec.ts'],
          // Type tests (`*.types.spec.ts`: expectTypeOf, one `@ts-expect-error` per refusal) are
          // also type-checked by tsc here, so a type error fails `npm test` as well as typecheck.
          typecheck: {
            enabled: true,
            include: ['packages/*/src/**/*.types.spec.ts'],
            tsconfig: './tsconfig.json',
          },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [
            'packages/*/test/**/*.test.ts',
            'test/integration/**/*.test.ts',
            'test/packaging/**/*.test.ts',
            'examples/**/*.test.ts',
            'bench/**/*.test.ts',
          ],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: integrationWorkers,
          // Its own group (after the unit files): vitest runs projects with different
          // maxWorkers in different groups.
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Fault tests stop and start shared services (Redis, RabbitMQ, Kafka): never in parallel.
        extends: true,
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
