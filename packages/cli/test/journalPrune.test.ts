/** `backtrack journal prune`, run in process through `main()` against the real Redis. */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '@backtrack/cli';
import { RedisJournal } from '@backtrack/redis';
import { probeService, uniqueName } from '../../../test/support/services.js';

const CONFIG = fileURLToPath(new URL('./fixtures/backtrack.config.mjs', import.meta.url));
const redisInfo = await probeService('redis');

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe.skipIf(!redisInfo.available)('backtrack journal prune', () => {
  const prefix = uniqueName('bt-cli-prune');
  const redis = new Redis(redisInfo.url);
  const journal = new RedisJournal({ keyPrefix: prefix, pruneOnAppend: 0 }, { redis });
  afterAll(async () => {
    await journal.destroy();
    await redis.quit();
  });

  it('deletes the records older than --older-than (or --retention-ms) and keeps the rest', async () => {
    const record = (id: string, ageMs: number) => ({
      id,
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time: new Date(Date.now() - ageMs).toISOString(),
      message: { headers: { id }, body: new Uint8Array([1]) },
    });
    await journal.appendMany([record('old-1', 3_600_000), record('old-2', 3_000_000)]);
    await journal.append(record('new', 1_000));
    vi.stubEnv('BT_TEST_JOURNAL_PREFIX', prefix);
    vi.stubEnv('REDIS_URL', redisInfo.url);
    try {
      const r = await run([
        '--config',
        CONFIG,
        '--json',
        'journal',
        'prune',
        '--older-than',
        '10m',
      ]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 2 });
      const bad = await run(['--config', CONFIG, 'journal', 'prune', '--retention-ms', '-5']);
      expect(bad.code).not.toBe(0);
      for (const args of [
        ['--older-than', 'a week'],
        ['--older-than', '10m', '--retention-ms', '600000'],
      ]) {
        const refused = await run(['--config', CONFIG, 'journal', 'prune', ...args]);
        expect(refused.code, args.join(' ')).toBe(2);
        expect(refused.stderr).toMatch(/--older-than/);
      }
      // The older flag still works: nothing is left past 10 minutes.
      const again = await run([
        '--config',
        CONFIG,
        '--json',
        'journal',
        'prune',
        '--retention-ms',
        '600000',
      ]);
      expect(JSON.parse(again.stdout)).toMatchObject({ deleted: 0 });
    } finally {
      vi.unstubAllEnvs();
    }
    expect(await journal.get('new')).toBeDefined();
    expect(await redis.exists(`${journal.keyPrefix}:r:old-1`)).toBe(0);
  });
});
