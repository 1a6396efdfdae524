/**
 * A foreign producer for the tests: `kcat` (Debian package `kcat`, librdkafka), which writes what
 * kafkajs cannot: header values that are null (`-H name`, no `=`), tombstones (`-Z`), keys and
 * header values of any bytes. Installed with apt when missing (the test machines run as root);
 * tests that need it fail loudly when it cannot be installed.
 */
import { execFileSync } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { ensureDebianTool } from '../../../test/support/debianTool.js';

/** The path of `kcat`, installing the Debian package when it is missing. Throws when it cannot. */
export function ensureKcat(): string {
  return ensureDebianTool('kcat', 'kcat');
}

/** One record for {@link kcatProduce}. */
export interface ForeignRecord {
  /** Key bytes; null for none. (kcat sends a key it gets as a command-line argument.) */
  key: Buffer | null;
  /** Value bytes; null for a tombstone. */
  value: Buffer | null;
  /** Headers in order; a null value is a header with no value (`-H name`). */
  headers: [string, Buffer | null][];
  /** Partition; the broker's partitioner when absent. */
  partition?: number;
}

const RECORD_END = '\u0001\u0002end-of-record\u0002\u0001';
const KEY_END = '\u0001\u0002end-of-key\u0002\u0001';

/**
 * Produces records as a foreign client would (acks=all). Records with a null-valued header go
 * through `kcat` (one run each; key and value of any bytes pass through stdin, header values
 * through argv, so they must be UTF-8 text); the others through a bare kafkajs producer, which
 * writes keys, values (null: a tombstone) and header values of any bytes but no null headers.
 */
export async function produceForeign(
  brokers: string[],
  topic: string,
  records: ForeignRecord[],
): Promise<void> {
  const viaKcat = records.filter((r) => r.headers.some(([, v]) => v === null));
  const viaKafkajs = records.filter((r) => !viaKcat.includes(r));
  if (viaKcat.length > 0) kcatProduce(brokers, topic, viaKcat);
  if (viaKafkajs.length === 0) return;
  const kafka = new Kafka({ brokers, clientId: 'foreign-producer', logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: viaKafkajs.map((r) => {
        const headers: Record<string, Buffer[]> = {};
        for (const [name, value] of r.headers) (headers[name] ??= []).push(value!);
        return {
          key: r.key,
          value: r.value,
          headers,
          ...(r.partition === undefined ? {} : { partition: r.partition }),
        };
      }),
    });
  } finally {
    await producer.disconnect();
  }
}

/** Produces each record with one `kcat -P` run; see {@link produceForeign}. */
export function kcatProduce(brokers: string[], topic: string, records: ForeignRecord[]): void {
  const kcat = ensureKcat();
  for (const r of records) {
    const args = ['-P', '-b', brokers.join(','), '-t', topic, '-X', 'acks=all', '-c', '1'];
    args.push('-D', RECORD_END, '-K', KEY_END);
    if (r.partition !== undefined) args.push('-p', String(r.partition));
    for (const [name, value] of r.headers) {
      if (value !== null && !Buffer.from(value.toString('utf8'), 'utf8').equals(value))
        throw new Error('kcatProduce: header values must be UTF-8 text (they go through argv)');
      args.push('-H', value === null ? name : `${name}=${value.toString('utf8')}`);
    }
    if (r.value === null) args.push('-Z');
    const input = Buffer.concat([
      r.key ?? Buffer.alloc(0),
      Buffer.from(KEY_END, 'latin1'),
      r.value ?? Buffer.alloc(0),
      Buffer.from(RECORD_END, 'latin1'),
    ]);
    execFileSync(kcat, args, {
      input,
      timeout: 30_000,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
  }
}
