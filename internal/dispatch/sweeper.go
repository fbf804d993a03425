package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"golang.org/x/time/rate"

	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/telemetry"
	"github.com/lojal/lojal/workflows"
)

// Sweeper is the activity the sweeper workflow runs: it routes what the
// request path left behind, retries failures, deals with parked and
// requeued routes, reconciles runs, and keeps the event path's metrics.
// Temporal runs one sweeper workflow (a schedule with overlap skip), and a
// sweeper whose worker dies is retried elsewhere after its heartbeat
// timeout.
type Sweeper struct {
	Router  *Router
	Options SweepOptions
	// Idle is how long it pauses when there is nothing to do (default
	// 250 ms).
	Idle time.Duration
}

// Register registers the sweeper activity on a worker.
func (s *Sweeper) Register(w worker.Registry) {
	w.RegisterActivityWithOptions(s.Sweep, activity.RegisterOptions{Name: workflows.SweepActivity})
}

// Sweep sweeps for in.For, then returns what it did.
func (s *Sweeper) Sweep(ctx context.Context, in workflows.SweepActivityInput) (workflows.SweepActivityOutput, error) {
	var out workflows.SweepActivityOutput
	idle := s.Idle
	if idle <= 0 {
		idle = 250 * time.Millisecond
	}
	inActivity := activity.IsActivity(ctx)
	// A minute of polling under one span would be thousands of spans in
	// one trace; batches with work get traces of their own (SweepLane).
	ctx = telemetry.Detach(ctx)
	deadline := time.Now().Add(in.For)
	// The end of the stretch, where the successor runs too, is live
	// events only (workflows.SweepActivityInput.LiveOnly).
	liveOnlyFrom := deadline.Add(-in.LiveOnly)
	opts := s.Options.withDefaults()
	bulkRouter := *s.Router
	bulkRouter.Parallel = opts.BulkParallel
	bulkRate := rate.NewLimiter(rate.Inf, 0)
	if opts.BulkRate > 0 {
		bulkRate = rate.NewLimiter(rate.Limit(opts.BulkRate), bulkBatch(opts))
	}
	var progress atomic.Pointer[workflows.SweepActivityOutput]
	progress.Store(&workflows.SweepActivityOutput{})
	if inActivity {
		defer heartbeat(ctx, func() any { return *progress.Load() })()
	}
	var lastWaiting, lastReconcile, lastStats time.Time
	for ctx.Err() == nil && time.Now().Before(deadline) {
		snap := out
		progress.Store(&snap)
		live, err := s.Router.SweepLane(ctx, store.LaneLive, s.Options)
		if err != nil {
			return out, fmt.Errorf("sweep live events: %w", err)
		}
		out.Live += live
		tail := in.LiveOnly > 0 && !time.Now().Before(liveOnlyFrom)
		bulk := 0
		if live < opts.Batch && !tail {
			// Live events first: bulk work never delays them.
			bulkOpts := opts
			bulkOpts.Batch = bulkBatch(opts)
			if bulk, err = bulkRouter.SweepLane(ctx, store.LaneBulk, bulkOpts); err != nil {
				return out, fmt.Errorf("sweep bulk events: %w", err)
			}
			out.Bulk += bulk
			// The next batch waits until this one fits the bulk rate.
			if err := bulkRate.WaitN(ctx, bulk); err != nil && ctx.Err() == nil {
				return out, fmt.Errorf("bulk rate: %w", err)
			}
		}
		// The periodic work is the successor's in the shared tail.
		if now := time.Now(); !tail {
			if now.Sub(lastWaiting) >= time.Second {
				n, err := s.Router.Waiting(ctx, 500)
				if err != nil {
					return out, fmt.Errorf("waiting routes: %w", err)
				}
				out.Waiting += n
				lastWaiting = now
			}
			if now.Sub(lastReconcile) >= 30*time.Second {
				n, err := s.Router.Reconcile(ctx, time.Minute, 200)
				if err != nil {
					return out, fmt.Errorf("reconcile runs: %w", err)
				}
				out.Reconciled += n
				lastReconcile = now
			}
			if now.Sub(lastStats) >= 5*time.Second {
				if st, err := s.Router.Store.DispatchStats(ctx); err == nil {
					s.Router.Metrics.Dispatch(st.LiveBacklog, st.BulkBacklog, st.Dead, st.OldestLive)
				}
				lastStats = now
			}
		}
		if live == 0 && bulk == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(idle):
			}
		}
	}
	return out, nil
}

func bulkBatch(o SweepOptions) int { return min(o.Batch, 200) }

// heartbeat heartbeats the activity of ctx, with what details returns,
// at once and then four times per heartbeat timeout from a goroutine of
// its own until the returned stop is called: a batch that takes longer
// than the timeout is not a dead worker, while a worker that hangs
// (SIGSTOP) stops this goroutine too and Temporal retries the activity
// elsewhere.
func heartbeat(ctx context.Context, details func() any) (stop func()) {
	period := activity.GetInfo(ctx).HeartbeatTimeout / 4
	if period <= 0 {
		period = time.Second
	}
	activity.RecordHeartbeat(ctx, details())
	return every(ctx, period, func() { activity.RecordHeartbeat(ctx, details()) })
}

// every calls f once a period from a goroutine of its own, until the
// returned stop is called (it waits for a call under way) or ctx ends.
func every(ctx context.Context, period time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// SweeperScheduleID is the Temporal schedule that keeps the sweeper
// running.
const SweeperScheduleID = "lojal-sweeper"

// Scheduler is the part of the Temporal client EnsureSweeper uses.
type Scheduler interface {
	ScheduleClient() client.ScheduleClient
}

// EnsureSweeper creates the schedule that runs the sweeper workflow on
// queue, once a minute with overlap skip: the sweeper runs continuously
// (it continues as new), and the schedule starts it again if it is ever
// terminated. It is idempotent.
func EnsureSweeper(ctx context.Context, c Scheduler, queue string) error {
	if queue == "" {
		queue = workflows.TaskQueue
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: SweeperScheduleID,
		Spec: client.ScheduleSpec{
			Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute}},
		},
		Action: &client.ScheduleWorkflowAction{
			ID:        SweeperScheduleID,
			Workflow:  workflows.SweepWorkflow,
			Args:      []any{workflows.SweepInput{}},
			TaskQueue: queue,
			// A task handed to a hung worker goes to another soon.
			WorkflowTaskTimeout: workflows.SweepTaskTimeout,
		},
		Overlap:            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		TriggerImmediately: true,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the sweeper schedule: %w", err)
	}
	return nil
}
