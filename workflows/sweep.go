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

// Sweep keeps the event path's sweeper running: one activity after
// another, each sweeping for a minute and heartbeating, so that a sweeper
// whose worker dies is picked up elsewhere within seconds. Temporal runs
// exactly one (a schedule with overlap skip starts it); it continues as
// new to keep its history small.
func (w *Workflows) Sweep(ctx workflow.Context, in SweepInput) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	for range sweepsPerRun {
		if err := workflow.ExecuteActivity(actx, SweepActivity, SweepActivityInput{For: time.Minute}).Get(ctx, nil); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(ctx, SweepWorkflow, in)
}
