import type { ContentMode } from '@backtrack/core';
import { resolveReconnectOptions, type ReconnectOptions } from './connection/RabbitConnection.js';
import {
  DEFAULT_RABBIT_CONSUMER_OPTIONS,
  validateConsumerOptions,
  type RabbitConsumerOptions,
} from './consumer/RabbitSubscription.js';
import { RabbitConfigError } from './errors.js';
import type { RabbitTransportOptions, RoutingKeyStrategy } from './RabbitTransport.js';

/** Defaults of the transport-level options. */
export const DEFAULT_RABBIT_TRANSPORT_OPTIONS = Object.freeze({
  routingKey: 'type' as RoutingKeyStrategy,
  publishTimeoutMs: 30_000,
  closeTimeoutMs: 10_000,
  contentMode: 'binary' as ContentMode,
});

/** {@link RabbitTransportOptions} checked, with every default filled in. */
export interface ResolvedRabbitTransportOptions {
  routingKey: RoutingKeyStrategy;
  publishTimeoutMs: number;
  closeTimeoutMs: number;
  contentMode: ContentMode;
  /** Defaults of every subscription. */
  consumerDefaults: RabbitConsumerOptions;
  reconnect: Required<ReconnectOptions>;
}

/**
 * The one check of the transport's options, made by `createRabbitTransport` before it connects
 * and by the `RabbitTransport` constructor: both reject a bad option with the same
 * `RabbitConfigError` (`BT_ERR_AMQP_CONFIG_INVALID`, `details.field`).
 * @throws {RabbitConfigError} naming the first invalid field.
 */
export function resolveRabbitTransportOptions(
  options: RabbitTransportOptions,
): ResolvedRabbitTransportOptions {
  if (typeof options !== 'object' || options === null) {
    throw new RabbitConfigError('options', 'must be an object with a url', options);
  }
  const url: unknown = options.url;
  if (!(typeof url === 'string' ? url.length > 0 : typeof url === 'object' && url !== null)) {
    throw new RabbitConfigError('url', 'must be an amqp(s):// URL or a connect object', url);
  }
  const heartbeat = options.heartbeatSeconds;
  if (heartbeat !== undefined && (!Number.isFinite(heartbeat) || heartbeat < 0)) {
    throw new RabbitConfigError('heartbeatSeconds', 'must be a non-negative number', heartbeat);
  }
  const merged = { ...DEFAULT_RABBIT_TRANSPORT_OPTIONS, ...stripUndefined(options) };
  for (const field of ['publishTimeoutMs', 'closeTimeoutMs'] as const) {
    const value = merged[field];
    if (!Number.isFinite(value) || value <= 0) {
      throw new RabbitConfigError(field, 'must be a positive number of ms', value);
    }
  }
  const routing = merged.routingKey;
  if (typeof routing !== 'function' && routing !== 'type' && routing !== 'key') {
    throw new RabbitConfigError('routingKey', "must be 'type', 'key' or a function", routing);
  }
  if (merged.contentMode !== 'binary' && merged.contentMode !== 'structured') {
    throw new RabbitConfigError(
      'contentMode',
      "must be 'binary' or 'structured'",
      merged.contentMode,
    );
  }
  const consumerDefaults = {
    ...DEFAULT_RABBIT_CONSUMER_OPTIONS,
    ...stripUndefined(options.consumer ?? {}),
  };
  validateConsumerOptions(consumerDefaults);
  return {
    routingKey: routing,
    publishTimeoutMs: merged.publishTimeoutMs,
    closeTimeoutMs: merged.closeTimeoutMs,
    contentMode: merged.contentMode,
    consumerDefaults,
    reconnect: resolveReconnectOptions(options.reconnect),
  };
}

/** A copy without the keys whose value is `undefined` (so they do not override a default). */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
