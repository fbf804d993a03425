//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
)

// TestFaultSweeperWorkerStopped: the worker running the sweeper's activity
// hangs (SIGSTOP) just as events are left for the sweeper (stored by a
// replica that died before routing them, their clients gone). Temporal
// retries the activity on another worker after its heartbeat timeout,
// but a stopped worker's outstanding polls still take tasks, so a retry
// can land on it again. Every event still reaches its run within 10 s of
// being stored.
func TestFaultSweeperWorkerStopped(t *testing.T) {
	const customers = 20
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := startTracker(t, log, "s", customers)
	tc, st, d := tr.tc, tr.st, tr.d
	common := append(slices.Clone(tr.env), "SMTP_URL=smtp://"+tr.catcher.Addr)
	workers := map[int]*workerProcess{}
	for i := range 3 {
		logFile, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("worker-%d-*.log", i))
		if err != nil {
			t.Fatal(err)
		}
		w := &workerProcess{log: logFile, env: append(slices.Clone(common), "LOJAL_HTTP_ADDR="+freeAddr(t))}
		w.start(t)
		t.Cleanup(func() { w.signal(syscall.SIGCONT); w.kill() })
		workers[w.cmd.Process.Pid] = w
	}

	// The worker whose sweeper activity is running: the one Temporal
	// last gave it to (identities are pid@host@).
	var held *workerProcess
	for deadline := time.Now().Add(60 * time.Second); held == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no worker runs the sweeper's activity after 60 s")
		}
		desc, err := tc.ScheduleClient().GetHandle(ctx, dispatch.SweeperScheduleID).Describe(ctx)
		if err != nil || len(desc.Info.RunningWorkflows) == 0 {
			continue
		}
		run := desc.Info.RunningWorkflows[0]
		wd, err := tc.DescribeWorkflowExecution(ctx, run.WorkflowID, "")
		if err != nil {
			continue
		}
		for _, a := range wd.GetPendingActivities() {
			pid, _ := strconv.Atoi(strings.SplitN(a.GetLastWorkerIdentity(), "@", 2)[0])
			if w := workers[pid]; w != nil && a.GetHeartbeatDetails() != nil {
				held = w
			}
		}
	}
	held.signal(syscall.SIGSTOP)
	t.Logf("stopped the worker running the sweeper (pid %d)", held.cmd.Process.Pid)
	time.AfterFunc(45*time.Second, func() { held.signal(syscall.SIGCONT) })

	evs := make([]journey.Event, customers)
	for i := range evs {
		evs[i] = journey.Event{ID: fmt.Sprintf("sw-%04d", i), Type: "track.start", CustomerID: fmt.Sprintf("s-%04d", i), At: time.Now(),
			Data: map[string]any{"track_id": fmt.Sprintf("t-%04d", i)}}
	}
	res, err := d.Accept(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != ingest.StatusAccepted {
			t.Fatalf("event %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	var routed int
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id LIKE 'sw-%' AND dispatched_at IS NOT NULL`).Scan(&routed); err != nil {
			t.Fatal(err)
		}
		if routed == customers {
			break
		}
	}
	var worst float64
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM coalesce(dispatched_at, now()) - received_at)), 0)::float8
		FROM events WHERE id LIKE 'sw-%'`).Scan(&worst); err != nil {
		t.Fatal(err)
	}
	t.Logf("sweeper's worker stopped: %d of %d events routed, worst delay to the run %.1f s", routed, customers, worst)
	fmt.Printf("FAULT sweeper-worker-stopped: events %d, routed %d, worst delay %.1fs\n", customers, routed, worst)
	if routed < customers || worst > 10 {
		t.Fatalf("routed %d of %d, worst delay %.1f s (limit 10 s)", routed, customers, worst)
	}
}
