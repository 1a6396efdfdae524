import type { Pool } from 'pg';
import { PostgresConfigError } from '../errors.js';

/**
 * The one check of the `pool` dependency, made by `createPostgresBackend` and by every store's
 * constructor, so each rejects a missing pool at construction with the same error.
 * @throws {PostgresConfigError} `pool`: must be a pg Pool.
 */
export function assertPool(pool: Pool | undefined): Pool {
  if (pool === undefined || pool === null || typeof pool.query !== 'function') {
    throw new PostgresConfigError('pool', 'must be a pg Pool', typeof pool);
  }
  return pool;
}
