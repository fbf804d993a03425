package workflows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/retention"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

// retainHistories are recorded by TestRetainEndToEnd (with
// -update-histories) and replayed by TestReplayHistories.
var retainHistories = []string{"retain-pass"}

// TestRetainEndToEnd runs one retention pass as the schedule starts it, on
// the Temporal dev server with the real activity and store: a month past
// the ledger's retention is dropped, and the pass's history is what
// TestReplayHistories replays against later workflow code.
func TestRetainEndToEnd(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := time.Now().AddDate(0, -15, 0)
	if _, err := s.Store.EnsurePartitions(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	queue := s.TaskQueue + "-retain"
	w := worker.New(s.Client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.New().Retain, workflow.RegisterOptions{Name: workflows.RetainWorkflow})
	(&retention.Job{Store: s.Store, Rules: func() policy.Rules { return *s.Catalog.Current().Rules }, Log: s.Log}).Register(w)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "retain-e2e", TaskQueue: queue}, workflows.RetainWorkflow,
		workflows.RetainInput{})
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.RetainOutput
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if want := "contact_ledger_p" + old.UTC().Format("200601"); !strings.Contains(strings.Join(out.Dropped, " "), want) {
		t.Fatalf("dropped %v, want %s among them", out.Dropped, want)
	}
	saveHistory(t, ctx, s, "retain-pass", run.GetID())
}
