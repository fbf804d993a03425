package workflows

import (
	"slices"
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
type SweepInput struct {
	// Stretch is how long each sweep runs (default a minute). Tests
	// shorten it to see sweeps follow one another.
	Stretch time.Duration `json:",omitempty"`
}

// SweepActivityInput is one stretch of sweeping.
type SweepActivityInput struct {
	For time.Duration
	// LiveOnly is the end of the stretch, given over to its successor:
	// in it the sweep routes live events only (no enrolments, waiting
	// routes, reconciling or metrics), so that two sweeps at once do not
	// do that work twice.
	LiveOnly time.Duration `json:",omitempty"`
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

// changeSweepOverlap (version 1): each sweep's successor starts
// SweepOverlap before the sweep is due to end (or as soon as it ends,
// if earlier), instead of after it ended; a continued sweeper's workflow
// tasks time out after SweepTaskTimeout instead of 10 s. Scheduling the
// next sweep takes a workflow task, and Temporal offers it first to the
// worker that ran the last one (its sticky queue): when that worker hangs
// (SIGSTOP) the task waits 5 s for it and may then go to one of the hung
// worker's outstanding polls for a workflow task timeout more. Before,
// no sweep ran meanwhile and events a dead replica left waited that long;
// now the earlier sweep still runs while the task is late.
const changeSweepOverlap = "sweep-overlap"

// overlappingSweepsPerRun bounds history before continuing as new when
// sweeps overlap (about 11 events each). Continuing as new leaves the
// event path without a sweep for as long as the new run's first workflow
// task takes (seconds, more when a worker hangs), so it is rare: every 6
// hours.
const overlappingSweepsPerRun = 480

// SweepOverlap is how long a sweep and its successor run together. It
// covers a workflow task lost to a hung sticky worker (5 s) and one lost
// to a hung poll (SweepTaskTimeout), with room to spare. Two sweeps at
// once are safe: claims lease each event to one of them.
const SweepOverlap = 15 * time.Second

// SweepTaskTimeout bounds one of the sweeper's workflow tasks (the
// schedule's action and each continued run): a task handed to a hung
// worker is given to another after this. Its tasks only schedule
// activities and timers.
const SweepTaskTimeout = 3 * time.Second

// SweepHeartbeatTimeout is how long the sweeper's activity may go without
// a heartbeat before Temporal retries it elsewhere. The activity
// heartbeats from a goroutine of its own, a quarter of it apart, so a long
// batch is not mistaken for a dead worker.
const SweepHeartbeatTimeout = 2 * time.Second

// Sweep keeps the event path's sweeper running: one activity after
// another, each sweeping for a minute and heartbeating, so that a sweeper
// whose worker dies is picked up elsewhere within seconds; each starts
// SweepOverlap before the one before it ends. Temporal runs exactly one
// sweeper workflow (a schedule with overlap skip starts it); it continues
// as new to keep its history small.
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
	stretch := in.Stretch
	if stretch <= 0 {
		stretch = time.Minute
	}
	if workflow.GetVersion(ctx, changeSweepOverlap, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		for range sweepsPerRun {
			if err := workflow.ExecuteActivity(actx, SweepActivity, SweepActivityInput{For: stretch}).Get(ctx, nil); err != nil {
				return err
			}
		}
		return workflow.NewContinueAsNewError(ctx, SweepWorkflow, in)
	}
	lead := min(SweepOverlap, stretch/4)
	var running []workflow.Future
	for range overlappingSweepsPerRun {
		// At most one sweep runs beside the one started now: one that
		// keeps failing (Postgres is away) is waited for, not joined by a
		// new one every stretch, which would all run at once when it is
		// back.
		for len(running) > 1 {
			if err := running[0].Get(ctx, nil); err != nil {
				return err
			}
			running = running[1:]
		}
		sweep := workflow.ExecuteActivity(actx, SweepActivity, SweepActivityInput{For: stretch, LiveOnly: lead})
		running = append(running, sweep)
		// The successor starts lead before this sweep is due to end, or
		// as soon as it ends (a worker that shuts down ends it early).
		tctx, cancel := workflow.WithCancel(ctx)
		due := workflow.NewTimer(tctx, stretch-lead)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(sweep, func(workflow.Future) {})
		sel.AddFuture(due, func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
		if err := ended(ctx, &running); err != nil {
			return err
		}
	}
	for _, f := range running {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(workflow.WithWorkflowTaskTimeout(ctx, SweepTaskTimeout), SweepWorkflow, in)
}

// ended drops the sweeps that have ended from running and returns the
// first one's error, if one failed.
func ended(ctx workflow.Context, running *[]workflow.Future) error {
	var err error
	*running = slices.DeleteFunc(*running, func(f workflow.Future) bool {
		if !f.IsReady() {
			return false
		}
		if e := f.Get(ctx, nil); e != nil && err == nil {
			err = e
		}
		return true
	})
	return err
}
