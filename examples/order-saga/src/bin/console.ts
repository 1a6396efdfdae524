/**
 * The operator console (`backtrack ui`) beside the order-saga services: the same Redis prefix,
 * the services' dead-letter queues (or topics), on http://127.0.0.1:7420 unless --port says
 * otherwise. Run from `examples/`, with the services started as in the README:
 *
 *   BACKTRACK_TRANSPORT=rabbitmq BACKTRACK_PREFIX=shop npx tsx order-saga/src/bin/console.ts
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfig } from '../config.js';
import { shopTopics } from '../infra/topics.js';

const config = readConfig(process.argv.slice(2), {}, { port: { type: 'string' } });
if (config.transport === 'memory') {
  console.error('console: give --transport kafka or rabbitmq (or BACKTRACK_TRANSPORT)');
  process.exit(2);
}
const cli = dirname(createRequire(import.meta.url).resolve('@backtrack/cli/package.json'));
// RabbitMQ dead-letters to a queue per service (its group), Kafka to a topic per source topic.
const deadLetters =
  config.transport === 'rabbitmq'
    ? ['orders', 'inventory', 'payments', 'shipping'].map((s) => `${config.prefix}.${s}.dlq`)
    : shopTopics(config.prefix).all.map((t) => `${t}.dlq`);
const child = spawn(
  process.execPath,
  [
    join(cli, 'bin', 'backtrack.js'),
    'ui',
    '--config',
    fileURLToPath(new URL('../../backtrack.config.ts', import.meta.url)),
    '--transport',
    config.transport,
    '--port',
    String(config.flags.port ?? 7420),
    '--dead-letters',
    deadLetters.join(','),
  ],
  { stdio: 'inherit', env: { ...process.env, BACKTRACK_PREFIX: config.prefix } },
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code) => process.exit(code ?? 0));
