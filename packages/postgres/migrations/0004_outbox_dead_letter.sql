-- Outbox records the relay gave up on (PostgresOutboxRelay option maxAttempts): a record the
-- transport refused that many times for a reason that is not an outage moves here, so the records
-- behind it go on. Same columns as the outbox; `PostgresOutbox.requeueDeadLetters` moves one back.
ALTER TABLE outbox ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0;

CREATE TABLE outbox_dead_letter (
  seq bigint PRIMARY KEY,
  id text NOT NULL UNIQUE,
  type text NOT NULL,
  schema_version integer NOT NULL,
  message_key text,
  topic text NOT NULL,
  service text NOT NULL,
  version text NOT NULL,
  time text NOT NULL,
  saga_id text,
  causation_id text,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  appended_at timestamptz NOT NULL,
  publish_attempts integer NOT NULL,
  failed_attempts integer NOT NULL,
  last_error text,
  dead_lettered_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
