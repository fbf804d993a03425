package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestEventsCommands: an event whose routing keeps failing is listed by
// `events failed`, explained by `events show`, and can be retried or
// dropped (with the reason recorded).
func TestEventsCommands(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "c-1@example.no"}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e-1", "e-2"} {
		ev := journey.Event{ID: id, Type: "order.placed", CustomerID: "c-1", At: time.Now(), Data: map[string]any{"order_id": "o-1"}}
		if _, err := s.AcceptEvents(ctx, []journey.Event{ev}); err != nil {
			t.Fatal(err)
		}
		if _, dead, err := s.EventFailed(ctx, id, "start journey/x/c-1: temporal is unreachable", 1); err != nil || !dead {
			t.Fatalf("dead letter: %v %v", dead, err)
		}
	}
	db := cfg.URL + "&search_path=" + cfg.Schema
	out, err := runCLI(t, "events", "failed", "--database-url", db)
	if err != nil || !strings.Contains(out, "e-1") || !strings.Contains(out, "temporal is unreachable") {
		t.Fatalf("failed: %v\n%s", err, out)
	}
	out, err = runCLI(t, "events", "show", "e-1", "--database-url", db)
	if err != nil || !strings.Contains(out, "status    dead after 1 failed attempt") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "events", "retry", "e-1", "--database-url", db); err != nil {
		t.Fatalf("retry: %v\n%s", err, out)
	}
	if rec, _ := s.Event(ctx, "e-1"); rec.Status() != "pending" {
		t.Fatalf("after retry: %s", rec.Status())
	}
	if _, err := runCLI(t, "events", "drop", "e-2", "--database-url", db); exitCode(err) != 2 {
		t.Fatalf("drop without a reason: %v", err)
	}
	if out, err := runCLI(t, "events", "drop", "e-2", "--reason", "test data", "--database-url", db); err != nil {
		t.Fatalf("drop: %v\n%s", err, out)
	}
	if rec, _ := s.Event(ctx, "e-2"); rec.Status() != "dropped" || !strings.Contains(rec.Error, "test data") {
		t.Fatalf("after drop: %+v", rec)
	}
	if _, err := runCLI(t, "events", "show", "nope", "--database-url", db); exitCode(err) != 1 {
		t.Fatalf("unknown event: %v", err)
	}
}
