/** `backtrack outbox-dead-letters`, run in process through `main()` against the real PostgreSQL. */
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Transport } from '@backtrack/core';
import { main } from '@backtrack/cli';
import { migrate, PostgresOutbox, PostgresOutboxRelay } from '@backtrack/postgres';
import { probeService, uniqueName } from '../../../test/support/services.js';

const postgres = await probeService('postgres');

async function run(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return { code: await main(args), stdout };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe.skipIf(!postgres.available)('backtrack outbox-dead-letters', () => {
  const schema = uniqueName('bt_cli_dl');
  const pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('lists the records the relay dead-lettered, and requeues them', async () => {
    await migrate(pool, { schema, logger: pino({ level: 'silent' }) });
    const outbox = new PostgresOutbox({ pool }, { schema });
    const id = uniqueName('poison');
    await outbox.append({
      id,
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time: new Date().toISOString(),
      message: { headers: { id }, body: new Uint8Array([1]) },
    });
    const refusing: Transport = {
      name: 'refusing',
      publish: () => Promise.reject(new Error('NO_ROUTE')),
      subscribe: () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
    const relay = new PostgresOutboxRelay(
      { outbox, transport: refusing, logger: pino({ level: 'silent' }) },
      { maxAttempts: 1 },
    );
    expect(await relay.runOnce()).toMatchObject({ deadLettered: 1 });

    const base = ['outbox-dead-letters', '--database-url', postgres.url, '--schema', schema];
    const listed = await run([...base, '--json']);
    expect(listed.code).toBe(0);
    const body = JSON.parse(listed.stdout) as { items: { id: string; lastError: string }[] };
    expect(body.items).toEqual([expect.objectContaining({ id, lastError: 'NO_ROUTE' })]);

    const human = await run(base);
    expect(human.stdout).toContain(id);

    const requeued = await run([...base, '--requeue', id, '--json']);
    expect(JSON.parse(requeued.stdout)).toMatchObject({ requeued: 1 });
    expect((await outbox.get(id))?.state).toBe('pending');
    expect(await outbox.deadLetters()).toEqual([]);
  });
});
