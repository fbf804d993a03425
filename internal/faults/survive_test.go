//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

// copyDir copies a journeys directory.
// TestFaultRunsSurviveChange: 200 runs wait between their two messages.
// In one go the schema gains an attribute (and every customer gets it),
// the worker is redeployed with a workflow code change behind a version
// marker (a second build of lojal), and Temporal is restarted. Every run
// finishes, on the journey version it started with, with both its
// messages: lost 0, failed runs 0, duplicates 0.
func TestFaultRunsSurviveChange(t *testing.T) {
	const n = 200
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tmp := t.TempDir()
	v2Bin := filepath.Join(tmp, "lojal-v2")
	if out, err := exec.Command("go", "build", "-tags", "faultsv2", "-o", v2Bin, "../../cmd/lojal").CombinedOutput(); err != nil {
		t.Fatalf("build the second worker: %v\n%s", err, out)
	}
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tOpts := devstack.TemporalOptions{DBFile: filepath.Join(tmp, "temporal.db"), Port: port}
	srv := ownServers(t, log, tOpts)
	tc, cfg, st, catcher := srv.tc, srv.cfg, srv.st, srv.catcher

	v1Dir, v2Dir := filepath.Join(tmp, "v1"), filepath.Join(tmp, "v2")
	stacktest.CopyDir(t, journeysDir, v1Dir)
	stacktest.CopyDir(t, journeysDir, v2Dir)
	schema, _ := os.ReadFile(filepath.Join(v2Dir, "schema.yaml"))
	newSchema := strings.Replace(string(schema), "customer:\n", "customer:\n  tier: string\n", 1)
	if err := os.WriteFile(filepath.Join(v2Dir, "schema.yaml"), []byte(newSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	v1Cat, err := catalog.Load(os.DirFS(v1Dir), v1Dir)
	if err != nil {
		t.Fatal(err)
	}
	v2Cat, err := catalog.Load(os.DirFS(v2Dir), v2Dir)
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.CreateTemp(tmp, "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	env := func(dir string) []string {
		return []string{"DATABASE_URL=" + cfg.URL + "&search_path=" + cfg.Schema, "TEMPORAL_ADDRESS=" + srv.temporal.Address,
			"SMTP_URL=smtp://" + catcher.Addr, "LOJAL_JOURNEYS=" + dir, "LOJAL_LINK_KEY=fault-tests-link-key-0123456789abcdef",
			"LOJAL_HTTP_ADDR=" + freeAddr(t), "LOJAL_LOG_LEVEL=warn", "LOJAL_SHUTDOWN_TIMEOUT=1s", "LOJAL_METRICS_ADDR=", "LOJAL_DEV_MODE=true"}
	}
	w := &workerProcess{log: logFile, env: env(v1Dir)}
	w.start(t)
	t.Cleanup(func() { w.kill() })

	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: v1Cat, Log: log}
	want := map[string]int{}
	ids := make([]string, 0, n)
	for i := range n {
		c := journey.Customer{ID: fmt.Sprintf("live-%04d", i), Email: fmt.Sprintf("live-%04d@example.no", i), Locale: "en",
			Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := d.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
		want[c.Email] = 2
		e := journey.Event{ID: "r-" + c.ID, Type: "policy.renewal_due", CustomerID: c.ID, At: time.Now(), Data: map[string]any{"policy_id": "p-" + c.ID}}
		if _, err := d.Event(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("renewal", c.ID, "p-"+c.ID))
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := catcher.WaitFor(wctx, n); err != nil {
		t.Fatalf("first messages: %v", err)
	}
	v1, _ := v1Cat.Journey("renewal")

	// In one go: the schema gains an attribute and every customer has it,
	// the worker is redeployed with changed workflow code, Temporal
	// restarts.
	changed := time.Now()
	d2 := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: v2Cat, Log: log}
	for i := range n {
		c := journey.Customer{ID: fmt.Sprintf("live-%04d", i), Email: fmt.Sprintf("live-%04d@example.no", i), Locale: "en",
			Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "tier": "gold"}}
		if _, err := d2.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	w.kill()
	srv.temporal.Stop()
	if srv.temporal, err = devstack.StartTemporal(ctx, log, tOpts); err != nil {
		t.Fatalf("restart Temporal: %v", err)
	}
	// The worker refuses to start without Temporal (Kubernetes restarts
	// it), so the new code is rolled out once Temporal is back.
	w.bin, w.env = v2Bin, env(v2Dir)
	w.start(t)
	t.Logf("schema, worker and Temporal changed in %s", time.Since(changed).Round(time.Millisecond))

	rctx, rcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer rcancel()
	failed, onV1, marked := 0, 0, 0
	for _, id := range ids {
		var res workflows.JourneyResult
		if err := tc.GetWorkflow(rctx, id, "").Get(rctx, &res); err != nil || res.Outcome != journey.OutcomeExit || res.Sent != 2 {
			failed++
			t.Errorf("%s: %+v %v", id, res, err)
			continue
		}
		// A query of a finished run is answered by a worker replaying its
		// history. On a loaded machine, and for a while after Temporal's
		// restart, matching can answer "no poller seen for task queue
		// recently" or time out although the worker polls: neither is a
		// run on another version. Ask again for up to 30 s, and say which
		// it was.
		var info workflows.RunInfo
		var qerr error
		for deadline := time.Now().Add(30 * time.Second); ; {
			qctx, qcancel := context.WithTimeout(rctx, 5*time.Second)
			var v converter.EncodedValue
			if v, qerr = tc.QueryWorkflow(qctx, id, "", workflows.QueryState); qerr == nil {
				qerr = v.Get(&info)
			}
			qcancel()
			if qerr == nil || rctx.Err() != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case qerr != nil:
			t.Errorf("%s: query its version: %v", id, qerr)
		case info.Version == v1.Version:
			onV1++
		}
		iter := tc.GetWorkflowHistory(rctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				break
			}
			if strings.Contains(ev.GetMarkerRecordedEventAttributes().String(), "fault-test-redeploy-v1") {
				marked++
				break
			}
		}
	}
	time.Sleep(time.Second)
	tl := count(catcher.Messages(), want)
	t.Logf("runs survive change: %d runs; %s; failed runs %d, finished on their version %d, took the new code's branch %d",
		n, tl, failed, onV1, marked)
	fmt.Printf("FAULT survive-change: runs %d, %s, failed runs %d, on original version %d, new code path %d\n", n, tl, failed, onV1, marked)
	if tl.duplicates > 0 || tl.lost > 0 || failed > 0 || onV1 != n || marked != n {
		b, _ := os.ReadFile(logFile.Name())
		t.Fatalf("%s; failed %d, on v1 %d, marked %d\nworker log tail:\n%s", tl, failed, onV1, marked, tail(string(b), 3000))
	}
}
