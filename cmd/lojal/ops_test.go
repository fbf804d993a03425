package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/deploy"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
)

func TestImportCustomers(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, `{"id": "c-%d", "email": "c%d@example.no", "locale": "nb", "consent": {"email": true}, "attributes": {"first_name": "Kari", "plan": "home"}}`+"\n", i, i)
	}
	b.WriteString(`{"id": "c-bad", "attributes": {"plan": 7}}` + "\n")
	b.WriteString("\n")
	b.WriteString(`not json` + "\n")
	file := filepath.Join(t.TempDir(), "customers.jsonl")
	writeFile(t, file, b.String())
	out, err := runCLI(t, "import", "customers", "--database-url", db, "--temporal-address", stacktest.TemporalAddress(t), "--journeys", "../../journeys", file)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1 for the bad lines:\n%s", exitCode(err), out)
	}
	for _, w := range []string{"imported 40 customers", "2 lines refused", "customers.jsonl:41: invalid: customer: attributes: field \"plan\"", "customers.jsonl:43:", "importing customers ["} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Customer(context.Background(), "c-39"); err != nil || c.Timezone != "Europe/Oslo" {
		t.Fatalf("c-39: %+v %v", c, err)
	}
}

func TestDeployIsPickedUpByRunningProcesses(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base, err := loadCatalog("../../journeys")
	if err != nil {
		t.Fatal(err)
	}
	live, err := deploy.NewLive(context.Background(), s, base, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if live.DeploymentID() != 0 {
		t.Fatal("a deployment before any was made")
	}
	// Deploy an edited copy: the check-in journey waits longer.
	dir := t.TempDir()
	stacktest.CopyDir(t, "../../journeys", dir)
	src := readFile(t, filepath.Join(dir, "checkin.yaml"))
	writeFile(t, filepath.Join(dir, "checkin.yaml"), strings.Replace(src, "timeout: 14d", "timeout: 21d", 1))
	out, err := runCLI(t, "journeys", "deploy", "--database-url", db, "--by", "test", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "checkin") || !strings.Contains(out, "deployment 1") {
		t.Fatalf("deploy output:\n%s", out)
	}
	// A broken directory is refused and nothing is stored.
	writeFile(t, filepath.Join(dir, "broken.yaml"), "id: broken\n")
	if out, err := runCLI(t, "journeys", "deploy", "--database-url", db, dir); exitCode(err) != 1 || !strings.Contains(out, "broken.yaml") {
		t.Fatalf("broken deploy: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dir, "broken.yaml"))
	if err := live.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if live.DeploymentID() != 1 {
		t.Fatalf("deployment in force: %d", live.DeploymentID())
	}
	old, _ := base.Journey("checkin")
	nw, _ := live.Current().Journey("checkin")
	if wait, ok := nw.Step("wait-for-answer"); old.Version == nw.Version || !ok || wait.WaitFor.Timeout.Hours() != 21*24 {
		t.Fatalf("live catalog did not switch to the deployed check-in")
	}
}

func TestSuppressionsListAndRemove(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range []string{"kari@example.no", "ola@example.no"} {
		if err := s.Suppress(context.Background(), "email", a, "hard_bounce", "5.1.1 (message abc, matched by verp)"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCLI(t, "suppressions", "list", "--database-url", db)
	if err != nil || !strings.Contains(out, "kari@example.no") || !strings.Contains(out, "ola@example.no") || !strings.Contains(out, "hard_bounce") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "suppressions", "remove", "--database-url", db, "--address", "kari@example.no"); exitCode(err) != 2 {
		t.Fatalf("remove without a reason: exit %d\n%s", exitCode(err), out)
	}
	out, err = runCLI(t, "suppressions", "remove", "--database-url", db, "--address", "Kari@example.no", "--reason", "customer called", "--by", "ingrid")
	if err != nil || !strings.Contains(out, "lifted by ingrid: customer called") {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "suppressions", "remove", "--database-url", db, "--address", "kari@example.no", "--reason", "again", "--by", "ingrid"); exitCode(err) != 1 {
		t.Fatalf("remove twice: exit %d\n%s", exitCode(err), out)
	}
	out, err = runCLI(t, "suppressions", "list", "--database-url", db)
	if err != nil || strings.Contains(out, "kari@example.no") || !strings.Contains(out, "ola@example.no") {
		t.Fatalf("list after remove: %v\n%s", err, out)
	}
	out, err = runCLI(t, "suppressions", "list", "--lifted", "--json", "--database-url", db)
	var l store.Lift
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || l.Address != "kari@example.no" || l.LiftedBy != "ingrid" || l.Why != "customer called" || l.Reason != "hard_bounce" {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}
