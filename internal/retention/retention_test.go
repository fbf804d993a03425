package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/retention"
	"github.com/lojal/lojal/workflows"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRetainWorkflow: the Retain workflow's pass against a real store
// drops a month past the ledger's retention and keeps the months ahead.
func TestRetainWorkflow(t *testing.T) {
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now()
	old := now.AddDate(0, -15, 0)
	if _, err := s.EnsurePartitions(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	job := &retention.Job{Store: s, Rules: func() policy.Rules { return policy.Rules{} }, Now: func() time.Time { return now }}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Retain, workflow.RegisterOptions{Name: workflows.RetainWorkflow})
	job.Register(env)
	env.ExecuteWorkflow(workflows.RetainWorkflow, workflows.RetainInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out workflows.RetainOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	want := "contact_ledger_p" + old.UTC().Format("200601")
	if !strings.Contains(strings.Join(out.Dropped, " "), want) {
		t.Fatalf("dropped %v, want %s among them (older than 400 days)", out.Dropped, want)
	}
	ps, err := s.Partitions(ctx, "contact_ledger")
	if err != nil {
		t.Fatal(err)
	}
	last := ps[len(ps)-1].Before
	if last.Before(now.AddDate(0, 3, 0)) {
		t.Fatalf("partitions end %s, want at least three months ahead of %s", last, now)
	}
}

// TestRetainRefusesTooShortRetention: with a cap window longer than the
// ledger's retention, the pass fails at once (not retried) and drops
// nothing. It still creates the months ahead: a policy published with a
// window too long for the retention used to stop partitions being made
// too, and at the next month boundary nothing past the last one could be
// written (no decision, no event).
func TestRetainRefusesTooShortRetention(t *testing.T) {
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := s.EnsurePartitions(ctx, now.AddDate(0, -15, 0), 0); err != nil {
		t.Fatal(err)
	}
	before, err := s.Partitions(ctx, "contact_ledger")
	if err != nil {
		t.Fatal(err)
	}
	rules := policy.Rules{Caps: []policy.Cap{{Window: 500 * 24 * time.Hour, Max: 10}}}
	later := now.AddDate(0, 6, 0) // months of refused passes
	job := &retention.Job{Store: s, Rules: func() policy.Rules { return rules }, Now: func() time.Time { return later }}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Retain, workflow.RegisterOptions{Name: workflows.RetainWorkflow})
	job.Register(env)
	env.ExecuteWorkflow(workflows.RetainWorkflow, workflows.RetainInput{})
	err = env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.RetentionTooShort || !strings.Contains(err.Error(), "LOJAL_RETAIN_LEDGER_DAYS is 400d") {
		t.Fatalf("pass with a 500-day cap: %v, want %s naming LOJAL_RETAIN_LEDGER_DAYS", err, workflows.RetentionTooShort)
	}
	after, err := s.Partitions(ctx, "contact_ledger")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	covered := false
	for _, p := range after {
		names[p.Name] = true
		covered = covered || (!p.From.After(later) && later.Before(p.Before))
	}
	for _, p := range before {
		if !names[p.Name] {
			t.Errorf("a refused pass dropped %s", p.Name)
		}
	}
	if !covered {
		t.Errorf("after a refused pass at %s no partition takes that month's decisions", later.Format("2006-01"))
	}
}
