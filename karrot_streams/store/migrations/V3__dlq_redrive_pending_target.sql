-- Where a claimed letter was produced, written once Kafka acknowledged it and before its
-- transaction is known to have committed (an unconfirmed target). Confirming moves it to
-- target_partition/target_offset and sets redriven_at. A claim left with a pending target is
-- never redriven blindly: the next request reads that offset (read_committed) to tell whether
-- the record committed, aborted, or is still in an open transaction.
ALTER TABLE dlq_redrive
    ADD COLUMN IF NOT EXISTS pending_partition INT,
    ADD COLUMN IF NOT EXISTS pending_offset BIGINT;

ALTER TABLE dlq_redrive DROP CONSTRAINT IF EXISTS dlq_redrive_pending_whole;
ALTER TABLE dlq_redrive ADD CONSTRAINT dlq_redrive_pending_whole CHECK (
    (pending_partition IS NULL) = (pending_offset IS NULL)
);
