-- Backtrack inbox (PostgresInbox): one row per (consumer, message key) that was claimed or done.
-- In transactional mode the row is inserted as 'done' in the handler's own transaction, so the
-- mark and the handler's writes commit or roll back together.
CREATE TABLE inbox (
  consumer text NOT NULL,
  message_key text NOT NULL,
  -- 'claimed': a lease (DedupeStore mode) until lease_expires_at; 'done': processed.
  state text NOT NULL CHECK (state IN ('claimed', 'done')),
  token text,
  lease_expires_at timestamptz,
  -- A small value returned to later duplicates.
  result text,
  claimed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  processed_at timestamptz,
  -- When the row may be deleted: the lease end for a claim, the retention end for a done mark.
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (consumer, message_key)
);

-- Retention cleanup deletes by this index in small batches.
CREATE INDEX inbox_expires_at_idx ON inbox (expires_at);
