/** @backtrack/rabbitmq public API. */
export {
  createRabbitTransport,
  RabbitTransport,
  DEFAULT_RABBIT_TRANSPORT_OPTIONS,
} from './RabbitTransport.js';
export type {
  RabbitTransportOptions,
  RabbitTransportDependencies,
  RabbitSubscriptionOptions,
  RoutingKeyStrategy,
} from './RabbitTransport.js';
export {
  RabbitConnection,
  DEFAULT_RECONNECT_OPTIONS,
  SETUP_PHASES,
} from './connection/RabbitConnection.js';
export type {
  RabbitConnectionOptions,
  ReconnectOptions,
  SetupHook,
  SetupPhase,
} from './connection/RabbitConnection.js';
// Made by the transport (`subscribe`, `publish`), never by hand: exported as types only.
export type { RabbitPublisher } from './publisher/RabbitPublisher.js';
export type { RabbitPublisherOptions, RabbitPublisherStats } from './publisher/RabbitPublisher.js';
export { DEFAULT_RABBIT_CONSUMER_OPTIONS } from './consumer/RabbitSubscription.js';
export type { RabbitSubscription } from './consumer/RabbitSubscription.js';
export type {
  RabbitConsumerOptions,
  RabbitSubscriptionStats,
} from './consumer/RabbitSubscription.js';
export {
  toAmqpMessage,
  fromAmqpMessage,
  CLOUD_EVENTS_HEADER_PREFIX,
  BACKTRACK_HEADERS,
} from './envelope/amqpBinding.js';
export type { AmqpMessage, AmqpMessageLike } from './envelope/amqpBinding.js';
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
export {
  RABBIT_ACCESS_ERROR_CODES,
  RabbitAccessError,
  classifyRabbitError,
} from './connection/connectionErrors.js';
export { monitorRabbitQueueLag } from './telemetry/queueLag.js';
export type { RabbitQueueLagMonitor, RabbitQueueLagOptions } from './telemetry/queueLag.js';
