/** @backtrack/kafka public API. */
export { KafkaTransport, createKafkaTransport } from './KafkaTransport.js';
export type {
  KafkaTransportOptions,
  KafkaTransportDependencies,
  KafkaSubscriptionOptions,
} from './KafkaTransport.js';
export {
  DEFAULT_KAFKA_CONSUMER_OPTIONS,
  DEFAULT_KAFKA_PRODUCER_OPTIONS,
  resolveConsumerOptions,
  resolveProducerOptions,
} from './options.js';
export type { KafkaConsumerOptions, KafkaProducerOptions } from './options.js';
// Made by the transport (`subscribe`, `publish`), never by hand: exported as types only.
export type { KafkaSubscription } from './consumer/KafkaSubscription.js';
export type {
  DispositionEvent,
  KafkaSubscriptionStats,
  SubscriptionErrorEvent,
} from './consumer/KafkaSubscription.js';
export type { KafkaPublisher } from './publisher/KafkaPublisher.js';
export {
  toKafkaRecord,
  fromKafkaRecord,
  CLOUD_EVENTS_HEADER_PREFIX,
  CONTENT_TYPE_HEADER,
  BACKTRACK_HEADERS,
} from './envelope/kafkaBinding.js';
// Header helpers the subscription uses internally (restoreNullHeaders, writableHeaders) stay private.
export { NULL_HEADERS_HEADER, readDeadLetter } from './envelope/deadLetter.js';
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
export { createKafkajsClient } from './client/kafkajsClient.js';
export type { KafkajsConnectionOptions } from './client/kafkajsClient.js';
export type {
  KafkaClient,
  KafkaProducerClient,
  KafkaConsumerClient,
  ConsumerGroupEvent,
  KafkaAdminClient,
  ProducerRecord,
  TopicRecords,
  ConsumedRecord,
  ConsumedBatch,
  BatchControls,
  TopicPartitions,
  TopicSpec,
  PartitionOffsets,
  ProducerSettings,
  ConsumerSettings,
  KafkaHeaderValue,
} from './client/KafkaClient.js';
export {
  KAFKA_ERROR_CODES,
  KafkaError,
  KafkaConfigError,
  KafkaPublishError,
  KafkaClosedError,
} from './errors.js';
export type { KafkaErrorCode } from './errors.js';
export {
  KAFKA_ACCESS_ERROR_CODES,
  KafkaAccessError,
  classifyKafkaError,
} from './client/connectionErrors.js';
export { monitorKafkaConsumerLag } from './telemetry/consumerLag.js';
export type { KafkaConsumerLagMonitor, KafkaConsumerLagOptions } from './telemetry/consumerLag.js';
