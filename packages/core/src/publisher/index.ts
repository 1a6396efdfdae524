export { createPublisher, DEFAULT_PUBLISHER_BATCHING } from './Publisher.js';
export type {
  JournalingPublisher,
  Publisher,
  PublisherDependencies,
  PublisherBatchingOptions,
  PublisherOptions,
  PublishOptions,
} from './Publisher.js';
export { OutboxRelay, DEFAULT_OUTBOX_RELAY_OPTIONS } from './OutboxRelay.js';
export type { OutboxRelayDependencies, OutboxRelayOptions, RelayResult } from './OutboxRelay.js';
export { deterministicId, BACKTRACK_ID_NAMESPACE } from './deterministicId.js';
export { PublishFailedError, PublisherConfigError } from './errors.js';
