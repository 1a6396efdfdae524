// Deletes RabbitMQ queues that earlier test runs left behind, so they cannot pile up until the
// broker runs out of file handles (it then accepts TCP but never answers the AMQP handshake).
// Only queues named by test/support's uniqueName() (`<prefix>-<pid>-<base36 time>-<random>`,
// plus suffixes such as `.dlq` or `.retry.1000ms`) with no consumer are touched.
import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';

const TEST_QUEUE = /-\d+-[0-9a-z]{7,9}-[0-9a-z]{4,6}(\.|$)/;
const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

let listing;
try {
  listing = execFileSync('rabbitmqctl', ['-q', 'list_queues', 'name', 'consumers'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
} catch (error) {
  console.warn(`clean-test-queues: cannot list queues (${error.message}); skipping`);
  process.exit(0);
}
const stale = listing
  .split('\n')
  .map((line) => line.trim().split(/\s+/))
  .filter(([name, consumers]) => name && TEST_QUEUE.test(name) && consumers === '0')
  .map(([name]) => name);
if (stale.length === 0) {
  console.log('clean-test-queues: nothing to delete');
  process.exit(0);
}
const connection = await amqp.connect(url, { timeout: 10_000 });
const channel = await connection.createChannel();
let deleted = 0;
for (const name of stale) {
  try {
    await channel.deleteQueue(name);
    deleted += 1;
  } catch (error) {
    console.warn(`clean-test-queues: ${name}: ${error.message}`);
    break; // the channel is closed after a failed delete
  }
}
await connection.close().catch(() => undefined);
console.log(`clean-test-queues: deleted ${deleted} of ${stale.length} stale test queues`);
