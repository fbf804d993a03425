package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// TestWorkerRefusesRetentionShorterThanPolicy: the shipped policy.yaml
// remembers 30 days (purpose_window); a ledger kept for 30 days is refused
// at start-up, naming the setting and the least value, and the defaults
// pass.
func TestWorkerRefusesRetentionShorterThanPolicy(t *testing.T) {
	cat, err := loadCatalog("../../journeys")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig("worker", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRetention(cfg, *cat.Rules); err != nil {
		t.Fatalf("default retention: %v", err)
	}
	cfg, _, err = loadConfig("worker", []string{"--retain-ledger-days", "30"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = checkRetention(cfg, *cat.Rules)
	if err == nil {
		t.Fatal("a 30-day ledger against a 30-day purpose window was accepted")
	}
	// Where the window is written, as every error about what a marketer
	// wrote says it: file:line:col of its value.
	src, err2 := os.ReadFile("../../journeys/policy.yaml")
	if err2 != nil {
		t.Fatal(err2)
	}
	at := ""
	for i, line := range strings.Split(string(src), "\n") {
		if k := strings.Index(line, "purpose_window:"); k >= 0 {
			v := k + len("purpose_window:")
			v += len(line[v:]) - len(strings.TrimLeft(line[v:], " "))
			at = fmt.Sprintf("../../journeys/policy.yaml:%d:%d", i+1, v+1)
		}
	}
	if at == "" {
		t.Fatal("the shipped policy.yaml sets no purpose_window")
	}
	for _, want := range []string{"LOJAL_RETAIN_LEDGER_DAYS is 30d", "purpose_window in policy.yaml (30d)", "at least 37d", at + ": "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// TestPoolSizedFromActivitySlots: the pool follows the activity slots
// unless LOJAL_DB_MAX_CONNS overrides it.
func TestPoolSizedFromActivitySlots(t *testing.T) {
	cfg := defaultConfig()
	if got := poolSize(cfg); got != 55 {
		t.Errorf("200 slots: pool of %d, want 55", got)
	}
	cfg.ActivitySlots = 40
	if got := poolSize(cfg); got != 15 {
		t.Errorf("40 slots: pool of %d, want 15", got)
	}
	t.Setenv("LOJAL_DB_MAX_CONNS", "12")
	cfg, _, err := loadConfig("worker", nil, io.Discard)
	if err != nil || poolSize(cfg) != 12 {
		t.Errorf("LOJAL_DB_MAX_CONNS=12: pool of %d (%v)", poolSize(cfg), err)
	}
}
