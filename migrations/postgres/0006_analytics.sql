-- Analytics (issue 6): lifecycle events are written to an outbox in the same transaction
-- as the state change they describe; the analytics pump moves them in batches into
-- ClickHouse or into analytics_events here (the embedded default), and deletes them from
-- the outbox. A sequence never reuses an id, so a sink can tell an event it holds.
CREATE TABLE analytics_outbox (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL,
    at               BIGINT NOT NULL,
    transaction_id   TEXT NOT NULL DEFAULT '',
    interface_id     TEXT NOT NULL DEFAULT '',
    sender_dip_id    TEXT NOT NULL DEFAULT '',
    recipient_dip_id TEXT NOT NULL DEFAULT '',
    queue_id         TEXT NOT NULL DEFAULT '',
    outcome          TEXT NOT NULL DEFAULT '',
    latency_us       BIGINT NOT NULL DEFAULT 0,
    duration_us      BIGINT NOT NULL DEFAULT 0,
    replay           BIGINT NOT NULL DEFAULT 0
);

-- The embedded analytics store; same columns, the outbox id kept as the event's identity.
CREATE TABLE analytics_events (
    id               BIGINT PRIMARY KEY,
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
CREATE INDEX analytics_events_kind_at ON analytics_events (kind, at);

-- Singleton background jobs (the analytics pump, the alarm evaluator): one node at a time.
CREATE TABLE worker_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
