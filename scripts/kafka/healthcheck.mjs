// Asks the broker for cluster metadata through kafkajs (the client the transport uses), so
// "healthy" means a real client can talk to it, not only that the port is open. Then warms up
// the group coordinator (the first FindCoordinator creates __consumer_offsets) and the producer
// id manager, so the first test does not meet "coordinator is loading" errors.
// Usage: node scripts/kafka/healthcheck.mjs 127.0.0.1:9092  (exit 0 healthy, 1 not, 2 no kafkajs)
let Kafka, logLevel;
try {
  ({ Kafka, logLevel } = (await import('kafkajs')).default);
} catch {
  process.exit(2);
}
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const broker = process.argv[2] ?? '127.0.0.1:9092';
const kafka = new Kafka({
  clientId: 'backtrack-kafka-healthcheck',
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 2000,
  requestTimeout: 5000,
  retry: { retries: 0 },
});
const admin = kafka.admin();
const producer = kafka.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  retry: { retries: 2 },
});
try {
  await admin.connect();
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length === 0) throw new Error('no brokers in metadata');
  await admin.listTopics();
  const groups = await admin.describeGroups(['backtrack-healthcheck']);
  if (groups.groups.length !== 1) throw new Error('group coordinator did not answer');
  await producer.connect();
  process.exitCode = 0;
} catch {
  process.exitCode = 1;
} finally {
  await producer.disconnect().catch(() => {});
  await admin.disconnect().catch(() => {});
}
