package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// ledgerUpdates waits for the statistics of the ledger's tables in the
// schema to count want updates (a backend reports them when idle, within
// a second or so), and returns the updates and how many were HOT.
func ledgerUpdates(t *testing.T, conn *pgx.Conn, schema string, want int64) (upd, hot int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := conn.QueryRow(context.Background(), `SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0)
			FROM pg_stat_user_tables WHERE schemaname = $1 AND relname LIKE 'contact_ledger%'`, schema).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		if upd >= want || time.Now().After(deadline) {
			return upd, hot
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSendUpdatesAreHOT: a message decided, sent and marked sent is one
// insert and two updates of its ledger row. The updates change no indexed
// column (the decision records the Message-ID; no index names status or
// contacted_at) and the ledger's partitions leave a fifth of each page
// free, so they are HOT: no index entry written, nothing for vacuum to
// clean from the indexes. The same messages through the schema before
// partitioning (010) are measured alongside.
//
// Before this change: 0 of 2,000 updates HOT (measured with the 008
// schema below).
func TestSendUpdatesAreHOT(t *testing.T) {
	t.Parallel()
	const messages = 1000
	ctx := context.Background()

	cfg := pgtest.Config(t)
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range messages {
		c := fmt.Sprintf("c-%d", i%100)
		if i < 100 {
			if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: c, Email: c + "@example.com", Consent: map[string]bool{"email": true}}, "test"); err != nil {
				t.Fatal(err)
			}
		}
		key := fmt.Sprintf("w-%d/s#1", i)
		req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: c, WorkflowID: "w", JourneyID: "j", StepID: "s",
			Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute, MessageID: key + "@lojal.example"}
		if _, err := s.Decide(ctx, req, 7*24*time.Hour, func(store.Snapshot) policy.Decision {
			return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
		}); err != nil {
			t.Fatal(err)
		}
		attempt, err := s.BeginSend(ctx, req.IdempotencyKey, store.Sending{MessageID: req.MessageID, Address: c + "@example.com", Locale: "en", Subject: "Hello"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(ctx, req.IdempotencyKey, attempt, now); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // backends report their statistics as they exit
	upd, hot := ledgerUpdates(t, schemaConn(t, cfg), cfg.Schema, 2*messages)

	// The same through the 010 schema and its statements.
	old := emptySchema(t)
	if _, err := store.MigrateTo(ctx, old, 10); err != nil {
		t.Fatal(err)
	}
	oc := schemaConn(t, old)
	if _, err := oc.Exec(ctx, "INSERT INTO customers (id) SELECT 'c-' || i FROM generate_series(0, 99) i"); err != nil {
		t.Fatal(err)
	}
	for i := range messages {
		key := fmt.Sprintf("w-%d/s#1.1", i)
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id, channel, priority,
			decision, reason, status, decided_at, contacted_at, expires_at) VALUES ($1, $1, $2, 'w', 'j', 's', 'email', 'normal', 'allow', 'ok',
			'reserved', now(), now(), now() + interval '15 minutes')`, key, fmt.Sprintf("c-%d", i%100))
		b.Queue(`UPDATE contact_ledger SET status = 'sending', send_attempt = send_attempt + 1, message_id = $1 || '@lojal.example',
			address = 'a@example.com', locale = 'en', subject = 'Hello', error = '' WHERE idempotency_key = $1 AND status IN ('reserved', 'sending')`, key)
		b.Queue(`UPDATE contact_ledger SET status = 'sent', sent_at = now(), contacted_at = now(), error = '' WHERE idempotency_key = $1`, key)
		if err := oc.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
	}
	oc.Close(ctx)
	oldUpd, oldHot := ledgerUpdates(t, schemaConn(t, old), old.Schema, 2*messages)

	t.Logf("%d messages: %d of %d ledger updates HOT (%.0f%%); before partitioning (010): %d of %d (%.0f%%)",
		messages, hot, upd, 100*float64(hot)/float64(upd), oldHot, oldUpd, 100*float64(oldHot)/float64(max(oldUpd, 1)))
	if upd < 2*messages || float64(hot) < 0.9*float64(upd) {
		t.Fatalf("%d of %d ledger updates HOT, want at least 90%%", hot, upd)
	}
}
