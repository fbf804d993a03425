package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// emptySchema is a schema no migration has touched, dropped after the test.
func emptySchema(t *testing.T) store.Config {
	t.Helper()
	c := pgtest.Shared(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := store.Config{URL: c.URL, Schema: "u_" + hex.EncodeToString(b[:])}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), c.URL)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{cfg.Schema}.Sanitize()+" CASCADE")
	})
	return cfg
}

// TestUpgradeKeepsRowsOfUnpartitionedTables: a database at schema 010
// (unpartitioned ledger, events and routes) holding rows is migrated to
// the partitioned schema. Every row is still there, in the legacy
// partition; the policy still counts the old contacts; an old event id is
// still known; a customer's erasure still takes their rows; and new rows
// go to monthly partitions.
func TestUpgradeKeepsRowsOfUnpartitionedTables(t *testing.T) {
	t.Parallel()
	cfg := emptySchema(t)
	ctx := context.Background()
	if _, err := store.MigrateTo(ctx, cfg, 10); err != nil {
		t.Fatalf("migrate to 010: %v", err)
	}
	conn := schemaConn(t, cfg)
	now := time.Now()
	// Rows as lojal 010 wrote them: a sent message two days ago, an
	// expired reservation last month, an event and its route.
	if _, err := conn.Exec(ctx, `
		INSERT INTO customers (id, email, timezone) VALUES ('c-1', 'kari@example.no', 'Europe/Oslo'), ('c-2', 'ola@example.no', 'UTC');
		INSERT INTO consent_ledger (customer_id, channel, topic, action, basis, at, source)
		VALUES ('c-1', 'email', '*', 'grant', 'consent', $2, 'import'), ('c-2', 'email', '*', 'grant', 'consent', $2, 'import');
		INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id, channel, priority,
			decision, reason, status, decided_at, contacted_at, sent_at, message_id, address, send_attempt)
		VALUES ('w/a#1.1', 'w/a#1', 'c-1', 'w', 'j', 'a', 'email', 'normal', 'allow', 'allowed', 'sent', $1, $1, $1, 'm1@x', 'kari@example.no', 1),
		       ('w/b#1.1', 'w/b#1', 'c-1', 'w', 'j', 'b', 'email', 'normal', 'allow', 'allowed', 'released', $2, $2, NULL, '', '', 0),
		       ('w/c#1.1', 'w/c#1', 'c-2', 'w', 'j', 'c', 'email', 'normal', 'allow', 'allowed', 'sent', $1, $1, $1, 'm2@x', 'ola@example.no', 1);
		INSERT INTO events (id, type, customer_id, occurred_at, data, received_at, dispatched_at) VALUES
			('e-1', 'signed_up', 'c-1', $2, '{}', $2, $2), ('e-2', 'signed_up', 'c-2', $2, '{}', $2, $2);
		INSERT INTO event_routes (event_id, journey_id, workflow_id, action) VALUES ('e-1', 'j', 'w', 'started');
		INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, trigger_event_id) VALUES ('w', 'j', 'v1', 'c-1', 'e-1');
	`, pgx.QueryExecModeSimpleProtocol, now.Add(-48*time.Hour), now.AddDate(0, -1, 0)); err != nil {
		t.Fatalf("fill the 010 schema: %v", err)
	}
	applied, err := store.Migrate(ctx, cfg)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	t.Logf("applied %v", applied)

	var legacyRows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM contact_ledger_legacy").Scan(&legacyRows); err != nil || legacyRows != 3 {
		t.Fatalf("legacy ledger partition: %d rows, %v; want the 3 old rows", legacyRows, err)
	}
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The message sent two days ago still counts: a 1-per-week cap defers.
	rules := policy.Rules{Location: time.UTC, Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 1}}, MaxDefer: 14 * 24 * time.Hour}
	req := store.Request{IdempotencyKey: "w/d#1.1", RequestKey: "w/d#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
		StepID: "d", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute}
	d, err := s.Decide(ctx, req, rules.Lookback(), func(snap store.Snapshot) policy.Decision {
		return policy.Decide(rules, snap.Relationship, snap.Window, snap.Waiting,
			policy.Request{Key: req.RequestKey, Channel: "email", Priority: policy.Normal, FirstAsked: now}, now)
	})
	if err != nil || d.Verdict != policy.Defer {
		t.Fatalf("decision after the upgrade: %+v %v; want a deferral (the old sent message counts)", d, err)
	}
	// An event stored before the upgrade is still known by its id.
	st, err := s.InsertEvent(ctx, journey.Event{ID: "e-1", Type: "signed_up", CustomerID: "c-1", At: now.AddDate(0, -1, 0)})
	if err == nil && st.New {
		t.Fatalf("old event e-1 accepted again as new after the upgrade")
	}
	st, err = s.InsertEvent(ctx, journey.Event{ID: "e-3", Type: "signed_up", CustomerID: "c-1", At: now})
	if err != nil || !st.New {
		t.Fatalf("new event: %+v %v", st, err)
	}
	// The legacy partitions end two months ahead (rows written while 011
	// ran must fit); monthly partitions follow, three months beyond now.
	var part string
	if err := conn.QueryRow(ctx, "SELECT tableoid::regclass::text FROM events WHERE id = 'e-3'").Scan(&part); err != nil || part != "events_legacy" {
		t.Fatalf("new event stored in %q (%v), want the legacy partition until its bound", part, err)
	}
	later := now.AddDate(0, 2, 5)
	if err := conn.QueryRow(ctx, `INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id,
		channel, priority, decision, reason, status, decided_at) VALUES ('w/e#1.1', 'w/e#1', 'c-2', 'w', 'j', 'e', 'email', 'normal',
		'defer', 'cap', 'deferred', $1) RETURNING tableoid::regclass::text`, later).Scan(&part); err != nil ||
		part != "contact_ledger_p"+later.UTC().Format("200601") {
		t.Fatalf("a decision two months on is stored in %q (%v), want its month's partition", part, err)
	}
	h, err := s.History(ctx, "c-1")
	if err != nil || len(h) != 3 {
		t.Fatalf("history after the upgrade: %d entries, %v; want the 2 old decisions and the new one", len(h), err)
	}
	// Erasing a customer takes their rows, old and new, as the foreign
	// keys' cascade did.
	if _, err := conn.Exec(ctx, "DELETE FROM customers WHERE id = 'c-1'"); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM contact_ledger WHERE customer_id = 'c-1')
		+ (SELECT count(*) FROM events WHERE customer_id = 'c-1') + (SELECT count(*) FROM event_routes WHERE event_id = 'e-1')`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("rows of an erased customer left: %d (%v)", left, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM contact_ledger WHERE customer_id = 'c-2'").Scan(&left); err != nil || left != 2 {
		t.Fatalf("other customer's ledger: %d rows (%v), want 2", left, err)
	}
}
