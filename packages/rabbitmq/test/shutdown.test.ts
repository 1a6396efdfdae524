/**
 * Graceful shutdown on SIGTERM, in a real child process: the handler in flight finishes, its
 * message is acknowledged, the process exits 0, and nothing is left for redelivery.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, eventMessage, openTransport, uniqueName, waitFor } from './support.js';

const rabbit = await probeService('rabbitmq');
const fixture = fileURLToPath(new URL('./fixtures/sigtermConsumer.ts', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));

describe.skipIf(!rabbit.available)('closeOnSignals', () => {
  const exchange = uniqueName('bt-sigterm');
  const queue = uniqueName('bt-sigterm-q');
  afterAll(async () => {
    const probe = await BrokerProbe.open(rabbit.url);
    await probe.remove([queue, `${queue}.dlq`, `${queue}.retry.200ms`], [exchange, `${queue}.dlx`]);
    await probe.close();
  });

  it('on SIGTERM cancels the consumer, lets the in-flight handler finish and ack, then exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fixture, rabbit.url, exchange, queue],
      {
        cwd: root,
        env: { ...process.env, BACKTRACK_LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const events: Array<Record<string, unknown>> = [];
    let stderr = '';
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines)
        if (line.trim()) events.push(JSON.parse(line) as Record<string, unknown>);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );

    await waitFor(
      `the child to be ready (stderr: ${stderr})`,
      () => events.some((e) => e['event'] === 'ready'),
      45_000,
    );
    const transport = await openTransport(rabbit.url);
    const message = eventMessage('test.sigterm', {});
    await transport.publish([{ topic: exchange, message }]);
    await transport.close();
    await waitFor('the handler to start', () => events.some((e) => e['event'] === 'started'));

    child.kill('SIGTERM');
    const code = await exited;
    expect(code, stderr).toBe(0);
    expect(events.map((e) => e['event'])).toEqual(['ready', 'started', 'finished', 'closed']);
    expect(events.find((e) => e['event'] === 'closed')?.['error']).toBeNull();

    const probe = await BrokerProbe.open(rabbit.url);
    try {
      expect(await probe.messageCount(queue)).toBe(0);
    } finally {
      await probe.close();
    }
  });
});
