-- Lifecycle events of the broker (issue 6), moved here from the store's outbox by the
-- analytics pump. Times are microseconds since the epoch (Int64: DateTime64 is not on
-- every server we support); `day` partitions by month. `id` is the outbox id, unique.
CREATE TABLE IF NOT EXISTS events (
    id               UInt64,
    kind             String,
    at               Int64,
    day              Date,
    transaction_id   String,
    interface_id     String,
    sender_dip_id    String,
    recipient_dip_id String,
    queue_id         String,
    outcome          String,
    latency_us       Int64,
    duration_us      Int64,
    replay           UInt8
) ENGINE = MergeTree() PARTITION BY toYYYYMM(day) ORDER BY (kind, at, id)
