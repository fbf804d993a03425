package store_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// fillRealistic fills a schema with a year of ledger (customers×12 rows
// over 12 monthly partitions), the customers in 20 zones, and events.
func fillRealistic(t *testing.T, conn *pgx.Conn, customers int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	rows := customers * 12
	if _, err := conn.Exec(ctx, `
		SELECT ensure_monthly_partitions(t, $1::timestamptz - interval '13 months', $1) FROM partitioned_tables t(t);
		INSERT INTO customers (id, email, timezone)
		SELECT 'c-' || i, 'c' || i || '@example.com', (ARRAY['Europe/Oslo','Europe/Stockholm','Europe/Copenhagen','Europe/Helsinki','Europe/London',
			'Europe/Berlin','Europe/Paris','Europe/Madrid','Europe/Rome','Europe/Warsaw','America/New_York','America/Chicago','America/Denver',
			'America/Los_Angeles','Asia/Tokyo','Asia/Singapore','Australia/Sydney','Africa/Lagos','Asia/Kolkata','UTC'])[1 + i % 20]
		FROM generate_series(1, $2) i;
		INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id, channel, priority,
			decision, reason, status, decided_at, contacted_at, expires_at, sent_at, message_id, address, send_attempt)
		SELECT 'k-' || i || '.1', 'k-' || i, 'c-' || (1 + i % $2), 'w-' || i, 'j', 's', CASE WHEN i % 5 = 0 THEN 'push' ELSE 'email' END, 'normal',
			CASE WHEN i % 10 < 7 THEN 'allow' ELSE 'defer' END, CASE WHEN i % 10 < 7 THEN 'allowed' ELSE 'cap' END,
			CASE WHEN i % 10 < 7 THEN 'sent' ELSE 'deferred' END, at,
			CASE WHEN i % 10 < 7 THEN at + interval '1 minute' END, at + interval '15 minutes',
			CASE WHEN i % 10 < 7 THEN at + interval '1 minute' END,
			CASE WHEN i % 10 < 7 THEN md5(i::text) || '@lojal.example' ELSE '' END,
			CASE WHEN i % 10 < 7 THEN 'c' || (1 + i % $2) || '@example.com' ELSE '' END, (i % 10 < 7)::int
		FROM generate_series(1, $3) i, LATERAL (SELECT $1::timestamptz - (i::float8 / $3) * interval '365 days' AS at) a;
		INSERT INTO event_ids (id, received_at) SELECT 'e-' || i, $1::timestamptz - (i::float8 / $3) * interval '80 days' FROM generate_series(1, $3) i;
		INSERT INTO events (id, type, customer_id, occurred_at, received_at, dispatched_at)
		SELECT id, 'visit', 'c-' || (1 + i % $2), received_at, received_at, received_at
		FROM event_ids, LATERAL (SELECT substr(id, 3)::int AS i) n;
		INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, trigger_event_id, started_at, ended_at, outcome, holdout)
		SELECT 'w-' || i, 'j' || i % 7, 'v', 'c-' || (1 + i % $2), 'e-' || i, at, at + interval '1 day',
			CASE WHEN i % 3 = 0 THEN 'goal' ELSE 'exit' END, i % 10 = 0
		FROM generate_series(1, $2 * 4) i, LATERAL (SELECT $1::timestamptz - (i::float8 / ($2 * 4)) * interval '365 days' AS at) a;
		ANALYZE contact_ledger, customers, events, event_ids, journey_runs`, pgx.QueryExecModeSimpleProtocol, now, customers, rows); err != nil {
		t.Fatalf("fill: %v", err)
	}
}

