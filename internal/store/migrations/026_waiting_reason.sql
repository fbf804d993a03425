-- Why a message waits, so that one paused by an open conversation
-- (conversation_open) takes no slot from a message the conversation lets
-- through (allow_topics). A constant default adds the column without
-- rewriting the table. Rows written before say nothing ('') and rank as
-- before until their next ask writes the reason.
ALTER TABLE waiting_messages ADD COLUMN reason text NOT NULL DEFAULT '';
