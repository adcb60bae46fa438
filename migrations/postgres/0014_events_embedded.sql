-- Lifecycle events may be written straight into analytics_events (a platform whose sink
-- is the embedded table: OutboxStore::write_events_to_embedded), and events moved from
-- the outbox take new ids: both draw from the outbox's sequence, so ids stay unique.
ALTER TABLE analytics_events ALTER COLUMN id SET DEFAULT nextval('analytics_outbox_id_seq');
