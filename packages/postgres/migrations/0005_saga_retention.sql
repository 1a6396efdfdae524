-- Retention of finished sagas (PostgresSagaStore option finishedRetentionMs): the store's pruning
-- pass deletes finished sagas last written before a cut, oldest first. This partial index holds
-- only finished sagas, by their last write, so a pass reads just the rows it deletes.
CREATE INDEX sagas_finished_updated_idx ON sagas (updated_at)
  WHERE status IN ('completed', 'compensated', 'failed');
