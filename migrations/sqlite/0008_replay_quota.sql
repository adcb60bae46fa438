-- The replay quota sums, per recipient, the messages replayed within a rolling window.
CREATE INDEX replays_recipient ON replays (recipient, created_at);
