-- Backtrack saga log (PostgresSagaStore). Runs with search_path set to the target schema.
-- The record is kept whole as JSONB; the columns beside it exist for indexes and concurrency.
CREATE TABLE sagas (
  -- Insertion order: the paging cursor, stable even when createdAt strings tie.
  seq bigint GENERATED ALWAYS AS IDENTITY,
  saga_id text PRIMARY KEY,
  saga_name text NOT NULL,
  status text NOT NULL,
  -- Optimistic concurrency: an update succeeds only WHERE revision = the expected one.
  revision integer NOT NULL,
  record jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX sagas_seq_idx ON sagas (seq);
-- Listing stuck or running sagas reads this index, never the whole table.
CREATE INDEX sagas_status_seq_idx ON sagas (status, seq);
CREATE INDEX sagas_name_seq_idx ON sagas (saga_name, seq);
