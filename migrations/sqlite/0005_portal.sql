-- Web portal: users of the operator and of participants, their sessions, and the
-- administrative audit log (spec 5.3, 5.12.2).
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    email               TEXT NOT NULL DEFAULT '',
    -- NULL: a user of the platform operator; otherwise the participant's DIP ID.
    dip_id              TEXT REFERENCES participants (dip_id),
    roles               TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    failed_sign_ins     BIGINT NOT NULL DEFAULT 0,
    last_failed_at      BIGINT,
    last_sign_in_at     BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX users_dip ON users (dip_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Append-only: the triggers refuse every change to a written row.
CREATE TABLE admin_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    actor_dip_id TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at);
CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log cannot be changed'); END;
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log cannot be changed'); END;
