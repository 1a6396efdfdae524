/**
 * The guarantee the PostgreSQL inbox exists for: a consumer process killed (SIGKILL, no cleanup)
 * between the handler's write and the COMMIT, or after the COMMIT but before the broker ack,
 * leaves the effect exactly once after the message is redelivered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresInbox } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/killedHandler.ts', import.meta.url));

/** Starts the child and resolves once it printed `line` (or rejects if it exits first). */
function startChild(args: string[], line: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not print ${line} in time; stdout=${out} stderr=${err}`));
    }, 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(line)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before ${line}; stdout=${out} stderr=${err}`));
    });
  });
}

function sigkill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe.skipIf(!postgres.available)('PostgresInbox survives SIGKILL of the consumer', () => {
  let db: TestDatabase;
  let payments: string;

  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_inbox_kill');
    payments = `"${db.schema}".payments`;
    await db.pool.query(
      `CREATE TABLE ${payments} (message_key text NOT NULL, amount int NOT NULL)`,
    );
  });
  afterAll(async () => {
    await db?.close();
  });

  const paymentsFor = async (key: string) =>
    Number(
      (
        await db.pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${payments} WHERE message_key = $1`,
          [key],
        )
      ).rows[0]!.n,
    );

  /** What the redelivered message does in the surviving consumer: the same handler. */
  const redeliver = (inbox: PostgresInbox, key: string) =>
    inbox.transaction(key, async (tx) => {
      await tx.query(`INSERT INTO ${payments} (message_key, amount) VALUES ($1, 42)`, [key]);
    });

  it('killed between the write and COMMIT: nothing stays, the redelivery applies it once', async () => {
    const consumer = uniqueName('payments');
    const key = uniqueName('evt');
    const child = await startChild(
      [postgres.url, db.schema, consumer, key, 'before-commit'],
      'WROTE',
    );
    // The child's write exists only inside its open transaction.
    expect(await paymentsFor(key)).toBe(0);
    await sigkill(child);

    const inbox = new PostgresInbox(
      { pool: db.pool },
      { schema: db.schema, consumer, lockTimeoutMs: 10_000 },
    );
    // The server aborts the dead session's transaction, releasing the key; the redelivery runs.
    expect((await redeliver(inbox, key)).status).toBe('handled');
    expect(await paymentsFor(key)).toBe(1);
    // Any further redelivery is a duplicate.
    expect((await redeliver(inbox, key)).status).toBe('duplicate');
    expect(await paymentsFor(key)).toBe(1);
  });

  it('killed after COMMIT but before the ack: the redelivery is a duplicate, the effect stays once', async () => {
    const consumer = uniqueName('payments');
    const key = uniqueName('evt');
    const child = await startChild(
      [postgres.url, db.schema, consumer, key, 'after-commit'],
      'COMMITTED handled',
    );
    await sigkill(child);
    expect(await paymentsFor(key)).toBe(1);

    const inbox = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
    expect((await redeliver(inbox, key)).status).toBe('duplicate');
    expect(await paymentsFor(key)).toBe(1);
  });

  it('contrast: the lease protocol alone (as with Redis) repeats the effect after the same kill', async () => {
    const consumer = uniqueName('payments');
    const key = uniqueName('evt');
    const child = await startChild(
      [postgres.url, db.schema, consumer, key, 'lease-after-write'],
      'WROTE',
    );
    await sigkill(child);
    // The write committed on its own; the done mark never came. Once the lease expires, the
    // redelivery claims the message and runs the handler again: a second effect.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const inbox = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
    const claim = await inbox.claim(key, { leaseMs: 30_000 });
    expect(claim.status).toBe('claimed');
    await db.pool.query(`INSERT INTO ${payments} (message_key, amount) VALUES ($1, 42)`, [key]);
    expect(await paymentsFor(key)).toBe(2);
  });
});
