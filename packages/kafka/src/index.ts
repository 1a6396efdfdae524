/**
 * @backtrack/kafka: the Kafka (kafkajs) transport, for applications. The client port, the record
 * binding and the error classifier are in `@backtrack/kafka/adapter`.
 */
export { KafkaTransport, createKafkaTransport } from './KafkaTransport.js';
export type {
  KafkaTransportOptions,
  KafkaTransportDependencies,
  KafkaSubscriptionOptions,
} from './KafkaTransport.js';
export { DEFAULT_KAFKA_CONSUMER_OPTIONS, DEFAULT_KAFKA_PRODUCER_OPTIONS } from './options.js';
export type { KafkaConsumerOptions, KafkaProducerOptions } from './options.js';
// Made by the transport (`subscribe`, `publish`), never by hand: exported as types only.
export type { KafkaSubscription } from './consumer/KafkaSubscription.js';
export type {
  DispositionEvent,
  KafkaSubscriptionStats,
  SubscriptionErrorEvent,
} from './consumer/KafkaSubscription.js';
export type { KafkaPublisher } from './publisher/KafkaPublisher.js';
export { readDeadLetter } from './envelope/deadLetter.js';
export type { DeadLetter, DeadLetterHeaderValue } from './envelope/deadLetter.js';
export {
  ensureTopics,
  topicSpecs,
  defaultRetryTopic,
  defaultDeadLetterTopic,
} from './topics/topics.js';
export type { EnsureTopicsOptions, TopicNamer } from './topics/topics.js';
export { redriveDeadLetters } from './redrive/redriveDeadLetters.js';
export type { RedriveOptions, RedriveResult, RedriveTarget } from './redrive/redriveDeadLetters.js';
export { closeOnSignal } from './shutdown.js';
export type { Closeable, CloseOnSignalOptions } from './shutdown.js';
// The connection options (brokers, TLS, SASL) the transport options extend.
export type { KafkajsConnectionOptions } from './client/kafkajsClient.js';
// What `topicSpecs` returns (also in `@backtrack/kafka/adapter`, with the rest of the client port).
export type { TopicSpec } from './client/KafkaClient.js';
export {
  KAFKA_ERROR_CODES,
  KafkaError,
  KafkaConfigError,
  KafkaPublishError,
  KafkaClosedError,
} from './errors.js';
export type { KafkaErrorCode } from './errors.js';
export { KAFKA_ACCESS_ERROR_CODES, KafkaAccessError } from './client/connectionErrors.js';
export { monitorKafkaConsumerLag } from './telemetry/consumerLag.js';
export type { KafkaConsumerLagMonitor, KafkaConsumerLagOptions } from './telemetry/consumerLag.js';
