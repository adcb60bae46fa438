-- The message audit trail (issue 14): a replay copy names the message it copies, so the
-- original's trace shows it; messages are searched by sender reference alone and by
-- receipt time; a transaction's lifecycle events are read back for its trace.
ALTER TABLE queue_entries ADD COLUMN replay_of TEXT;
CREATE INDEX queue_entries_replay_of ON queue_entries (replay_of) WHERE replay_of IS NOT NULL;
CREATE INDEX messages_reference ON messages (sender_unique_reference);
CREATE INDEX messages_received ON messages (received_at);
CREATE INDEX analytics_events_transaction ON analytics_events (transaction_id);
