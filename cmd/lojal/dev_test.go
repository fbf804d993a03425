package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestReportGroupsHeldMessagesByCustomer: the held-back messages are
// listed under each customer, a customer the demo does not know (one
// created through the API) appears with their own name and zone, and no
// zone is written the way Go writes those without letters ("-03").
func TestReportGroupsHeldMessagesByCustomer(t *testing.T) {
	t.Parallel()
	oslo, _ := journey.LoadLocation("Europe/Oslo")
	at := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	until := at.Add(9 * time.Hour)
	people := map[string]journey.Customer{
		"c-1":   {ID: "c-1", Timezone: "Europe/Oslo", Attributes: map[string]any{"first_name": "Kari", "last_name": "Nordmann"}},
		"api-7": {ID: "api-7", Timezone: "America/Sao_Paulo", Attributes: map[string]any{"first_name": "Freja", "last_name": "Madsen"}},
	}
	who := func(id string) journey.Customer { return people[id] }
	sent := []store.Sent{{CustomerID: "api-7", JourneyID: "renewal-reminder", Channel: "email", SentAt: at, Subject: "Hej", Locale: "da"}}
	decisions := []store.Decision{
		{CustomerID: "c-1", JourneyID: "segment-onboarding", StepID: "a", Channel: "email", Decision: "defer", Reason: "quiet_hours", DeferUntil: &until},
		{CustomerID: "api-7", JourneyID: "service-introduction", StepID: "b", Channel: "email", Decision: "defer", Reason: "min_gap", DeferUntil: &until},
		{CustomerID: "c-1", JourneyID: "checkin", StepID: "c", Channel: "email", Decision: "suppress", Reason: "topic_opted_out"},
	}
	var b bytes.Buffer
	writeReport(&b, sent, decisions, who, oslo)
	out := b.String()
	for _, w := range []string{
		"Freja Madsen (api-7)  da      renewal-reminder  email    Sun 01 Mar 20:00 UTC-3 (America/Sao_Paulo)",
		"  Kari Nordmann (c-1), Europe/Oslo (CE",
		"    segment-onboarding  email  deferred until Mon 02 Mar 09:00 CET  quiet hours in the customer's time zone (quiet_hours)\n    checkin             email  suppressed",
		"  Freja Madsen (api-7), America/Sao_Paulo (UTC-3)\n    service-introduction  email  deferred until Mon 02 Mar 05:00 UTC-3",
		"1 customers received a message: 1 sent, 2 waiting, 1 suppressed.",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	if regexp.MustCompile(`\d\d:\d\d [+-]\d\d`).MatchString(out) {
		t.Errorf("a zone written as digits:\n%s", out)
	}
}

// TestDirectoryReadsAPICustomersFromTheStore: a customer not among the
// demo's is read from the store, with their name and zone.
func TestDirectoryReadsAPICustomersFromTheStore(t *testing.T) {
	t.Parallel()
	st := pgtest.Store(t)
	c := journey.Customer{ID: "api-1", Email: "ada@example.no", Timezone: "Asia/Kolkata", Attributes: map[string]any{"first_name": "Ada"}}
	if _, err := st.UpsertCustomer(context.Background(), c, "api"); err != nil {
		t.Fatal(err)
	}
	d := newDirectory(st, []journey.Customer{{ID: "c-1"}})
	got := d.get(context.Background(), "api-1")
	if customerName(got) != "Ada (api-1)" || got.Timezone != "Asia/Kolkata" {
		t.Errorf("got %+v", got)
	}
	if got := d.get(context.Background(), "nobody"); got.ID != "nobody" {
		t.Errorf("unknown: %+v", got)
	}
}

func TestWhyCommandLine(t *testing.T) {
	t.Parallel()
	url := "postgres://postgres@127.0.0.1:41234/lojal?sslmode=disable"
	if got := whyCommand(url, true, "bin/lojal", "c-1001"); got != "DATABASE_URL='"+url+"' bin/lojal why --customer c-1001" {
		t.Errorf("whyCommand = %q", got)
	}
	if got := whyCommand("postgres://u:secret@db/lojal", false, "bin/lojal", "c-1"); strings.Contains(got, "secret") {
		t.Errorf("a password of the user's own is printed: %q", got)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := relativeTo(filepath.Join(dir, "bin", "lojal"), dir); got != "bin/lojal" {
		t.Errorf("make dev's binary: %q", got)
	}
	os.WriteFile(filepath.Join(dir, "bin", "lojal"), nil, 0o755)
	if got := relativeTo("/elsewhere/go-build/lojal", dir); got != "bin/lojal" {
		t.Errorf("go run's binary with bin/lojal built: %q", got)
	}
}

// TestDevRemovesItsMailDirectory: the temporary directory the embedded
// SMTP server writes to is removed when lojal dev stops.
func TestDevRemovesItsMailDirectory(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.DatabaseURL, cfg.TemporalAddress = "postgres://unused", "127.0.0.1:1"
	s, err := startDevStack(context.Background(), &cfg, "", slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.mailDir); err != nil {
		t.Fatalf("no mail directory: %v", err)
	}
	s.stop()
	if _, err := os.Stat(s.mailDir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after stop (%v)", s.mailDir, err)
	}
	kept := t.TempDir()
	s, err = startDevStack(context.Background(), &cfg, kept, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s.stop()
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("--mail-dir was removed: %v", err)
	}
}
