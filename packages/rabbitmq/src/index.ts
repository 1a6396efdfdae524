/**
 * @backtrack/rabbitmq: the RabbitMQ (amqplib) transport, its topology and dead-letter tools, for
 * applications. The message binding, the connection's setup hooks and the error classifier are
 * in `@backtrack/rabbitmq/adapter`.
 */
export { createRabbitTransport, RabbitTransport } from './RabbitTransport.js';
export { DEFAULT_RABBIT_TRANSPORT_OPTIONS } from './options.js';
export type {
  ConnectedRabbitDependencies,
  RabbitTransportOptions,
  RabbitTransportDependencies,
  RabbitSubscriptionOptions,
  RoutingKeyStrategy,
} from './RabbitTransport.js';
export { DEFAULT_RECONNECT_OPTIONS } from './connection/RabbitConnection.js';
export type { RabbitConnectionOptions, ReconnectOptions } from './connection/RabbitConnection.js';
// `transport.connection`: opened by the transport, never by hand, so exported as a type only.
export type { RabbitConnection } from './connection/RabbitConnection.js';
// Made by the transport (`subscribe`, `publish`), never by hand: exported as types only.
export type { RabbitPublisher } from './publisher/RabbitPublisher.js';
export type { RabbitPublisherStats } from './publisher/RabbitPublisher.js';
export { DEFAULT_RABBIT_CONSUMER_OPTIONS } from './consumer/RabbitSubscription.js';
export type { RabbitSubscription } from './consumer/RabbitSubscription.js';
export type {
  RabbitConsumerOptions,
  RabbitSubscriptionStats,
} from './consumer/RabbitSubscription.js';
export { readDeadLetter } from './envelope/deadLetter.js';
export type { DeadLetter } from './envelope/deadLetter.js';
export {
  consumerTopology,
  declareTopology,
  deleteTopology,
  queueArguments,
  capabilitiesOf,
  QUEUE_TYPES,
  DEFAULT_DEAD_LETTER_DELIVERY_LIMIT,
} from './topology/topology.js';
export type {
  Topology,
  ExchangeDeclaration,
  QueueDeclaration,
  BindingDeclaration,
  BrokerCapabilities,
  ConsumerTopology,
  ConsumerTopologyOptions,
  DeadLetterOptions,
  QueueType,
} from './topology/topology.js';
export { browseDeadLetters, redriveDeadLetters } from './redrive/deadLetterQueue.js';
export type {
  BrowseDeadLettersOptions,
  RedriveDeadLettersOptions,
  RedriveDeadLettersResult,
} from './redrive/deadLetterQueue.js';
export { closeOnSignals } from './shutdown.js';
export type { CloseOnSignalsOptions } from './shutdown.js';
export {
  RABBIT_ERROR_CODES,
  RabbitError,
  RabbitConfigError,
  RabbitPublishError,
  RabbitUnroutableError,
  RabbitClosedError,
  RabbitConnectionError,
  RabbitTopologyError,
} from './errors.js';
export type { RabbitErrorCode } from './errors.js';
export { RABBIT_ACCESS_ERROR_CODES, RabbitAccessError } from './connection/connectionErrors.js';
export { monitorRabbitQueueLag } from './telemetry/queueLag.js';
export type { RabbitQueueLagMonitor, RabbitQueueLagOptions } from './telemetry/queueLag.js';
