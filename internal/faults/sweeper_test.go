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

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

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
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := startTracker(t, log, "s", customers)
	workers := map[int]*workerProcess{}
	sweeperWorkers(t, tr, workers, 3)

	// The worker whose sweeper activity is running: the one Temporal
	// last gave it to.
	var held *workerProcess
	for deadline := time.Now().Add(60 * time.Second); held == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no worker runs the sweeper's activity after 60 s")
		}
		if s, ok := sweeperState(t, tr, workers); ok && len(s.sweeps) > 0 {
			held = s.sweeps[0].on
		}
	}
	held.signal(syscall.SIGSTOP)
	t.Logf("stopped the worker running the sweeper (pid %d)", held.cmd.Process.Pid)
	time.AfterFunc(45*time.Second, func() { held.signal(syscall.SIGCONT) })

	routed, worst := leaveForTheSweeper(t, tr, "sw", "s", customers)
	t.Logf("sweeper's worker stopped: %d of %d events routed, worst delay to the run %.1f s", routed, customers, worst)
	fmt.Printf("FAULT sweeper-worker-stopped: events %d, routed %d, worst delay %.1fs\n", customers, routed, worst)
	if routed < customers || worst > 10 {
		t.Fatalf("routed %d of %d, worst delay %.1f s (limit 10 s)", routed, customers, worst)
	}
}

// TestFaultSweeperStickyWorkerStopped: the worker running the sweep
// hangs (SIGSTOP) for 80 s; it also ran the sweeper workflow's last
// workflow task. Temporal retries the sweep on another worker, which
// sweeps for its minute. Scheduling the sweep after it takes a workflow
// task, and Temporal offers that task to the hung worker first (its
// sticky queue) for 5 s, then may hand it to one of its outstanding polls
// for a workflow task timeout more. Before, no sweep ran meanwhile, and
// events a dead replica left two seconds before the retried sweep ended
// waited 7 s or more; now the next sweep starts before the one before it
// ends, and they reach their runs within the sweeper's grace (3 s) and
// 2.5 s.
func TestFaultSweeperStickyWorkerStopped(t *testing.T) {
	const customers = 20
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := startTracker(t, log, "k", customers)
	// One worker first: the sweep and the workflow's tasks are its.
	workers := map[int]*workerProcess{}
	sweeperWorkers(t, tr, workers, 1)
	var held sweep
	var run string
	for deadline := time.Now().Add(time.Minute); held.on == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not start in a minute")
		}
		if s, ok := sweeperState(t, tr, workers); ok && len(s.sweeps) == 1 && s.sweeps[0].on == s.sticky {
			held, run = s.sweeps[0], s.run
		}
	}
	// Then the two it can move to, polling before the first hangs.
	sweeperWorkers(t, tr, workers, 2)
	time.Sleep(3 * time.Second)
	stopped := time.Now()
	held.on.signal(syscall.SIGSTOP)
	t.Logf("stopped the worker of the sweep and of the sweeper's workflow (pid %d)", held.on.cmd.Process.Pid)
	time.AfterFunc(80*time.Second, func() { held.on.signal(syscall.SIGCONT) })

	// The same sweep, retried on another worker, and when it ends: each
	// sweep is given a minute.
	var ends time.Time
	for deadline := time.Now().Add(30 * time.Second); ends.IsZero(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sweep was not retried on another worker in 30 s")
		}
		s, _ := sweeperState(t, tr, workers)
		for _, sw := range s.sweeps {
			if sw.id == held.id && sw.on != held.on && sw.started.After(stopped) {
				ends = sw.started.Add(time.Minute)
			}
		}
	}
	t.Logf("the sweep was retried; it ends in %s", time.Until(ends).Round(100*time.Millisecond))
	time.Sleep(time.Until(ends) - 2*time.Second)

	routed, worst := leaveForTheSweeper(t, tr, "sk", "k", customers)
	t.Logf("sweeper workflow's worker stopped as a sweep ends: %d of %d events routed, worst delay to the run %.1f s", routed, customers, worst)
	fmt.Printf("FAULT sweeper-sticky-worker-stopped: events %d, routed %d, worst delay %.1fs\n", customers, routed, worst)
	// The hung worker held up a workflow task, or the test proved nothing.
	if !timedOutTask(t, ctx, tr, run) {
		t.Fatal("no workflow task of the sweeper timed out while its worker was stopped: the test held none up")
	}
	if routed < customers || worst > 5.5 {
		t.Fatalf("routed %d of %d, worst delay %.1f s (limit: the 3 s grace and 2.5 s)", routed, customers, worst)
	}
}

