INSERT INTO participants (dip_id, mpid, name, kind, active, updated_at, signatures_required)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (dip_id) DO UPDATE SET
    mpid = excluded.mpid, name = excluded.name, kind = excluded.kind,
    active = excluded.active, updated_at = excluded.updated_at,
    signatures_required = excluded.signatures_required
