SELECT created_at
FROM (
    SELECT created_at, id,
        CAST(SUM(messages) OVER (ORDER BY created_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT)
            AS running
    FROM replays
    WHERE recipient = $1 AND NOT dry_run AND created_at > $2
) w
WHERE running >= $3
ORDER BY created_at, id
LIMIT 1