// TestHotQueriesUseIndexes: EXPLAIN of every query a decision, a send,
// an enrolment or a report runs, as a pooled connection runs it (a
// generic plan, partitions pruned when it executes), on a year of ledger
// in 12 monthly partitions. None reads a whole ledger partition or the
// customers table; each reads only the months it concerns.
func TestHotQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	conn := schemaConn(t, cfg)
	now := time.Now().UTC()
	fillRealistic(t, conn, 20000, now)
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	day, week := 24*time.Hour, 7*24*time.Hour
	recentFrom, recentTo := now.Add(-2*day), now.Add(2*day)
	cases := []struct {
		query string
		args  []any
		// months is the most ledger partitions it may read (0: any).
		months int
	}{
		{"lock-customer", []any{"c-77"}, 0},
		{"relationship", []any{"c-77"}, 0},
		{"get-customer", []any{"c-77"}, 0},
		{"get-customer-to-send", []any{"c-77"}, 0},
		{"ledger-by-key", []any{"k-77.1", now.Add(-8 * day)}, 2},
		{"contact-window", []any{"c-77", now.Add(-30 * day), now, now.Add(-37 * day)}, 3},
		{"waiting-for-customer", []any{"c-77"}, 0},
		{"delivery-by-key", []any{"k-77.1", recentFrom, recentTo}, 2},
		{"begin-send", []any{"k-77.1", "m", "a", "nb", "s", recentFrom, recentTo}, 2},
		{"mark-sent", []any{"k-77.1", 1, now, recentFrom, recentTo}, 2},
		{"mark-uncertain", []any{"k-77.1", 1, "r", now, recentFrom, recentTo}, 2},
		{"send-attempt", []any{"k-77.1", recentFrom, recentTo}, 2},
		{"mark-failed", []any{"k-77.1", "failed", "r", recentFrom, recentTo}, 2},
		{"ledger-status", []any{"k-77.1", recentFrom, recentTo}, 2},
		{"customer-history", []any{"c-77"}, 0},
		{"sent-by-key", []any{"k-77.1"}, 0},
		{"sent-by-message-id", []any{"abc@lojal.example"}, 0},
		{"message-by-id", []any{"abc@lojal.example"}, 0},
		{"replied-message", []any{"abc@lojal.example"}, 0},
		{"consent-messages", []any{"c-77"}, 0},
		{"messages-per-basis", []any{now.Add(-28 * day), now}, 2},
		{"uncertain-since", []any{now.Add(-time.Hour), now.Add(-time.Hour - week)}, 2},
		{"recent-sent", []any{now.Add(-day), now.Add(-day - week)}, 2},
		{"recent-decisions", []any{now.Add(-day)}, 2},
		{"pressure-per-week", []any{now.Add(-28 * day), now, now.Add(-35 * day)}, 3},
		{"decisions-by-caps", []any{now.Add(-28 * day), now}, 2},
		{"spam-per-day", []any{now.Add(-28 * day), now, now.Add(-35 * day)}, 3},
		{"spam-since", []any{now.Add(-28 * day), now.Add(-35 * day)}, 3},
		{"customers-page", []any{[]string{"Europe/Oslo", "UTC"}, "c-5000", 1000}, 0},
		{"customer-timezones", nil, 0},
		{"insert-event", []any{"e-new", "visit", "c-77", now, "{}"}, 0},
		{"mark-event-dispatched", []any{"e-77"}, 0},
		// The request path's: store events (with their customers and
		// blocked flags), the first run, the settling batch.
		{"insert-events", []any{[]string{"e-new"}, []string{"visit"}, []string{"c-77"}, []time.Time{now}, []string{"{}"}, "live"}, 0},
		{"latest-run-or-record", []any{"w-new", "j", "v1", "c-77", "", "e-new"}, 0},
		{"mark-events-dispatched", []any{[]string{"e-77"}}, 0},
		// Every decision asks when the customer last engaged.
		{"last-engaged", []any{"c-77"}, 0},
		{"journey-entrants", []any{now.Add(-28 * day), now}, 0},
		{"journey-messages", []any{now.Add(-28 * day), now}, 2},
		{"journey-would-have-sent", []any{now.Add(-28 * day), now}, 0},
		{"journey-complaints", []any{now.Add(-28 * day), now}, 0},
		{"journey-unsubscribes", []any{now.Add(-28 * day), now, now.Add(-58 * day)}, 3},
		{"record-run-group", []any{"j1", "e-8", true}, 0},
		// An event that is a journey's declared outcome marks its runs.
		{"reach-outcome", []any{"j1", "c-77", now, "720h"}, 0},
		// Ending a run gives up its waiting messages' places.
		{"finish-run", []any{"j1", "e-8", "exit"}, 0},
		{"waiting-for-customer", []any{"c-77"}, 0},
	}
	// A scan of a partition that holds nothing (a month ahead) costs
	// nothing, and the planner says so: such lines are left out.
	emptyScan := regexp.MustCompile(`cost=0\.00\.\.0\.0[01] `)
	partRE := regexp.MustCompile(`Scan(?: using \S+)? on (contact_ledger_p\d{6}|contact_ledger_legacy)`)
	for i, c := range cases {
		sql := store.QuerySQL(c.query)
		if sql == "" {
			t.Fatalf("no query %q", c.query)
		}
		name := fmt.Sprintf("q%d", i)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+sql); err != nil {
			t.Fatalf("%s: prepare: %v", c.query, err)
		}
		params := make([]string, len(c.args))
		for j := range c.args {
			params[j] = fmt.Sprintf("$%d", j+1)
		}
		explain := "EXPLAIN EXECUTE " + name
		if len(params) > 0 {
			explain += "(" + strings.Join(params, ", ") + ")"
		}
		rows, err := conn.Query(ctx, explain, append([]any{pgx.QueryExecModeSimpleProtocol}, c.args...)...)
		if err != nil {
			t.Fatalf("%s: explain: %v", c.query, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: explain: %v", c.query, err)
		}
		plan := strings.Join(lines, "\n")
		var nonEmpty []string
		for _, l := range lines {
			// An empty partition costs 0.00..0.00, or 0.00..0.01 with a
			// filter on it (a month ahead, or one never analyzed).
			if !emptyScan.MatchString(l) {
				nonEmpty = append(nonEmpty, l)
			}
		}
		read := map[string]bool{}
		for _, m := range partRE.FindAllStringSubmatch(strings.Join(nonEmpty, "\n"), -1) {
			read[m[1]] = true
		}
		for _, table := range []string{"contact_ledger", "customers", "events", "event_ids", "journey_runs"} {
			if regexp.MustCompile(`Seq Scan on ` + table + `(_p\d{6}|_legacy)?\b`).MatchString(strings.Join(nonEmpty, "\n")) {
				t.Errorf("%s reads %s whole:\n%s", c.query, table, plan)
			}
		}
		// Every decision runs last-engaged: it may read no table whole
		// (engagements, replies, answers, goals).
		if c.query == "last-engaged" && strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s reads a table whole:\n%s", c.query, plan)
		}
		if c.months > 0 && len(read) > c.months {
			t.Errorf("%s reads %d ledger partitions, want at most %d:\n%s", c.query, len(read), c.months, plan)
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", c.query, plan)
		}
	}
}
