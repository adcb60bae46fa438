-- Replay pacing (issue 14): a replay's copies wait here and join their queue a batch at
-- a time, the next batch once the last copy of the previous one is settled, so that a
-- live message arriving during a large replay waits behind one batch at most.
CREATE TABLE replay_held (
    replay_id        TEXT NOT NULL,
    ord              BIGINT NOT NULL,
    queue_id         TEXT NOT NULL,
    transaction_id   TEXT NOT NULL,
    recipient_dip_id TEXT NOT NULL,
    recipient_role   TEXT NOT NULL,
    hidden           TEXT NOT NULL,
    replay_of        TEXT NOT NULL,
    held_at          BIGINT NOT NULL,
    PRIMARY KEY (replay_id, ord)
);
CREATE INDEX replay_held_queue ON replay_held (queue_id, held_at, replay_id, ord);
-- Per queue, the position of the last replay copy it took in: the next batch waits
-- until that entry is settled. Its row is also the lock that serialises releases.
CREATE TABLE replay_pacing (
    queue_id TEXT PRIMARY KEY,
    tail_seq BIGINT NOT NULL
);
-- A replay's progress counts its copies by state.
CREATE INDEX queue_entries_replay ON queue_entries (replay_id) WHERE replay_id IS NOT NULL;
