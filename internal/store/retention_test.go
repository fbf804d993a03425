package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// TestRetainDropsOldMonthsAndKeepsTheRest: with a ledger retention of 60
// days and events of 40, one pass drops the partitions wholly older than
// that (and nothing newer), forgets the ids of dropped events, deletes old
// push deliveries and firings, and deletes an old journey run only when a
// later one of the same journey, customer and key supersedes it. The
// months ahead exist afterwards. A second pass does nothing.
func TestRetainDropsOldMonthsAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn := schemaConn(t, cfg)
	now := time.Now().UTC()
	old, recent := now.AddDate(0, -5, 0), now.AddDate(0, 0, -10)
	if _, err := conn.Exec(ctx, `SELECT ensure_monthly_partitions(t, $1, $2) FROM unnest(ARRAY['contact_ledger', 'events', 'event_routes']) t`,
		old.AddDate(0, -1, 0), now); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `
		INSERT INTO customers (id) VALUES ('c-1');
		INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id, channel, priority,
			decision, reason, status, decided_at)
		SELECT k, k, 'c-1', 'w', 'j', 's', 'email', 'normal', 'defer', 'cap', 'deferred', at
		FROM (VALUES ('old', $1::timestamptz), ('recent', $2::timestamptz)) v(k, at);
		INSERT INTO event_ids (id, received_at) VALUES ('e-old', $1), ('e-recent', $2);
		INSERT INTO events (id, type, customer_id, occurred_at, received_at) VALUES ('e-old', 't', 'c-1', $1, $1), ('e-recent', 't', 'c-1', $2, $2);
		INSERT INTO event_routes (event_id, journey_id, action, received_at) VALUES ('e-old', 'j', 'started', $1);
		INSERT INTO push_deliveries (idempotency_key, subscription_id, status, updated_at) VALUES ('old', 1, 'sent', $1), ('recent', 1, 'sent', $2);
		INSERT INTO schedule_firings (journey_id, fire_at, zones, status, recorded_at) VALUES ('j', $1, '{}', 'enrolled', $1), ('j', $2, '{}', 'enrolled', $2);
		INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, run_key, trigger_event_id, started_at, ended_at) VALUES
			('w1', 'j', 'v', 'c-1', '', 'e1', $1, $1),                           -- superseded by w2: goes
			('w2', 'j', 'v', 'c-1', '', 'e2', $1::timestamptz + interval '1 day', $1::timestamptz + interval '2 days'), -- latest: stays
			('w3', 'k', 'v', 'c-1', '', 'e3', $1, $1),                           -- latest of journey k: stays
			('w4', 'k', 'v', 'c-1', 'x', 'e4', $1, $1),                          -- superseded by w5: goes
			('w5', 'k', 'v', 'c-1', 'x', 'e5', $2, $2)
	`, pgx.QueryExecModeSimpleProtocol, old, recent); err != nil {
		t.Fatal(err)
	}
	r := store.Retention{Ledger: 60 * 24 * time.Hour, Events: 40 * 24 * time.Hour, Runs: 60 * 24 * time.Hour}
	got, err := s.Retain(ctx, now, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	// Every month that ended before the cutoff is gone; the month the
	// cutoff falls in stays, and so do those to three months ahead.
	months := func(table string, keep time.Duration) []string {
		var names []string
		m := time.Date(old.Year(), old.Month()-1, 1, 0, 0, 0, 0, time.UTC)
		last := time.Date(now.Year(), now.Month()+3, 1, 0, 0, 0, 0, time.UTC)
		for ; !m.After(last); m = m.AddDate(0, 1, 0) {
			if m.AddDate(0, 1, 0).After(now.Add(-keep)) {
				names = append(names, table+"_p"+m.Format("200601"))
			}
		}
		return names
	}
	for table, want := range map[string][]string{
		"contact_ledger": months("contact_ledger", r.Ledger),
		"events":         months("events", r.Events),
	} {
		ps, err := s.Partitions(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s partitions after retention: %v\nwant %v", table, names, want)
		}
	}
	var ledger, events, routes, ids, pushes, firings int
	var runs []string
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM contact_ledger), (SELECT count(*) FROM events), (SELECT count(*) FROM event_routes),
		(SELECT count(*) FROM event_ids), (SELECT count(*) FROM push_deliveries), (SELECT count(*) FROM schedule_firings),
		(SELECT array_agg(workflow_id ORDER BY workflow_id) FROM journey_runs)`).Scan(&ledger, &events, &routes, &ids, &pushes, &firings, &runs); err != nil {
		t.Fatal(err)
	}
	if ledger != 1 || events != 1 || routes != 0 || ids != 1 || pushes != 1 || firings != 1 || !slices.Equal(runs, []string{"w2", "w3", "w5"}) {
		t.Fatalf("left: ledger %d, events %d, routes %d, event ids %d, push deliveries %d, firings %d, runs %v; "+
			"want 1, 1, 0, 1, 1, 1, [w2 w3 w5]", ledger, events, routes, ids, pushes, firings, runs)
	}
	again, err := s.Retain(ctx, now, r, nil)
	if err != nil || len(again.Created)+len(again.Dropped) != 0 || again.Runs+again.EventIDs+again.PushDeliveries+again.Firings != 0 {
		t.Fatalf("second pass: %+v %v, want nothing to do", again, err)
	}
}

// TestRetentionCheck: retention shorter than what the policy must
// remember is refused with a message naming the setting, the window and
// the least value that works.
func TestRetentionCheck(t *testing.T) {
	rules := policy.Rules{Caps: []policy.Cap{{Window: 90 * 24 * time.Hour, Max: 4}}, MaxDefer: 14 * 24 * time.Hour}
	names := map[string]string{"ledger": "LOJAL_RETAIN_LEDGER_DAYS", "events": "LOJAL_RETAIN_EVENTS_DAYS", "runs": "LOJAL_RETAIN_RUNS_DAYS"}
	if err := (store.Retention{}).Check(rules, names); err != nil {
		t.Fatalf("defaults against a 90-day cap: %v", err)
	}
	err := (store.Retention{Ledger: 60 * 24 * time.Hour}).Check(rules, names)
	if err == nil {
		t.Fatal("a 60-day ledger against a 90-day cap was accepted")
	}
	for _, want := range []string{"LOJAL_RETAIN_LEDGER_DAYS is 60d", "the cap of 4 per 90d", "at least 97d"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "EVENTS") {
		t.Errorf("error %q blames the events retention, which is long enough", err)
	}
	rules.PurposeWindow = 500 * 24 * time.Hour
	if err := (store.Retention{}).Check(rules, names); err == nil || !strings.Contains(err.Error(), "shorter than purpose_window in policy.yaml (500d)") {
		t.Fatalf("a 500-day purpose window against the default ledger retention: %v", err)
	}
	rules.PurposeWindow, rules.MaxDefer = 0, 100*24*time.Hour
	if err := (store.Retention{}).Check(rules, names); err == nil || !strings.Contains(err.Error(), "LOJAL_RETAIN_EVENTS_DAYS is 90d, shorter than max_defer") {
		t.Fatalf("a 100-day max_defer against the default events retention: %v", err)
	}
}
