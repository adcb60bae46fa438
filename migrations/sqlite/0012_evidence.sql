-- Evidence of receipt and delivery (issue 14, evidence bundles): the X-DIP signature a
-- sender's request carried, kept with each message it carried (JSON, NULL when unsigned),
-- and every webhook call the platform made: when, its outcome and duration, the start of
-- the recipient's error answer, and the platform's own signature of the request (JSON,
-- NULL when the platform does not sign).
ALTER TABLE messages ADD COLUMN receipt_signature TEXT;

CREATE TABLE delivery_attempts (
    queue_id    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    duration_us BIGINT NOT NULL,
    answer      TEXT NOT NULL,
    signature   TEXT,
    PRIMARY KEY (queue_id, seq, at)
);
