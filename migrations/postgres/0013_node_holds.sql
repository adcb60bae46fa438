-- Nodes that run under a held identity (Store::hold_node): while one lives, its identity
-- lock is held; when the lock is free, the node is gone and other nodes may take its
-- queues at once instead of waiting for its leases to expire.
CREATE TABLE node_holds (
    node_id TEXT PRIMARY KEY,
    held_at BIGINT NOT NULL
);
