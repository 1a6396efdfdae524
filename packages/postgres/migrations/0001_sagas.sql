-- Backtrack saga log (PostgresSagaStore). Runs with search_path set to the target schema.
-- The record is kept whole as JSONB; the columns beside it exist for indexes and concurrency.
CREATE TABLE sagas (
  -- COLLATE "C": ids order by code point, the same as JavaScript string comparison.
  saga_id text COLLATE "C" PRIMARY KEY,
  saga_name text NOT NULL,
  status text NOT NULL,
  -- Optimistic concurrency: an update succeeds only WHERE revision = the expected one.
  revision integer NOT NULL,
  record jsonb NOT NULL,
  -- The record's createdAt: lists are ordered by (created_at, saga_id), the paging cursor.
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sagas_created_idx ON sagas (created_at, saga_id);
-- Listing stuck or running sagas reads this index, never the whole table.
CREATE INDEX sagas_status_created_idx ON sagas (status, created_at, saga_id);
CREATE INDEX sagas_name_created_idx ON sagas (saga_name, created_at, saga_id);
