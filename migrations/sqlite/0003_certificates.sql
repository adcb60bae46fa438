-- Certificates registered to participants and DCPs (spec 8.4): a client certificate
-- identifies its holder on the participant API; several may be active at once so that
-- certificates roll over without downtime.
CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,
    dip_id      TEXT NOT NULL REFERENCES participants (dip_id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    serial      TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    environment TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('issued', 'registered')),
    pem         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX certificates_dip ON certificates (dip_id);

-- Bumped by every change to the catalogue or directory, so that every process (also
-- one without notifications, such as a second process on an embedded database) can
-- tell that its registry is out of date.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);
