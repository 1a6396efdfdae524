/**
 * @backtrack/core/adapter: for people who write a store or a transport. The ports to implement,
 * the helpers the shipped adapters share (journal query and sequence helpers, envelope bindings,
 * dead-letter headers, retry backoff), and the contract suites an implementation must pass.
 * Applications import `@backtrack/core`; nothing here is needed to use Backtrack.
 */

// Ports and the errors their implementations throw (also exported by `@backtrack/core`).
export { BacktrackError, isRetriable } from '../errors/BacktrackError.js';
export type { BacktrackErrorOptions } from '../errors/BacktrackError.js';
export { StoreUnavailableError } from '../errors/StoreUnavailableError.js';
// The `details` of a config error, `{ field, expectation, value }`, for adapters' own ConfigErrors.
export { configDetails } from '../errors/ConfigError.js';
export { createDefaultLogger } from '../logging/logger.js';
export type { Logger } from '../logging/logger.js';
export type {
  ClaimOptions,
  ClaimResult,
  CompleteEntry,
  CompleteManyOptions,
  CompleteOptions,
  DedupeStore,
} from '../dedupe/DedupeStore.js';
export { DedupeConfigError } from '../dedupe/errors.js';
export { SagaStatus, StepStatus } from '../saga/SagaStore.js';
export type {
  SagaLease,
  SagaListQuery,
  SagaPage,
  SagaRecord,
  SagaRequest,
  SagaStore,
  StepRecord,
  StoredError,
} from '../saga/SagaStore.js';
export { SagaConcurrencyError } from '../saga/errors.js';
export { DEFAULT_JOURNAL_OPTIONS, PublishState } from '../journal/Journal.js';
export type {
  Journal,
  JournalAppend,
  JournalOptions,
  JournalPage,
  JournalQuery,
  JournalRecord,
  UnpublishedQuery,
} from '../journal/Journal.js';
export { JournalConfigError, JournalQueryError, JournalRecordError } from '../journal/errors.js';
export { ItemState, RunStatus } from '../rollback/RollbackProgressStore.js';
export type {
  ItemProgress,
  ItemUpdate,
  LeaseResult,
  RollbackProgressStore,
  RollbackRunRecord,
  RollbackSummary,
  RunCheckpoint,
} from '../rollback/RollbackProgressStore.js';
export type { RollbackPlan, RollbackPlanSummary } from '../rollback/plan.js';
export {
  RollbackLeaseLostError,
  RollbackRunConflictError,
  RollbackRunNotFoundError,
} from '../rollback/errors.js';
export type {
  OutgoingMessage,
  Subscription,
  SubscriptionOptions,
  Transport,
} from '../transport/Transport.js';
export type {
  BatchOptions,
  Disposition,
  IncomingMessage,
  MessageProcessor,
} from '../consumer/processor.js';
export type { ContentMode, EncodedMessage, Envelope, ExtensionValue } from '../envelope/types.js';
export { MalformedMessageError, MALFORMED_REASONS } from '../envelope/errors.js';
export type { MalformedReason } from '../envelope/errors.js';

// Journal implementations: sequence numbers, cursors, query normalisation and filtering.
export { nextSeq, seqToTimeMs, timeMsToSeq } from '../journal/Journal.js';
export {
  assertValidAppend,
  encodeCursor,
  matchesFilters,
  normalizeQuery,
} from '../journal/query.js';
export type { NormalizedJournalQuery } from '../journal/query.js';
export { totalItems } from '../rollback/InMemoryRollbackProgressStore.js';
export { summaryOf } from '../rollback/plan.js';
export { prepareJournaledEvent } from '../publisher/journaledEvent.js';
export type { EventStamp } from '../publisher/journaledEvent.js';

// Transport implementations: envelope bindings, dead-letter headers, retry backoff, telemetry names,
// binding keys matched against event types (RabbitMQ's topic-exchange rules, for a transport that
// filters by type on its own side).
export { createEnvelope } from '../envelope/envelope.js';
export { bindingKeyMatcher } from '../transport/bindingKeys.js';
export {
  BATCH_CONTENT_TYPE,
  DEFAULT_ENVELOPE_LIMITS,
  ENVELOPE_HEADERS,
  STRUCTURED_CONTENT_TYPE,
  contentModeOf,
  decodeEnvelope,
  encodeEnvelope,
  isJsonContentType,
  toStructuredMessage,
} from '../envelope/codec.js';
export type { DecodeOptions, EncodeOptions, EnvelopeLimits } from '../envelope/codec.js';
export {
  DEAD_LETTER_REASONS,
  DEAD_LETTER_REASON_HEADER,
  brokerDeadLetterReason,
  deadLetterReasonOf,
  truncateDeadLetterText,
} from '../deadLetter/reasons.js';
export type { DeadLetterReason } from '../deadLetter/reasons.js';
export { backoffDelayMs, sleep } from '../retry/backoff.js';
export type { RetryPolicy } from '../retry/backoff.js';
export { ATTR, METRICS, SPAN_NAMES } from '../telemetry/names.js';

// Contract suites: what every implementation of a port must do.
export type {
  ContractAssertion,
  ContractAsyncAssertion,
  ContractTestApi,
} from './contracts/testApi.js';
export { dedupeStoreContract } from './contracts/dedupeStoreContract.js';
export type { DedupeStoreContractHarness } from './contracts/dedupeStoreContract.js';
export { sagaStoreContract, makeSagaRecord } from './contracts/sagaStoreContract.js';
export type {
  SagaStoreContractHarness,
  SagaStoreContractOptions,
} from './contracts/sagaStoreContract.js';
export { journalContract } from './contracts/journalContract.js';
export type {
  JournalContractHarness,
  JournalContractOptions,
} from './contracts/journalContract.js';
export {
  rollbackProgressStoreContract,
  contractPlan,
} from './contracts/rollbackProgressStoreContract.js';
export type { RollbackProgressStoreContractHarness } from './contracts/rollbackProgressStoreContract.js';
export { transportContract } from './contracts/transportContract.js';
export type {
  ContractDeadLetter,
  TransportContractHarness,
  TransportContractOptions,
} from './contracts/transportContract.js';

// Connection access errors: what a transport or store uses to classify a refusal.
export {
  accessCodeOf,
  accessErrorOf,
  errorChain,
  tlsFailureOf,
} from '../errors/ConnectionAccessError.js';
export type { AccessErrorCodes } from '../errors/ConnectionAccessError.js';
// Transport events (`transport.on(...)`) and polled gauges (consumer lag, journal lag).
export { TransportEventEmitter } from '../transport/events.js';
export { startGaugePoller } from '../telemetry/gauges.js';
