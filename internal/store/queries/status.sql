-- name: uncertain-since
-- Messages handed over with no answer since $1, per channel: the server
-- may have them (lojal status). A message is handed over soon after its
-- decision; $2 (ContactSlack before $1) bounds the months read.
SELECT channel, count(*)
FROM contact_ledger
WHERE status = 'uncertain' AND contacted_at >= $1 AND decided_at >= $2
GROUP BY channel
ORDER BY channel;
