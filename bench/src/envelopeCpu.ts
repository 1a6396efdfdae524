/**
 * Envelope CPU: the per-message envelope work of a publish and a receive, each stage alone, in
 * CPU ns per operation (process CPU over a loop; the median of the rounds):
 *
 * - `build`: `EventDefinition.envelope` (zod validation of the data, then the envelope) with the
 *   options the journaling publisher passes;
 * - `prepare`: `prepareJournaledEvent`, what `Publisher.publish` does per event (build, journal
 *   record, encode);
 * - `encode` / `decode`: `encodeEnvelope` / `decodeEnvelope` (binary content mode);
 * - `read`: `EventRegistry.read` of a decoded envelope (the consumer's validation);
 * - `id`: `deterministicId(id, 'reply')`.
 *
 * Run: `TSX_TSCONFIG_PATH=../tsconfig.json npx tsx src/envelopeCpu.ts [iterations] [rounds] [stages]`
 * (`stages`: comma-separated names, default all);
 * profile it with `node --cpu-prof --import tsx`.
 */
import {
  decodeEnvelope,
  defineEvent,
  deterministicId,
  encodeEnvelope,
  EventRegistry,
  type EncodedMessage,
  type Envelope,
} from '@backtrack/core';
import { prepareJournaledEvent, type EventStamp } from '@backtrack/core/adapter';
import { z } from 'zod';

const ChargeRequested = defineEvent('bench.charge-requested').version(
  1,
  z.object({
    orderId: z.string().min(1),
    amountCents: z.number().int().nonnegative(),
    card: z.string().min(4),
  }),
);
const registry = new EventRegistry([ChargeRequested]);
const stamp: EventStamp = {
  service: 'orders',
  version: '1.0.0',
  source: '//backtrack/orders',
  topicFor: () => 'orders',
  registry,
  now: () => new Date(),
  writer: 'publisher',
};

const n = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 7);

const orderIds = Array.from({ length: 1024 }, (_, i) => `order-${i.toString(36)}-${i}`);
const data = orderIds.map((orderId, i) => ({ orderId, amountCents: 1000 + i, card: '4242' }));
const options = orderIds.map((orderId) => ({
  key: orderId,
  sagaId: `saga-${orderId}`,
  causationId: `cause-${orderId}`,
}));
const envelopes: Envelope<unknown>[] = data.map((d, i) =>
  ChargeRequested.envelope(d, {
    source: stamp.source,
    time: new Date(),
    sagaid: options[i]!.sagaId,
    causationid: options[i]!.causationId,
    producerservice: 'orders',
    producerversion: '1.0.0',
    partitionkey: options[i]!.key,
  }),
);
const messages: EncodedMessage[] = envelopes.map((e) => encodeEnvelope(e));
const decoded = messages.map((m) => decodeEnvelope(m));

let sink = 0;
const stages: Record<string, (i: number) => void> = {
  build(i) {
    const o = options[i & 1023]!;
    sink += ChargeRequested.envelope(data[i & 1023]!, {
      source: stamp.source,
      time: stamp.now(),
      sagaid: o.sagaId,
      causationid: o.causationId,
      producerservice: 'orders',
      producerversion: '1.0.0',
      partitionkey: o.key,
    }).id.length;
  },
  prepare(i) {
    sink += prepareJournaledEvent(stamp, ChargeRequested, data[i & 1023]!, options[i & 1023]!)
      .record.message.body.length;
  },
  encode(i) {
    sink += encodeEnvelope(envelopes[i & 1023]!).body.length;
  },
  decode(i) {
    sink += decodeEnvelope(messages[i & 1023]!).id.length;
  },
  read(i) {
    sink += (registry.read(decoded[i & 1023]!) as { amountCents: number }).amountCents;
  },
  id(i) {
    sink += deterministicId(orderIds[i & 1023]!, 'reply').length;
  },
};

// A comma-separated list of stages to run (for a profile of one), default all.
const only = process.argv[4]?.split(',');
const results: Record<string, number[]> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, stage] of Object.entries(stages)) {
    if (only !== undefined && !only.includes(name)) continue;
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) stage(i);
    const c = process.cpuUsage(c0);
    (results[name] ??= []).push(((c.user + c.system) * 1000) / n);
  }
}
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
// The first round warms up the JIT: left out.
const line = Object.entries(results)
  .map(([name, values]) => `${name} ${median(values.slice(1)).toFixed(0)}`)
  .join(' | ');
console.log(`CPU ns/op (median of ${rounds - 1} rounds of ${n}): ${line} (sink ${sink % 10})`);
