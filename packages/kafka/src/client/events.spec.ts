import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type TransportEventMap } from '@backtrack/core';
import { TransportEventEmitter } from '@backtrack/core/adapter';
import type { SubscriptionErrorEvent } from '../consumer/KafkaSubscription.js';
import { instrumentSubscription, isKafkaConnectionLoss } from './events.js';
import type { ConsumerGroupEvent, KafkaConsumerClient } from './KafkaClient.js';

function setup() {
  const events = new TransportEventEmitter('kafka', pino({ level: 'silent' }));
  const seen: { name: string; event: TransportEventMap[keyof TransportEventMap] }[] = [];
  for (const name of [
    'connection.disconnected',
    'connection.reconnected',
    'consumer.crashed',
    'consumer.rebalancing',
  ] as const) {
    events.on(name, (event) => seen.push({ name, event }));
  }
  let groupListener: ((e: ConsumerGroupEvent) => void) | undefined;
  const consumer = {
    onGroupEvent: (l: (e: ConsumerGroupEvent) => void) => (groupListener = l),
  } as unknown as KafkaConsumerClient;
  const passedOn: SubscriptionErrorEvent[] = [];
  const onError = instrumentSubscription(events, 'billing', consumer, (e) => passedOn.push(e));
  return { seen, onError, passedOn, group: (e: ConsumerGroupEvent) => groupListener!(e) };
}

function connectionError(): Error {
  const inner = Object.assign(new Error('Connection error: ECONNREFUSED'), {
    name: 'KafkaJSConnectionError',
  });
  return Object.assign(new Error('Number of retries exceeded'), {
    name: 'KafkaJSNumberOfRetriesExceeded',
    originalError: inner,
  });
}

describe('Kafka transport events', () => {
  it('a crash is consumer.crashed with its restart info, and still reaches onError', () => {
    const { seen, onError, passedOn } = setup();
    const error = new TypeError('bug');
    onError({
      kind: 'consumer-crashed',
      group: 'billing',
      error,
      attempt: 2,
      restarting: false,
      retryInMs: 400,
    });
    onError({ kind: 'batch-failed', group: 'billing', error, attempt: 1, retryInMs: 100 });
    expect(seen).toEqual([
      {
        name: 'consumer.crashed',
        event: expect.objectContaining({
          transport: 'kafka',
          group: 'billing',
          error,
          restarting: false,
          attempt: 2,
          retryInMs: 400,
        }),
      },
    ]);
    expect(passedOn.map((e) => e.kind)).toEqual(['consumer-crashed', 'batch-failed']);
  });

  it('a crash on a lost connection is connection.disconnected once, and the next join connection.reconnected', () => {
    const { seen, onError, group } = setup();
    const crash = (): void =>
      onError({
        kind: 'consumer-crashed',
        group: 'billing',
        error: connectionError(),
        attempt: 1,
        restarting: true,
      });
    crash();
    crash();
    group({ phase: 'rebalancing', memberId: 'm-1' });
    group({ phase: 'joined', memberId: 'm-1', assignment: { orders: [0, 1] } });
    expect(seen.map((s) => s.name)).toEqual([
      'connection.disconnected',
      'consumer.crashed',
      'consumer.crashed',
      'consumer.rebalancing',
      'connection.reconnected',
      'consumer.rebalancing',
    ]);
    expect(seen[0]!.event).toMatchObject({ reconnecting: true });
    expect(seen[4]!.event).toMatchObject({ connects: 2 });
    expect(seen[5]!.event).toMatchObject({
      group: 'billing',
      phase: 'joined',
      memberId: 'm-1',
      assignment: { orders: [0, 1] },
    });
  });

  it('tells a lost connection from other errors', () => {
    expect(isKafkaConnectionLoss(connectionError())).toBe(true);
    expect(isKafkaConnectionLoss(new Error('x', { cause: connectionError() }))).toBe(true);
    expect(isKafkaConnectionLoss(new TypeError('bug'))).toBe(false);
    expect(isKafkaConnectionLoss(undefined)).toBe(false);
  });
});
