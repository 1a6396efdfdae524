/**
 * @backtrack/redis: Redis (ioredis) implementations of Backtrack's store ports, for applications.
 * The access-error classifier for tools with their own client is in `@backtrack/redis/adapter`.
 */
export { RedisDedupeStore, DEFAULT_REDIS_DEDUPE_OPTIONS } from './dedupe/RedisDedupeStore.js';
export type {
  RedisDedupeStoreDependencies,
  RedisDedupeStoreOptions,
} from './dedupe/RedisDedupeStore.js';
export {
  createRedisClient,
  createRedisClusterClient,
  DEFAULT_REDIS_CLIENT_OPTIONS,
} from './client.js';
export { REDIS_ERROR_CODES, RedisCommandError, RedisStoreConfigError } from './errors.js';
export type { RedisErrorCode } from './errors.js';
export { RedisSagaStore, DEFAULT_REDIS_SAGA_OPTIONS } from './saga/RedisSagaStore.js';
export type { RedisSagaStoreDependencies, RedisSagaStoreOptions } from './saga/RedisSagaStore.js';
export type { SagaKeyLayout } from './saga/keyLayout.js';
export type { RedisClient } from './internal/cluster.js';
export { RedisJournal, DEFAULT_REDIS_JOURNAL_OPTIONS } from './journal/RedisJournal.js';
export type { RedisJournalDependencies, RedisJournalOptions } from './journal/RedisJournal.js';
export {
  RedisRollbackProgressStore,
  DEFAULT_REDIS_ROLLBACK_PROGRESS_OPTIONS,
} from './rollback/RedisRollbackProgressStore.js';
export type {
  RedisRollbackProgressStoreDependencies,
  RedisRollbackProgressStoreOptions,
} from './rollback/RedisRollbackProgressStore.js';
export { REDIS_ACCESS_ERROR_CODES, RedisAccessError } from './connectionErrors.js';
