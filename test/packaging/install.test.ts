/**
 * What a user gets from npm: the packages are packed with `npm pack` (from their built dist/) and
 * installed into a temporary app outside the repository, with the third-party dependencies from
 * the registry (or npm's cache), as the README's install line does:
 * `npm install @backtrack/core @backtrack/redis zod pino ioredis`. A tiny script runs a saga and
 * builds a Redis store, a TypeScript file type-checks against the shipped declarations, a second
 * `npm install` resolves again (a peer range that excludes the driver's current major fails
 * here with ERESOLVE), and the CLI installed from its tarball answers `npx backtrack --help`.
 *
 * Needs `npm run build` first (CI builds before testing) and the npm registry or a warm cache.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const PACKAGES = ['core', 'redis', 'kafka', 'rabbitmq', 'postgres', 'cli'] as const;
/** npm installs and a tsc run, on a shared and loaded machine. */
const SLOW = 240_000;
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

async function npm(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run('npm', args, {
      cwd,
      maxBuffer: 16 * 1024 * 1024,
      // npm_config_* of an `npm test` parent (workspace, prefix) must not leak into the app.
      env: Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')),
      ),
    });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `npm ${args.join(' ')} failed in ${cwd}:\n${e.stderr ?? ''}\n${e.stdout ?? ''}`,
      {
        cause: error,
      },
    );
  }
}

let work: string;
let app: string;
const tarball: Partial<Record<(typeof PACKAGES)[number], string>> = {};

beforeAll(async () => {
  for (const p of PACKAGES) {
    if (!existsSync(join(root, 'packages', p, 'dist', 'index.js'))) {
      throw new Error(`packages/${p}/dist is missing: run \`npm run build\` before this test`);
    }
  }
  work = mkdtempSync(join(tmpdir(), 'backtrack-pack-'));
  const packs = join(work, 'tarballs');
  mkdirSync(packs);
  await npm(
    ['pack', '--pack-destination', packs, ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`])],
    root,
  );
  for (const file of readdirSync(packs)) {
    const name = /^backtrack-(\w+)-\d/.exec(file)?.[1] as (typeof PACKAGES)[number] | undefined;
    if (name) tarball[name] = join(packs, file);
  }
  expect(Object.keys(tarball).sort()).toEqual([...PACKAGES].sort());
  app = join(work, 'app');
  mkdirSync(app);
  await npm(['init', '-y'], app);
  await npm(['pkg', 'set', 'type=module'], app);
}, SLOW);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('installing the packed packages into an app of its own', () => {
  it(
    'installs @backtrack/core @backtrack/redis zod pino ioredis, and the app runs',
    async () => {
      await npm(
        ['install', tarball.core!, tarball.redis!, 'zod', 'pino', 'ioredis', ...NPM_FLAGS],
        app,
      );
      writeFileSync(
        join(app, 'main.mjs'),
        `import { createSagaEngine, defineSaga, InMemorySagaStore } from '@backtrack/core';
import { RedisDedupeStore } from '@backtrack/redis';
import { Redis } from 'ioredis';
import { z } from 'zod';

const effects = [];
const saga = defineSaga('pack-check', { input: z.object({ id: z.string() }) })
  .step('a', { run: ({ input }) => { effects.push('a:' + input.id); return { ok: true }; }, compensate: () => {} })
  .build();
const engine = createSagaEngine({ store: new InMemorySagaStore() });
engine.register(saga);
const result = await engine.start(saga, { id: 'x' }, { sagaId: 'pack-1' });
const redis = new Redis({ lazyConnect: true });
const store = new RedisDedupeStore({ keyPrefix: 'pack:' }, { redis });
redis.disconnect();
// The adapter entry (contract suites included) loads without vitest installed.
const adapter = await import('@backtrack/core/adapter');
// An adapter package's own adapter entry resolves through its exports map too.
const redisAdapter = await import('@backtrack/redis/adapter');
console.log(JSON.stringify({ status: result.status, effects, store: store.constructor.name, contract: typeof adapter.dedupeStoreContract, classify: typeof redisAdapter.classifyRedisError }));
`,
      );
      const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: app });
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
        status: 'completed',
        effects: ['a:x'],
        store: 'RedisDedupeStore',
        contract: 'function',
        classify: 'function',
      });
    },
    SLOW,
  );

  it(
    'type-checks a TypeScript file against the shipped declarations',
    async () => {
      writeFileSync(
        join(app, 'check.ts'),
        `import { defineSaga, type SagaResult } from '@backtrack/core';
import { dedupeStoreContract, encodeCursor, type DedupeStore } from '@backtrack/core/adapter';
import { ConsumerSpy } from '@backtrack/core/testing';
import { RedisDedupeStore, type RedisAccessError } from '@backtrack/redis';
import { classifyRedisError } from '@backtrack/redis/adapter';
import { Redis } from 'ioredis';
import { z } from 'zod';

const saga = defineSaga('typed', { input: z.object({ id: z.string() }) })
  .step('a', { run: ({ input }) => ({ id: input.id.length }), compensate: () => {} })
  .build();
export const store = new RedisDedupeStore({}, { redis: new Redis({ lazyConnect: true }) });
export const check = (r: SagaResult): string => r.status;
export { saga };
// The other two entries resolve through the exports map, with their declarations.
export const adapter: [typeof dedupeStoreContract, string, DedupeStore] = [
  dedupeStoreContract,
  encodeCursor(1, 'forward'),
  store,
];
export const spy = ConsumerSpy;
export const denied: RedisAccessError | undefined = classifyRedisError(new Error('WRONGPASS'));
`,
      );
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            skipLibCheck: true,
          },
          files: ['check.ts'],
        }),
      );
      await npm(['install', '--save-dev', '@types/node', ...NPM_FLAGS], app);
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const result = await run(process.execPath, [tsc, '-p', '.'], {
        cwd: app,
        maxBuffer: 64 * 1024 * 1024,
      }).then(
        () => '',
        (error: { stdout?: string }) => (error.stdout ?? String(error)).slice(0, 4000),
      );
      expect(result).toBe('');
    },
    SLOW,
  );

  it(
    'a second npm install resolves the same tree without error',
    async () => {
      await npm(['install', ...NPM_FLAGS], app);
      const tree = JSON.parse(await npm(['ls', '--json', '--all'], app)) as {
        problems?: string[];
      };
      expect(tree.problems ?? []).toEqual([]);
    },
    SLOW,
  );

  it(
    'the CLI installed from its tarball answers `npx backtrack --help`',
    async () => {
      await npm(
        [
          'install',
          ...(['kafka', 'rabbitmq', 'postgres', 'cli'] as const).map((p) => tarball[p]!),
          ...NPM_FLAGS,
        ],
        app,
      );
      const { stdout } = await run('npx', ['--no-install', 'backtrack', '--help'], { cwd: app });
      expect(stdout).toContain('Usage: backtrack');
    },
    SLOW,
  );
});
