package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names of the event path's sweeper (internal/dispatch). The activity is
// registered by the worker under SweepActivity; the workflow only names it.
const (
	SweepWorkflow = "Sweep"
	SweepActivity = "DispatchSweep"
)

// SweepInput starts (or continues) the sweeper.
type SweepInput struct{}

// SweepActivityInput is one stretch of sweeping.
type SweepActivityInput struct {
	For time.Duration
}

// SweepActivityOutput counts what one stretch did.
type SweepActivityOutput struct {
	Live, Bulk, Waiting, Reconciled int
}

// sweepsPerRun bounds history before continuing as new.
const sweepsPerRun = 60

// changeSweepHeartbeat (version 1): the sweeper's activity times out
// after 2 s without a heartbeat (was 5 s) and is retried after 0.5 s,
// growing by a quarter each time (was 1 s, doubling). A worker that hangs
// (SIGSTOP) keeps its outstanding polls, and Temporal can hand the retry
// to one of them: each such retry is lost for a heartbeat timeout. With
// 5 s and doubling, two of them held events left for the sweeper 14 to
// 23 s; now the worst is under 10 s (TestFaultSweeperWorkerStopped).
const changeSweepHeartbeat = "sweep-heartbeat-2s"

// SweepHeartbeatTimeout is how long the sweeper's activity may go without
// a heartbeat before Temporal retries it elsewhere. The activity
// heartbeats from a goroutine of its own, a quarter of it apart, so a long
// batch is not mistaken for a dead worker.
const SweepHeartbeatTimeout = 2 * time.Second

// Sweep keeps the event path's sweeper running: one activity after
// another, each sweeping for a minute and heartbeating, so that a sweeper
// whose worker dies is picked up elsewhere within seconds. Temporal runs
// exactly one (a schedule with overlap skip starts it); it continues as
// new to keep its history small.
func (w *Workflows) Sweep(ctx workflow.Context, in SweepInput) error {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	}
	if workflow.GetVersion(ctx, changeSweepHeartbeat, workflow.DefaultVersion, 1) == 1 {
		opts.HeartbeatTimeout = SweepHeartbeatTimeout
		opts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 1.25,
			MaximumInterval: 10 * time.Second}
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	for range sweepsPerRun {
		if err := workflow.ExecuteActivity(actx, SweepActivity, SweepActivityInput{For: time.Minute}).Get(ctx, nil); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(ctx, SweepWorkflow, in)
}
