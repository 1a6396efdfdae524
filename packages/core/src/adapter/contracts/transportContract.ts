/**
 * The shared Transport contract suite: the behaviours of the `Transport` port (see
 * `transport/Transport.ts`) that every implementation must show, in-memory and real brokers
 * alike. Published in `@backtrack/core/adapter`; the test runner comes in as an argument (see
 * testApi.ts).
 *
 * The suite drives the transport with hand-written processors, so it checks the transport alone:
 * wire fidelity, per-key order, and what each disposition does.
 */
import { randomUUID } from 'node:crypto';
import type { ContractTestApi } from './testApi.js';
import type { Disposition, IncomingMessage, MessageProcessor } from '../../consumer/processor.js';
import type { EncodedMessage } from '../../envelope/types.js';
import type { Transport } from '../../transport/Transport.js';

/** A dead letter as the contract compares it. */
export interface ContractDeadLetter {
  /** The original headers and bytes, unchanged. */
  message: EncodedMessage;
  reason: string;
  code: string;
}

/** What a contract run needs from one implementation. */
export interface TransportContractHarness {
  /** A transport connected to the backend; the suite closes it at the end of each test. */
  transport: Transport;
  /** Creates or declares what publishing to and consuming `topic` needs (topics, queues). */
  prepare?(topic: string): Promise<void>;
  /**
   * The dead letters of `topic` parked by consumer `group`, oldest first. Called until it
   * returns at least `expected` (or the test times out).
   */
  deadLetters(topic: string, group: string, expected: number): Promise<ContractDeadLetter[]>;
  /** Drops what the test created. */
  cleanup?(): Promise<unknown>;
}

/** Options of {@link transportContract}. */
export interface TransportContractOptions {
  /** Per-test timeout, in ms. @default 60_000 */
  timeoutMs?: number;
}

const ACK: Disposition = { kind: 'ack', outcome: 'handled' };

