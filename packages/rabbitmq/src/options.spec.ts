/**
 * One way to construct: `createRabbitTransport` (which connects) and the `RabbitTransport`
 * constructor check the options with the same function, so a bad option fails both with the same
 * `RabbitConfigError` code and field. The factory checks before connecting: the URL points at a
 * port nothing listens on, so a check that ran only after connecting would show up here as a
 * connection error instead.
 */
import { describe, expect, it } from 'vitest';
import { RabbitConfigError, RABBIT_ERROR_CODES } from './errors.js';
import { DEFAULT_RABBIT_CONSUMER_OPTIONS } from './consumer/RabbitSubscription.js';
import { DEFAULT_RECONNECT_OPTIONS } from './connection/RabbitConnection.js';
import { DEFAULT_RABBIT_TRANSPORT_OPTIONS, resolveRabbitTransportOptions } from './options.js';
import {
  createRabbitTransport,
  RabbitTransport,
  type ConnectedRabbitDependencies,
  type RabbitTransportOptions,
} from './RabbitTransport.js';

const base: RabbitTransportOptions = {
  url: 'amqp://guest:guest@127.0.0.1:1',
  reconnect: { initialMaxRetries: 0 },
};

const BAD: Array<[field: string, options: RabbitTransportOptions]> = [
  ['url', { ...base, url: '' }],
  ['heartbeatSeconds', { ...base, heartbeatSeconds: -1 }],
  ['publishTimeoutMs', { ...base, publishTimeoutMs: 0 }],
  ['closeTimeoutMs', { ...base, closeTimeoutMs: Number.NaN }],
  ['routingKey', { ...base, routingKey: 'exchange' as never }],
  ['contentMode', { ...base, contentMode: 'json' as never }],
  ['prefetch', { ...base, consumer: { prefetch: 0 } }],
  ['retryDelaysMs', { ...base, consumer: { retryDelaysMs: [5_000, 1_000] } }],
  ['reconnect.jitter', { ...base, reconnect: { jitter: 2 } }],
  ['reconnect.factor', { ...base, reconnect: { factor: -1 } }],
];

/** What `fn` threw (or rejected with), as the code and field a caller branches on. */
async function failureOf(fn: () => unknown): Promise<{ code: string; field: unknown }> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RabbitConfigError);
    const e = error as RabbitConfigError;
    return { code: e.code, field: e.details.field };
  }
  throw new Error('did not throw');
}

describe('RabbitTransport options: one check for the factory and the constructor', () => {
  it.each(BAD)('%s: both reject it with BT_ERR_AMQP_CONFIG_INVALID naming it', async (field, o) => {
    const expected = { code: RABBIT_ERROR_CODES.CONFIG_INVALID, field };
    expect(await failureOf(() => createRabbitTransport(o))).toEqual(expected);
    // Options are checked before the dependencies are looked at: none are needed to see it.
    expect(
      await failureOf(() => new RabbitTransport(o, {} as ConnectedRabbitDependencies)),
    ).toEqual(expected);
  });

  it('the constructor refuses to make a transport without the connection and publisher', async () => {
    expect(await failureOf(() => new RabbitTransport(base, {} as never))).toEqual({
      code: RABBIT_ERROR_CODES.CONFIG_INVALID,
      field: 'dependencies.connection',
    });
  });

  it('fills every default in', () => {
    const resolved = resolveRabbitTransportOptions({ url: 'amqp://localhost', closeTimeoutMs: 5 });
    expect(resolved).toEqual({
      routingKey: DEFAULT_RABBIT_TRANSPORT_OPTIONS.routingKey,
      publishTimeoutMs: DEFAULT_RABBIT_TRANSPORT_OPTIONS.publishTimeoutMs,
      closeTimeoutMs: 5,
      contentMode: 'binary',
      consumerDefaults: DEFAULT_RABBIT_CONSUMER_OPTIONS,
      reconnect: DEFAULT_RECONNECT_OPTIONS,
    });
  });
});
