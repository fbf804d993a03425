-- name: uncertain-since
-- Messages handed over with no answer since $1, per channel: the server
-- may have them (lojal status).
SELECT channel, count(*)
FROM contact_ledger
WHERE status = 'uncertain' AND contacted_at >= $1
GROUP BY channel
ORDER BY channel;
