-- migrate: no-transaction
--
-- The retention job deletes answered conversations, replies in no
-- conversation and one-click answers past the ledger's retention
-- (queries/dialogue.sql, prune-*), oldest first, in batches. Built
-- CONCURRENTLY: replies and answers are written as customers write.
CREATE INDEX CONCURRENTLY IF NOT EXISTS conversations_answered ON conversations (answered_at) WHERE answered_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS replies_unthreaded ON replies (received_at) WHERE conversation_id IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS survey_answers_answered ON survey_answers (answered_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS survey_answer_changes_changed ON survey_answer_changes (changed_at);
