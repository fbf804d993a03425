-- Reports scan the ledger by decision time. A BRIN index serves that (rows
-- arrive in time order) at a fraction of a B-tree's cost on every
-- decision, which is the hot path of every message.
DROP INDEX contact_ledger_decided;
CREATE INDEX contact_ledger_decided ON contact_ledger USING brin (decided_at);
