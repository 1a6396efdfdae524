-- Backtrack outbox and effect journal (PostgresOutbox): every message published through
-- Backtrack, appended in the producer's own transaction and published by the relay.
CREATE TABLE outbox (
  -- Publish order and journal clock: seq = max(last + 1, time_ms * 1024) (see core nextSeq).
  seq bigint PRIMARY KEY,
  -- The envelope id; appending an id twice keeps the first record.
  id text NOT NULL UNIQUE,
  type text NOT NULL,
  schema_version integer NOT NULL,
  message_key text,
  topic text NOT NULL,
  service text NOT NULL,
  version text NOT NULL,
  -- The envelope time exactly as given (RFC 3339 text, so it round-trips unchanged).
  time text NOT NULL,
  saga_id text,
  causation_id text,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'published')),
  appended_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  published_at timestamptz,
  publish_attempts integer NOT NULL DEFAULT 0,
  last_error text
);

-- The rollback planner's queries: what did service S at version V publish, by type, by saga.
CREATE INDEX outbox_service_version_seq_idx ON outbox (service, version, seq);
CREATE INDEX outbox_type_seq_idx ON outbox (type, seq);
CREATE INDEX outbox_saga_seq_idx ON outbox (saga_id, seq) WHERE saga_id IS NOT NULL;
-- The relay's work list stays small however large the journal grows.
CREATE INDEX outbox_pending_seq_idx ON outbox (seq) WHERE state = 'pending';

-- The last assigned seq. Appends update this one row, so seqs are strictly increasing and a
-- record becomes visible only after every record with a smaller seq (commit order = seq order):
-- a reader paging by seq never skips a record that commits later.
CREATE TABLE outbox_seq (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  last bigint NOT NULL
);
INSERT INTO outbox_seq (id, last) VALUES (true, 0);
