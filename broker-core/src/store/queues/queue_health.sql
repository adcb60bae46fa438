SELECT
    (SELECT COUNT(*) FROM queue_entries WHERE queue_id = $1 AND state = 'pending'),
    (SELECT MIN(enqueued_at) FROM queue_entries WHERE queue_id = $1 AND state = 'pending'),
    (SELECT COUNT(*) FROM queue_entries WHERE queue_id = $1 AND state = 'dead'),
    s.owner, COALESCE(s.lease_until, 0), s.last_attempt_at, s.last_outcome, s.last_success_at,
    s.failing_since, s.retry_at
FROM (SELECT 1 AS one) AS x
LEFT JOIN queue_status s ON s.queue_id = $1
