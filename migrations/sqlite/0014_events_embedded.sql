-- Lifecycle events may be written straight into analytics_events (a platform whose sink
-- is the embedded table: OutboxStore::write_events_to_embedded), and events moved from
-- the outbox take new ids: the id becomes the rowid (INTEGER PRIMARY KEY), assigned on
-- insert. SQLite cannot change a primary key in place, hence the copy.
CREATE TABLE analytics_events_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    at               BIGINT NOT NULL,
    transaction_id   TEXT NOT NULL,
    interface_id     TEXT NOT NULL,
    sender_dip_id    TEXT NOT NULL,
    recipient_dip_id TEXT NOT NULL,
    queue_id         TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    latency_us       BIGINT NOT NULL,
    duration_us      BIGINT NOT NULL,
    replay           BIGINT NOT NULL
);
INSERT INTO analytics_events_new SELECT * FROM analytics_events;
DROP TABLE analytics_events;
ALTER TABLE analytics_events_new RENAME TO analytics_events;
CREATE INDEX analytics_events_kind_at ON analytics_events (kind, at);
CREATE INDEX analytics_events_transaction ON analytics_events (transaction_id);
