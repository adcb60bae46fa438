SELECT c.queue_id
FROM queue_counters c
LEFT JOIN queue_status s ON s.queue_id = c.queue_id
WHERE (s.owner IS NULL OR s.lease_until < $1)
    AND EXISTS (SELECT 1 FROM queue_entries e WHERE e.queue_id = c.queue_id AND e.state = 'pending')
ORDER BY c.queue_id
