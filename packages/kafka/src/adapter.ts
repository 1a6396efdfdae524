/**
 * @backtrack/kafka/adapter: for people who work below the transport. The client port the
 * transport drives (`KafkaTransportDependencies.client`) and the kafkajs implementation of it,
 * to wrap or to replace with another driver; the record binding (envelope to Kafka record and
 * back) and its header names, for producers and readers outside Backtrack; and the classifier
 * that turns a kafkajs error into a `KafkaAccessError`. Applications import
 * `@backtrack/kafka`; nothing here is needed to use the transport.
 */
export { createKafkajsClient } from './client/kafkajsClient.js';
export type { KafkajsConnectionOptions } from './client/kafkajsClient.js';
export type {
  BatchControls,
  ConsumedBatch,
  ConsumedRecord,
  ConsumerGroupEvent,
  ConsumerSettings,
  KafkaAdminClient,
  KafkaClient,
  KafkaConsumerClient,
  KafkaHeaderValue,
  KafkaProducerClient,
  PartitionOffsets,
  ProducerRecord,
  ProducerSettings,
  TopicPartitions,
  TopicRecords,
  TopicSpec,
} from './client/KafkaClient.js';
export {
  BACKTRACK_HEADERS,
  CLOUD_EVENTS_HEADER_PREFIX,
  CONTENT_TYPE_HEADER,
  fromKafkaRecord,
  toKafkaRecord,
} from './envelope/kafkaBinding.js';
export { NULL_HEADERS_HEADER } from './envelope/deadLetter.js';
export { classifyKafkaError } from './client/connectionErrors.js';
