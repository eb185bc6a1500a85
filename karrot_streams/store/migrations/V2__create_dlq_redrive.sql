-- Dead letters redriven to their original topic: one row per letter, so each is redriven once.
-- A row is first a claim (redriven_at NULL) taken before producing, then the record of where
-- the letter went once Kafka acknowledged it. A claim left by a request that died before
-- producing is taken over by a later request once it is older than the claim lease.
CREATE TABLE IF NOT EXISTS dlq_redrive (
    dlq_topic VARCHAR(255) NOT NULL,
    dlq_partition INT NOT NULL,
    dlq_offset BIGINT NOT NULL,
    target_topic VARCHAR(255) NOT NULL,
    target_partition INT,
    target_offset BIGINT,
    request_id VARCHAR(64) NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    redriven_at TIMESTAMPTZ,
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset),
    CONSTRAINT dlq_redrive_target_known CHECK (
        (redriven_at IS NULL) = (target_partition IS NULL AND target_offset IS NULL)
    )
);

CREATE INDEX IF NOT EXISTS idx_dlq_redrive_request_id ON dlq_redrive(request_id);
