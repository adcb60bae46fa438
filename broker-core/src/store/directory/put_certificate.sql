INSERT INTO certificates (fingerprint, dip_id, subject, issuer, serial, not_before, not_after,
    environment, source, pem, created_at, revoked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (fingerprint) DO UPDATE SET
    dip_id = excluded.dip_id, environment = excluded.environment, revoked_at = excluded.revoked_at
