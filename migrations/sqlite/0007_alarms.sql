-- Alarms (issue 6, spec 5.11, 5.11.4): rules users configure, their raise/clear history,
-- who receives them, and the mail outbox the mailer sends from (so that a notice written
-- with its alarm's change is never lost to an SMTP outage).
CREATE TABLE alarm_rules (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    -- latency | dead_letters | endpoint_failing | certificate_expiring
    kind             TEXT NOT NULL,
    -- Only this channel / this recipient (endpoint owner, certificate holder); '' any.
    interface_id     TEXT NOT NULL DEFAULT '',
    recipient_dip_id TEXT NOT NULL DEFAULT '',
    -- latency: ms (90th percentile end to end); dead_letters: count; endpoint_failing:
    -- seconds failing; certificate_expiring: days before expiry.
    threshold        BIGINT NOT NULL,
    window_secs      BIGINT NOT NULL,
    -- The participant whose traffic the rule watches; NULL: the operator's, everything.
    owner_dip_id     TEXT,
    created_by       TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    -- Set while raised.
    raised_at        BIGINT,
    -- What the last evaluation saw.
    observed         TEXT NOT NULL DEFAULT '',
    evaluated_at     BIGINT,
    created_at       BIGINT NOT NULL
);

CREATE TABLE alarm_history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    -- raised | cleared
    state   TEXT NOT NULL,
    at      BIGINT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX alarm_history_rule ON alarm_history (rule_id, at);

CREATE TABLE alarm_subscriptions (
    rule_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, user_id)
);

CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
