/**
 * @backtrack/postgres: the PostgreSQL inbox (dedupe in the handler's own transaction), outbox
 * (journal written in the caller's transaction, published by a relay) and saga store, for
 * applications. The access-error classifier for tools with their own pool is in
 * `@backtrack/postgres/adapter`.
 */
export type { PostgresErrorCode } from './errors.js';
export {
  POSTGRES_ERROR_CODES,
  PostgresConfigError,
  PostgresCursorError,
  PostgresMigrationError,
  PostgresNotMigratedError,
  PostgresQueryError,
} from './errors.js';
export {
  MIGRATIONS_DIRECTORY,
  MIGRATIONS_TABLE,
  dropSchema,
  loadMigrations,
  migrate,
  migrateDatabase,
} from './migrate/migrate.js';
export type {
  MigrateDatabaseOptions,
  MigrateOptions,
  MigrateResult,
  Migration,
} from './migrate/migrate.js';
export {
  DEFAULT_POSTGRES_SAGA_STORE_OPTIONS,
  PostgresSagaStore,
} from './saga/PostgresSagaStore.js';
export type {
  PostgresSagaStoreDependencies,
  PostgresSagaStoreOptions,
} from './saga/PostgresSagaStore.js';
export { DEFAULT_POSTGRES_INBOX_OPTIONS, PostgresInbox } from './inbox/PostgresInbox.js';
export type {
  InboxTransactionInfo,
  InboxTransactionOptions,
  InboxTransactionResult,
  PostgresInboxDependencies,
  PostgresInboxOptions,
} from './inbox/PostgresInbox.js';
export { handleInTransaction, transactionalHandler } from './inbox/transactionalHandler.js';
export type {
  TransactionalHandlerContext,
  TransactionalHandlerFn,
  TransactionalHandlerOptions,
} from './inbox/transactionalHandler.js';
export {
  DEFAULT_POSTGRES_OUTBOX_OPTIONS,
  OUTBOX_NOTIFY_CHANNEL,
  PostgresOutbox,
} from './outbox/PostgresOutbox.js';
export type {
  OutboxAppendOptions,
  OutboxDeadLetter,
  OutboxDeadLetterQuery,
  PostgresOutboxDependencies,
  PostgresOutboxOptions,
} from './outbox/PostgresOutbox.js';
export {
  DEFAULT_POSTGRES_OUTBOX_RELAY_OPTIONS,
  PostgresOutboxRelay,
} from './outbox/PostgresOutboxRelay.js';
export type {
  PostgresOutboxRelayDependencies,
  PostgresOutboxRelayOptions,
  PostgresRelayResult,
} from './outbox/PostgresOutboxRelay.js';
export { createOutboxWriter } from './outbox/outboxWriter.js';
export type {
  OutboxWriter,
  OutboxWriterDependencies,
  OutboxWriterOptions,
} from './outbox/outboxWriter.js';
export { createPostgresBackend } from './backend.js';
export type {
  PostgresBackend,
  PostgresBackendDependencies,
  PostgresBackendOptions,
} from './backend.js';
export { DEFAULT_SCHEMA } from './internal/sql.js';
export { POSTGRES_ACCESS_ERROR_CODES, PostgresAccessError } from './connectionErrors.js';
