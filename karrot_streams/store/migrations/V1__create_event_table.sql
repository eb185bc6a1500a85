-- Event store: one row per event_id (the seed's V1, with its trigger delimiter fixed to $$).
CREATE TABLE IF NOT EXISTS event_store (
    event_id VARCHAR(255) PRIMARY KEY,
    aggregate_id VARCHAR(255) NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    event_data TEXT NOT NULL,
    event_time TIMESTAMP NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'CREATED',
    published_at TIMESTAMP,
    failure_reason TEXT,
    version BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_event_store_aggregate_id ON event_store(aggregate_id);
CREATE INDEX IF NOT EXISTS idx_event_store_event_type ON event_store(event_type);
CREATE INDEX IF NOT EXISTS idx_event_store_status ON event_store(status);
CREATE INDEX IF NOT EXISTS idx_event_store_created_at ON event_store(created_at);
CREATE INDEX IF NOT EXISTS idx_event_store_published_at ON event_store(published_at);
CREATE INDEX IF NOT EXISTS idx_event_store_status_created_at ON event_store(status, created_at);

CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS update_event_store_updated_at ON event_store;
CREATE TRIGGER update_event_store_updated_at
    BEFORE UPDATE ON event_store
    FOR EACH ROW
    EXECUTE FUNCTION update_updated_at_column();
