-- The sender report (issue 14, spec 5.11.3 Figure 16): a sender's messages of a period are
-- read by sender and time of receipt.
CREATE INDEX messages_sender_received ON messages (sender_dip_id, received_at);