function name(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

function message(data: unknown, extra: Record<string, string> = {}): EncodedMessage {
  return {
    headers: {
      id: randomUUID(),
      source: '//backtrack/contract',
      type: 'contract.event',
      specversion: '1.0',
      time: new Date().toISOString(),
      schemaversion: '1',
      'content-type': 'application/json',
      ...extra,
    },
    body: new TextEncoder().encode(JSON.stringify(data)),
  };
}

function dataOf(m: IncomingMessage): unknown {
  return JSON.parse(new TextDecoder().decode(m.message.body));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function recorder(decide: (m: IncomingMessage) => Disposition = () => ACK) {
  const calls: IncomingMessage[] = [];
  const processor: MessageProcessor = {
    async process(m) {
      calls.push(m);
      return decide(m);
    },
  };
  return { calls, processor };
}

/**
 * Registers the Transport contract with `test` (`{ describe, it, expect }`) for one
 * implementation. `factory` is called once per test.
 *
 * @example
 * transportContract('InMemoryTransport', async () => {
 *   const transport = new InMemoryTransport();
 *   return { transport, deadLetters: async (topic, group) => transport.deadLetters.filter(...) };
 * }, { describe, it, expect });
 */
export function transportContract(
  label: string,
  factory: () => Promise<TransportContractHarness>,
  test: ContractTestApi,
  options: TransportContractOptions = {},
): void {
  const { describe, it, expect } = test;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const wait = timeoutMs / 2;

  async function withTransport(fn: (h: TransportContractHarness, topic: string) => Promise<void>) {
    const h = await factory();
    const topic = name('contract');
    try {
      await h.prepare?.(topic);
      await fn(h, topic);
    } finally {
      await h.transport.close();
      await h.cleanup?.();
    }
  }

  describe(`Transport contract: ${label}`, () => {
    it(
      'delivers the published headers and bytes unchanged, as attempt 1, with its topic and group',
      () =>
        withTransport(async ({ transport }, topic) => {
          const group = name('g');
          const sent = message({ n: 1, text: 'zß€🙂' }, { sagaid: 'saga-1', traceparent: 'tp' });
          const { calls, processor } = recorder();
          await transport.subscribe({ topics: [topic], group, processor });
          await transport.publish([{ topic, key: 'k', message: sent }]);
          await until(() => calls.length === 1, 'the delivery', wait);
          const got = calls[0]!;
          expect(got.message.headers).toEqual(sent.headers);
          expect(sameBytes(got.message.body, sent.body)).toBe(true);
          expect(got.attempt).toBe(1);
          expect(got.origin).toMatchObject({ topic, group });
          expect(typeof got.origin.transport).toBe('string');
        }),
      timeoutMs,
    );

    it(
      'keeps the publish order of one key',
      () =>
        withTransport(async ({ transport }, topic) => {
          const { calls, processor } = recorder();
          await transport.subscribe({ topics: [topic], group: name('g'), processor });
          const n = 30;
          await transport.publish(
            Array.from({ length: n }, (_, i) => ({
              topic,
              key: i % 2 === 0 ? 'even' : 'odd',
              message: message({ i }),
            })),
          );
          await until(() => calls.length === n, `${n} deliveries`, wait);
          const order = (parity: number) =>
            calls.map((c) => (dataOf(c) as { i: number }).i).filter((i) => i % 2 === parity);
          expect(order(0)).toEqual([...Array(n).keys()].filter((i) => i % 2 === 0));
          expect(order(1)).toEqual([...Array(n).keys()].filter((i) => i % 2 === 1));
        }),
      timeoutMs,
    );

    it(
      'retry: delivers the message again with attempt + 1, not before the delay',
      () =>
        withTransport(async ({ transport }, topic) => {
          const at: number[] = [];
          const { calls, processor } = recorder((m) => {
            at.push(Date.now());
            return m.attempt < 3 ? { kind: 'retry', delayMs: 200, reason: 'not yet' } : ACK;
          });
          const sent = message({ retry: true });
          await transport.subscribe({ topics: [topic], group: name('g'), processor });
          await transport.publish([{ topic, key: 'k', message: sent }]);
          await until(() => calls.length === 3, 'three attempts', wait);
          expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
          expect(calls.every((c) => c.message.headers.id === sent.headers.id)).toBe(true);
          expect(sameBytes(calls[2]!.message.body, sent.body)).toBe(true);
          expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(190);
          expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(190);
          await new Promise((r) => setTimeout(r, 300));
          expect(calls).toHaveLength(3);
        }),
      timeoutMs,
    );

    it(
      'dead-letter: parks the original headers and bytes with reason and code, and goes on',
      () =>
        withTransport(async (h, topic) => {
          const group = name('g');
          const poison = message('poison');
          const { calls, processor } = recorder((m) =>
            dataOf(m) === 'poison'
              ? { kind: 'dead-letter', reason: 'cannot read it', code: 'BT_ERR_CONTRACT_POISON' }
              : ACK,
          );
          await h.transport.subscribe({ topics: [topic], group, processor });
          await h.transport.publish([
            { topic, key: 'k', message: poison },
            { topic, key: 'k', message: message('next') },
          ]);
          await until(() => calls.some((c) => dataOf(c) === 'next'), 'the next message', wait);
          let dls: ContractDeadLetter[] = [];
          await until(
            async () => (dls = await h.deadLetters(topic, group, 1)).length >= 1,
            'the dead letter',
            wait,
          );
          expect(dls).toHaveLength(1);
          expect(dls[0]!.message.headers).toEqual(poison.headers);
          expect(sameBytes(dls[0]!.message.body, poison.body)).toBe(true);
          expect(dls[0]).toMatchObject({
            reason: 'cannot read it',
            code: 'BT_ERR_CONTRACT_POISON',
          });
          expect(calls.filter((c) => dataOf(c) === 'poison')).toHaveLength(1);
        }),
      timeoutMs,
    );

    it(
      'redeliver: the message comes again and is never dropped',
      () =>
        withTransport(async ({ transport }, topic) => {
          let refusals = 0;
          const { calls, processor } = recorder(() =>
            refusals++ < 2
              ? { kind: 'redeliver', reason: 'store down', delayMs: 100, pause: true }
              : ACK,
          );
          const sent = message({ redeliver: true });
          await transport.subscribe({ topics: [topic], group: name('g'), processor });
          await transport.publish([{ topic, key: 'k', message: sent }]);
          await until(() => calls.length === 3, 'three deliveries', wait);
          expect(calls.every((c) => c.message.headers.id === sent.headers.id)).toBe(true);
          await new Promise((r) => setTimeout(r, 300));
          expect(calls).toHaveLength(3);
        }),
      timeoutMs,
    );

    it(
      'every consumer group gets every message',
      () =>
        withTransport(async ({ transport }, topic) => {
          const a = recorder();
          const b = recorder();
          await transport.subscribe({ topics: [topic], group: name('a'), processor: a.processor });
          await transport.subscribe({ topics: [topic], group: name('b'), processor: b.processor });
          const sent = [message(1), message(2), message(3)];
          await transport.publish(sent.map((m, i) => ({ topic, key: `k${i}`, message: m })));
          await until(() => a.calls.length === 3 && b.calls.length === 3, 'both groups', wait);
          const ids = (calls: IncomingMessage[]) => calls.map((c) => c.message.headers.id).sort();
          expect(ids(a.calls)).toEqual(sent.map((m) => m.headers.id).sort());
          expect(ids(b.calls)).toEqual(ids(a.calls));
        }),
      timeoutMs,
    );

    it(
      'rejects publish after close',
      async () => {
        const h = await factory();
        try {
          await h.transport.close();
          await expect(
            h.transport.publish([{ topic: name('closed'), message: message(1) }]),
          ).rejects.toThrow();
        } finally {
          await h.cleanup?.();
        }
      },
      timeoutMs,
    );
  });
}
