/**
 * Names of every span, attribute and metric Backtrack emits (docs/observability.md). Messaging
 * names follow the OpenTelemetry semantic conventions for messaging; the rest are `backtrack.*`.
 */

/** The instrumentation scope of every tracer and meter. */
export const INSTRUMENTATION_SCOPE = '@backtrack/core';

/** Span names (operation first, then the destination or saga name, as the conventions ask). */
export const SPAN_NAMES = {
  /** Producer span of `publisher.publish`: `send <topic>`. */
  send: (destination: string) => `send ${destination}`,
  /** Consumer span of one message through the pipeline and its handler: `process <topic>`. */
  process: (destination: string) => `process ${destination}`,
  /** One saga, from `saga.started` to its end: `saga <name>`. */
  saga: (name: string) => `saga ${name}`,
  /** One step attempt: `step <saga>.<step>`. */
  step: (saga: string, step: string) => `step ${saga}.${step}`,
  /** One compensation attempt: `compensate <saga>.<step>`. */
  compensation: (saga: string, step: string) => `compensate ${saga}.${step}`,
  /** One rollback run. */
  rollback: 'backtrack.rollback',
} as const;

/** Span and metric attribute keys. */
export const ATTR = {
  // OpenTelemetry messaging semantic conventions.
  MESSAGING_SYSTEM: 'messaging.system',
  MESSAGING_DESTINATION: 'messaging.destination.name',
  MESSAGING_OPERATION_TYPE: 'messaging.operation.type',
  MESSAGING_OPERATION_NAME: 'messaging.operation.name',
  MESSAGING_MESSAGE_ID: 'messaging.message.id',
  MESSAGING_CONSUMER_GROUP: 'messaging.consumer.group.name',
  MESSAGING_PARTITION: 'messaging.destination.partition.id',
  MESSAGING_KAFKA_OFFSET: 'messaging.kafka.offset',
  MESSAGING_KAFKA_KEY: 'messaging.kafka.message.key',
  ERROR_TYPE: 'error.type',
  // CloudEvents semantic conventions.
  CLOUDEVENTS_ID: 'cloudevents.event_id',
  CLOUDEVENTS_TYPE: 'cloudevents.event_type',
  CLOUDEVENTS_SOURCE: 'cloudevents.event_source',
  // Backtrack.
  CONSUMER: 'backtrack.consumer.name',
  DELIVERY_ATTEMPT: 'backtrack.delivery.attempt',
  DISPOSITION: 'backtrack.disposition',
  DEAD_LETTER_REASON: 'backtrack.dead_letter.reason',
  DEAD_LETTER_CODE: 'backtrack.dead_letter.code',
  SCHEMA_VERSION: 'backtrack.schema.version',
  PRODUCER_SERVICE: 'backtrack.producer.service',
  PRODUCER_VERSION: 'backtrack.producer.version',
  SAGA_ID: 'backtrack.saga.id',
  SAGA_NAME: 'backtrack.saga.name',
  SAGA_VERSION: 'backtrack.saga.definition_version',
  SAGA_STATUS: 'backtrack.saga.status',
  SAGA_STEP: 'backtrack.saga.step',
  SAGA_ATTEMPT: 'backtrack.saga.attempt',
  ROLLBACK_ID: 'backtrack.rollback.id',
  ROLLBACK_SERVICE: 'backtrack.rollback.service',
  ROLLBACK_VERSION: 'backtrack.rollback.version',
  ROLLBACK_STATE: 'backtrack.rollback.item_state',
} as const;

/**
 * The disposition recorded on a consumer span and metric: the pipeline's disposition kind, with
 * `ack` split into `ack` (handled), `duplicate` and `ignored`.
 */
export type TelemetryDisposition =
  'ack' | 'duplicate' | 'ignored' | 'retry' | 'redeliver' | 'dead-letter';

/** Metric names and units (UCUM). */
export const METRICS = {
  /** Counter: messages the consumer pipeline finished, by disposition and event type. */
  consumerMessages: { name: 'backtrack.consumer.messages', unit: '{message}' },
  /** Histogram: time from the pipeline taking a message to its disposition (handler included). */
  consumerDuration: { name: 'backtrack.consumer.process.duration', unit: 's' },
  /** Counter: duplicates the dedupe store absorbed (acknowledged without calling the handler). */
  consumerDuplicates: { name: 'backtrack.consumer.duplicates', unit: '{message}' },
  /** Counter: dead letters, by reason (the dead-letter vocabulary, docs/dead-letters.md). */
  consumerDeadLetters: { name: 'backtrack.consumer.dead_letters', unit: '{message}' },
  /** Counter: events published (acknowledged by the broker, or failed), by event type. */
  publisherMessages: { name: 'backtrack.publisher.messages', unit: '{message}' },
  /** Counter: sagas started, by saga name. */
  sagaStarted: { name: 'backtrack.saga.started', unit: '{saga}' },
  /** Counter: sagas that ended, by saga name and status (completed, compensated, failed). */
  sagaEnded: { name: 'backtrack.saga.ended', unit: '{saga}' },
  /** Observable gauge: sagas stuck now (seen `saga.stuck` and no later event), by saga name. */
  sagaStuck: { name: 'backtrack.saga.stuck', unit: '{saga}' },
  /** Histogram: duration of one step or compensation attempt, by saga, step and outcome. */
  sagaStepDuration: { name: 'backtrack.saga.step.duration', unit: 's' },
  /**
   * Observable gauge: messages not yet consumed: per Kafka partition the high watermark minus the
   * group's committed offset, per RabbitMQ queue the messages ready (a poller in each adapter).
   */
  consumerLag: { name: 'backtrack.consumer.lag', unit: '{message}' },
  /** Observable gauge: journal records appended but not yet published, by producing service. */
  journalPending: { name: 'backtrack.publisher.journal.pending', unit: '{record}' },
  /** Observable gauge: age of the oldest journal record not yet published (0 when none). */
  journalLag: { name: 'backtrack.publisher.journal.lag', unit: 's' },
  /** Counter: rollback items processed, by state. */
  rollbackItems: { name: 'backtrack.rollback.items', unit: '{item}' },
} as const;
