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

-- Append-only: the trigger refuses every change to a written row (also TRUNCATE).
CREATE TABLE admin_audit (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    actor_dip_id TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at);
CREATE FUNCTION admin_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the admin audit log cannot be changed';
END $$;
CREATE TRIGGER admin_audit_no_change BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_immutable();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_immutable();
