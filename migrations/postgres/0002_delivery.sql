-- Delivery (issue 3): attempt bookkeeping per queue entry, queue leases and health, replays.

-- Entry states: pending, delivered, returned (recipient refused the data), dead
-- (dead-lettered), redriven (a dead letter queued again under a new position).
ALTER TABLE queue_entries ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queue_entries ADD COLUMN last_attempt_at BIGINT;
ALTER TABLE queue_entries ADD COLUMN last_outcome TEXT;
ALTER TABLE queue_entries ADD COLUMN settled_at BIGINT;
-- The replay that queued the entry; NULL for business traffic.
ALTER TABLE queue_entries ADD COLUMN replay_id TEXT;
CREATE INDEX queue_entries_dead ON queue_entries (queue_id, seq) WHERE state = 'dead';
CREATE INDEX queue_entries_recipient ON queue_entries (recipient_dip_id, transaction_id);

-- One row per recipient queue: who may deliver it now (a node for webhooks, a lease id
-- for pull) and how delivery is going.
CREATE TABLE queue_status (
    queue_id        TEXT PRIMARY KEY,
    owner           TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    last_outcome    TEXT,
    last_success_at BIGINT,
    failing_since   BIGINT,
    retry_at        BIGINT
);

-- Every replay request, dry runs included, with who asked.
CREATE TABLE replays (
    id           TEXT PRIMARY KEY,
    requested_by TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    interface_id TEXT NOT NULL,
    request      TEXT NOT NULL,
    dry_run      BOOLEAN NOT NULL,
    messages     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
