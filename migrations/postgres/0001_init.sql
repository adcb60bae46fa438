-- DIP broker schema (PostgreSQL). Times are microseconds since the Unix epoch (BIGINT),
-- identical to the SQLite schema so that one set of SQL serves both stores.

CREATE TABLE roles (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL
);

-- Channel definitions as JSON documents (schemas inlined); edited from the admin portal.
CREATE TABLE channels (
    id         TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE participants (
    dip_id     TEXT PRIMARY KEY,
    mpid       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('participant', 'dcp')),
    active     BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE participant_roles (
    dip_id TEXT NOT NULL REFERENCES participants (dip_id) ON DELETE CASCADE,
    role   TEXT NOT NULL,
    PRIMARY KEY (dip_id, role)
);

CREATE TABLE dcp_nominations (
    participant_dip_id TEXT NOT NULL REFERENCES participants (dip_id) ON DELETE CASCADE,
    dcp_dip_id         TEXT NOT NULL REFERENCES participants (dip_id) ON DELETE CASCADE,
    PRIMARY KEY (participant_dip_id, dcp_dip_id)
);

-- Logical queues of a participant; url NULL means the participant pulls.
CREATE TABLE endpoints (
    id       TEXT PRIMARY KEY,
    dip_id   TEXT NOT NULL REFERENCES participants (dip_id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    url      TEXT,
    channels TEXT NOT NULL,
    UNIQUE (dip_id, name)
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    dip_id      TEXT REFERENCES participants (dip_id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- MPAN lookup table (spec 5.5.14). A row holds from effective_from until the next row of
-- the same MPAN and role, so history by effective date is kept and late messages reach
-- the party responsible on their date. dip_id NULL records a de-appointment.
CREATE TABLE appointments (
    mpan                  TEXT NOT NULL,
    role                  TEXT NOT NULL,
    effective_from        TEXT NOT NULL,
    dip_id                TEXT,
    source_transaction_id TEXT,
    recorded_at           BIGINT NOT NULL,
    PRIMARY KEY (mpan, role, effective_from)
);

CREATE TABLE messages (
    transaction_id          TEXT PRIMARY KEY,
    sender_dip_id           TEXT NOT NULL,
    sender_unique_reference TEXT NOT NULL,
    content_hash            TEXT NOT NULL,
    interface_id            TEXT NOT NULL,
    schema_version          TEXT NOT NULL,
    event_code              TEXT NOT NULL,
    sender_role             TEXT NOT NULL,
    dcp_dip_id              TEXT,
    mpan                    TEXT,
    correlation_id          TEXT,
    received_at             BIGINT NOT NULL,
    routing                 TEXT NOT NULL,
    UNIQUE (sender_dip_id, sender_unique_reference)
);
CREATE INDEX messages_interface_received ON messages (interface_id, received_at);
CREATE INDEX messages_correlation ON messages (correlation_id);
CREATE INDEX messages_mpan ON messages (mpan);

-- The archive copy (payload with D0), kept per the channel's retention; source of replay.
CREATE TABLE archive (
    transaction_id TEXT PRIMARY KEY,
    interface_id   TEXT NOT NULL,
    received_at    BIGINT NOT NULL,
    retain_until   BIGINT NOT NULL,
    envelope       TEXT NOT NULL
);
CREATE INDEX archive_interface_transaction ON archive (interface_id, transaction_id);
CREATE INDEX archive_retain_until ON archive (retain_until);

-- Per-queue sequence: taking the next positions locks the queue's row until commit, so
-- positions are assigned in commit order and FIFO holds across concurrent writers.
CREATE TABLE queue_counters (
    queue_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE queue_entries (
    queue_id         TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    transaction_id   TEXT NOT NULL,
    recipient_dip_id TEXT NOT NULL,
    recipient_role   TEXT NOT NULL,
    hidden           TEXT NOT NULL,
    state            TEXT NOT NULL,
    enqueued_at      BIGINT NOT NULL,
    PRIMARY KEY (queue_id, seq)
);
CREATE INDEX queue_entries_transaction ON queue_entries (transaction_id);
CREATE INDEX queue_entries_pending ON queue_entries (queue_id, seq) WHERE state = 'pending';
