import type { Pool } from 'pg';
import type { Logger, Transport } from '@backtrack/core';
import { assertPool } from './internal/pool.js';
import { PostgresInbox, type PostgresInboxOptions } from './inbox/PostgresInbox.js';
import { migrate as runMigrations, type MigrateResult } from './migrate/migrate.js';
import { PostgresOutbox } from './outbox/PostgresOutbox.js';
import {
  PostgresOutboxRelay,
  type PostgresOutboxRelayOptions,
} from './outbox/PostgresOutboxRelay.js';
import { PostgresSagaStore } from './saga/PostgresSagaStore.js';

/** Options of {@link createPostgresBackend}. */
export interface PostgresBackendOptions {
  /** The schema every component uses. @default 'backtrack' */
  schema?: string;
  /** Run {@link migrate} before returning. @default true */
  migrate?: boolean;
  /** Journal retention in ms. @default 7 days */
  journalRetentionMs?: number;
}

/** Collaborators of {@link createPostgresBackend}. */
export interface PostgresBackendDependencies {
  /** The pool every component shares. The backend never ends it. */
  pool: Pool;
  logger?: Logger;
}

/** Every PostgreSQL component over one pool and schema. */
export interface PostgresBackend {
  readonly pool: Pool;
  readonly schema: string;
  /** What `migrate` did, when it ran. */
  readonly migrated?: MigrateResult;
  readonly sagaStore: PostgresSagaStore;
  /** The journal (and outbox) of every service sharing the schema. */
  readonly journal: PostgresOutbox;
  /** An inbox for one consumer (usually the consumer group); usable as a DedupeStore too. */
  inbox(
    consumer: string,
    options?: Omit<PostgresInboxOptions, 'schema' | 'consumer'>,
  ): PostgresInbox;
  /** A relay publishing the journal's pending records through `transport` (not started). */
  relay(transport: Transport, options?: PostgresOutboxRelayOptions): PostgresOutboxRelay;
}

/**
 * Builds the saga store, journal/outbox, inboxes and relays on one pool and schema, migrating it
 * first: the one switch that moves a service from Redis (or memory) to PostgreSQL.
 *
 * @example
 * const pg = await createPostgresBackend({ pool, logger }, { schema: 'backtrack' });
 * const engine = createSagaEngine(options, { store: pg.sagaStore, logger });
 * const journal = pg.journal; // a Journal (and the outbox a relay publishes)
 * const dedupeStore = pg.inbox('payments'); // a DedupeStore for the `payments` consumer group
 */
export async function createPostgresBackend(
  dependencies: PostgresBackendDependencies,
  options: PostgresBackendOptions = {},
): Promise<PostgresBackend> {
  const { pool, logger } = dependencies;
  assertPool(pool);
  const schema = options.schema ?? 'backtrack';
  const migrated =
    options.migrate === false
      ? undefined
      : await runMigrations(pool, { schema, ...(logger ? { logger } : {}) });
  const journal = new PostgresOutbox(
    { pool },
    {
      schema,
      ...(options.journalRetentionMs === undefined
        ? {}
        : { retentionMs: options.journalRetentionMs }),
    },
  );
  return {
    pool,
    schema,
    ...(migrated ? { migrated } : {}),
    sagaStore: new PostgresSagaStore({ pool }, { schema }),
    journal,
    inbox: (consumer, inboxOptions = {}) =>
      new PostgresInbox(
        { pool, ...(logger ? { logger } : {}) },
        { ...inboxOptions, schema, consumer },
      ),
    relay: (transport, relayOptions = {}) =>
      new PostgresOutboxRelay(
        { outbox: journal, transport, ...(logger ? { logger } : {}) },
        relayOptions,
      ),
  };
}
