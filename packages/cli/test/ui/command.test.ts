/**
 * `backtrack ui` as a user starts it: the built binary prints the console's address (and a token
 * off loopback), serves the pages from the package, answers the API, and stops on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../../test/support/services.js';

const COMMAND = fileURLToPath(new URL('../../bin/backtrack.js', import.meta.url));
const CONFIG = fileURLToPath(new URL('../fixtures/sagas.config.mjs', import.meta.url));
const redisInfo = await probeService('redis');

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Starts `backtrack ui ...` and resolves with its first stdout lines and the child. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [COMMAND, 'ui', '--config', CONFIG, ...args], {
    env: {
      ...process.env,
      REDIS_URL: redisInfo.url,
      AMQP_URL: 'amqp://guest:s3cret-pass@127.0.0.1:5672',
      BT_TEST_SAGA_PREFIX: `${uniqueName('console19-cmd')}:`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ child: ChildProcess; stdout: string; stderr: () => string }>(
    (resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('Ctrl-C')) resolve({ child, stdout, stderr: () => stderr });
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stdout}${stderr}`)));
    },
  );
}

describe.skipIf(!redisInfo.available)('backtrack ui (the command)', () => {
  it('serves on loopback without a token, answers the API, logs actions, and stops on SIGTERM', async () => {
    const { child, stdout, stderr } = await start(['--port', '0', '--transport', 'rabbitmq']);
    const url = /Backtrack console: (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    expect(url, stdout).toBeDefined();
    expect(stdout).toContain('loopback');
    expect((await fetch(`${url}/`)).status).toBe(200);
    expect(await (await fetch(`${url}/app.js`)).text()).toContain('textContent');
    const session = (await (await fetch(`${url}/api/session`)).json()) as { csrf: string };
    expect(session).toMatchObject({ tokenRequired: false, transport: 'rabbitmq' });
    expect(JSON.stringify(session)).not.toContain('s3cret');
    const overview = await fetch(`${url}/api/overview`);
    expect(overview.status).toBe(200);
    const action = await fetch(`${url}/api/sagas/nope/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-backtrack-csrf': session.csrf },
      body: JSON.stringify({ note: 'checking' }),
    });
    expect(action.status).toBe(404);
    // A page still open (its event stream) does not keep the console from stopping.
    const stream = await fetch(`${url}/api/events`);
    expect(stream.status).toBe(200);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const log = stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log).toContainEqual(
      expect.objectContaining({ action: 'saga.retry', sagaId: 'nope', note: 'checking' }),
    );
    expect(stderr()).not.toContain('s3cret');
  });

  it('off loopback: prints a generated token, and the API refuses requests without it', async () => {
    const { stdout } = await start(['--host', '0.0.0.0', '--port', '0']);
    const m = /Backtrack console: (http:\/\/0\.0\.0\.0:(\d+))\/#token=([\w-]+)/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const base = `http://127.0.0.1:${m![2]}`;
    const host = {};
    expect((await fetch(`${base}/api/overview`, { headers: host })).status).toBe(401);
    const ok = await fetch(`${base}/api/overview`, {
      headers: { ...host, authorization: `Bearer ${m![3]}` },
    });
    expect(ok.status).toBe(200);
  });

  it('takes the token from BACKTRACK_UI_TOKEN', async () => {
    const { stdout } = await start(['--host', '0.0.0.0', '--port', '0'], {
      BACKTRACK_UI_TOKEN: 'from-the-environment-123',
    });
    expect(stdout).toContain('#token=from-the-environment-123');
  });
});