// sweeperWorkers starts n workers for a sweeper test and adds them to
// workers, by pid.
func sweeperWorkers(t *testing.T, tr tracker, workers map[int]*workerProcess, n int) {
	t.Helper()
	common := append(slices.Clone(tr.env), "SMTP_URL=smtp://"+tr.catcher.Addr)
	for i := range n {
		logFile, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("worker-%d-*.log", i))
		if err != nil {
			t.Fatal(err)
		}
		w := &workerProcess{log: logFile, env: append(slices.Clone(common), "LOJAL_HTTP_ADDR="+freeAddr(t))}
		w.start(t)
		t.Cleanup(func() { w.signal(syscall.SIGCONT); w.kill() })
		workers[w.cmd.Process.Pid] = w
	}
}

// sweep is one of the sweeper's activities under way.
type sweep struct {
	id      string // the activity's, kept by its retries
	on      *workerProcess
	started time.Time
}

// sweeperNow is where the sweeper runs: its sweeps under way, oldest
// first, and the worker that ran its workflow's last task.
type sweeperNow struct {
	run    string // the sweeper workflow's id
	sweeps []sweep
	sticky *workerProcess
}

// sweeperState reads where the sweeper runs from Temporal (worker
// identities are pid@host@); ok is false while it is not running.
func sweeperState(t *testing.T, tr tracker, workers map[int]*workerProcess) (sweeperNow, bool) {
	t.Helper()
	ctx := context.Background()
	byIdentity := func(id string) *workerProcess {
		pid, _ := strconv.Atoi(strings.SplitN(id, "@", 2)[0])
		return workers[pid]
	}
	var s sweeperNow
	desc, err := tr.tc.ScheduleClient().GetHandle(ctx, dispatch.SweeperScheduleID).Describe(ctx)
	if err != nil || len(desc.Info.RunningWorkflows) == 0 {
		return s, false
	}
	s.run = desc.Info.RunningWorkflows[0].WorkflowID
	wd, err := tr.tc.DescribeWorkflowExecution(ctx, s.run, "")
	if err != nil {
		return s, false
	}
	for _, a := range wd.GetPendingActivities() {
		if w := byIdentity(a.GetLastWorkerIdentity()); w != nil && a.GetHeartbeatDetails() != nil {
			s.sweeps = append(s.sweeps, sweep{id: a.GetActivityId(), on: w, started: a.GetLastStartedTime().AsTime()})
		}
	}
	slices.SortFunc(s.sweeps, func(a, b sweep) int { return a.started.Compare(b.started) })
	hist, err := tr.tc.WorkflowService().GetWorkflowExecutionHistoryReverse(ctx, &workflowservice.GetWorkflowExecutionHistoryReverseRequest{
		Namespace: "default", Execution: wd.GetWorkflowExecutionInfo().GetExecution(), MaximumPageSize: 50})
	if err != nil {
		return s, false
	}
	for _, ev := range hist.GetHistory().GetEvents() {
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			s.sticky = byIdentity(ev.GetWorkflowTaskCompletedEventAttributes().GetIdentity())
			break
		}
	}
	return s, true
}

// timedOutTask says whether a workflow task of the sweeper workflow run
// timed out (its sticky worker did not take it, or a worker that took it
// did not answer).
func timedOutTask(t *testing.T, ctx context.Context, tr tracker, run string) bool {
	t.Helper()
	iter := tr.tc.GetWorkflowHistory(ctx, run, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", run, err)
		}
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
			return true
		}
	}
	return false
}

// leaveForTheSweeper stores n events (ids prefix-0000, ... for customers
// customers-0000, ...) as a replica that died before
// routing them leaves them (their clients gone), waits up to 40 s for the
// sweeper to route them, and returns how many it routed and the worst
// delay from being stored to reaching the run, in seconds.
func leaveForTheSweeper(t *testing.T, tr tracker, prefix, customers string, n int) (routed int, worst float64) {
	t.Helper()
	ctx := context.Background()
	evs := make([]journey.Event, n)
	for i := range evs {
		evs[i] = journey.Event{ID: fmt.Sprintf("%s-%04d", prefix, i), Type: "track.start", CustomerID: fmt.Sprintf("%s-%04d", customers, i),
			At: time.Now(), Data: map[string]any{"track_id": fmt.Sprintf("t-%04d", i)}}
	}
	res, err := tr.d.Accept(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != ingest.StatusAccepted {
			t.Fatalf("event %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	like := prefix + "-%"
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err := tr.st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id LIKE $1 AND dispatched_at IS NOT NULL`, like).Scan(&routed); err != nil {
			t.Fatal(err)
		}
		if routed == n {
			break
		}
	}
	if err := tr.st.Pool().QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM coalesce(dispatched_at, now()) - received_at)), 0)::float8
		FROM events WHERE id LIKE $1`, like).Scan(&worst); err != nil {
		t.Fatal(err)
	}
	return routed, worst
}
