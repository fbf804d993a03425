package workflows

import (
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
)

// Change ids of the run-lifecycle changes (docs/versioning.md): runs that
// reach one of these points after a deploy record that they took the new
// branch; histories recorded before replay the old one.
const (
	// changeReorder: events that arrive close together are held for the
	// run's reorder window and applied in the order they happened (routing
	// no longer orders them; see internal/dispatch).
	changeReorder = "reorder-window-v1"
	// changeDrain: a run that finishes hands events it never applied back
	// to routing instead of losing them with the execution.
	changeDrain = "drain-before-finish-v1"
	// changeBoundedDB: database activities run locally for at most a
	// minute, then as a regular activity whose retries add nothing to the
	// run's history however long Postgres is away.
	changeBoundedDB = "bounded-db-activities-v1"
	// changeContinueInWaits: waits and deferral loops continue as new when
	// Temporal suggests it, not only between steps.
	changeContinueInWaits = "continue-as-new-in-waits-v1"
	// changeKnownData: customers and events are trimmed to the run's own
	// schema, so attributes added to schema.yaml never break a run.
	changeKnownData = "schema-additions-v1"
	// changeRedeployTest exists only in the fault test's second build
	// (redeployChange): a change of commands behind a marker.
	changeRedeployTest = "fault-test-redeploy-v1"
)

// redeployed runs the fault test's workflow code change: in its second
// build, a run whose wait ends takes a one-millisecond timer first. (Its
// error is the run's cancellation, which the next blocking call reports.)
func (r *run) redeployed() {
	if redeployChange && workflow.GetVersion(r.ctx, changeRedeployTest, workflow.DefaultVersion, 1) == 1 {
		_ = workflow.Sleep(r.ctx, time.Millisecond)
	}
}

// SendResume carries a send step across continue-as-new: its staleness
// (max_defer) keeps counting from its first ask.
type SendResume struct {
	Step       string
	Visit      int
	FirstAsked time.Time
}

// errContinueAsNew makes a step hand the run to a fresh execution now.
var errContinueAsNew = errors.New("continue as new")

// held is an event waiting out the reorder window.
type held struct {
	ev *journey.Event
	// arrived orders events that happened at the same time by arrival.
	arrived int
}

// reorderWindow is how long this run holds events before applying them.
func (r *run) reorderWindow() time.Duration {
	if r.in.ReorderWindow <= 0 || !r.uses(changeReorder) {
		return 0
	}
	return r.in.ReorderWindow
}

// hold takes an event the run just received: at once without a reorder
// window, otherwise after the window that opened with the first event
// held, in the order the events happened.
func (r *run) hold(ev *journey.Event) {
	window := r.reorderWindow()
	if window <= 0 {
		r.ready = append(r.ready, ev)
		return
	}
	if len(r.buffer) == 0 {
		r.flushAt = workflow.Now(r.ctx).Add(window)
	}
	r.arrivals++
	r.buffer = append(r.buffer, held{ev: ev, arrived: r.arrivals})
}

// flush makes every held event ready, in the order they happened.
func (r *run) flush() {
	slices.SortStableFunc(r.buffer, func(a, b held) int {
		if c := a.ev.At.Compare(b.ev.At); c != 0 {
			return c
		}
		return a.arrived - b.arrived
	})
	for _, h := range r.buffer {
		r.ready = append(r.ready, h.ev)
	}
	r.buffer = nil
}

// nextReady takes the next ready event, or nil.
func (r *run) nextReady() *journey.Event {
	if len(r.ready) == 0 {
		return nil
	}
	ev := r.ready[0]
	r.ready = r.ready[1:]
	return ev
}

// shouldContinue reports whether the run should continue as new in the
// middle of a wait: Temporal suggests it when history grows (a long wait
// that hears many events, a long deferral loop).
func (r *run) shouldContinue() bool {
	return workflow.GetInfo(r.ctx).GetContinueAsNewSuggested() && r.uses(changeContinueInWaits)
}

// unapplied returns, and forgets, every event the run received and has
// not applied: held, ready, pending, and still in the signal channel.
func (r *run) unapplied() []*journey.Event {
	r.flush()
	out := append(r.ready, r.pending...)
	r.ready, r.pending = nil, nil
	for {
		ev, ok := r.drain()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// handBack gives routing the events this finishing run did not apply:
// a trigger among them starts the next run (reentry permitting) once this
// one has closed, instead of being lost with it.
func (r *run) handBack() error {
	if !r.uses(changeDrain) {
		return nil
	}
	evs := r.unapplied()
	if len(evs) == 0 {
		return nil
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	workflow.GetLogger(r.ctx).Info("handing unapplied events back to routing", "events", len(ids))
	return r.db(r.acts.Requeue, activities.RequeueInput{JourneyID: r.in.JourneyID, WorkflowID: workflow.GetInfo(r.ctx).WorkflowExecution.ID,
		EventIDs: ids}, nil)
}

// db runs a short database activity. Before changeBoundedDB it ran only
// locally, retrying without bound: during a long Postgres outage every
// retry added a marker and a timer to the run's history. Now it runs
// locally for at most a minute, then as a regular activity, whose retries
// happen on the server and add nothing to the history.
func (r *run) db(activity, in, out any) error {
	if !r.uses(changeBoundedDB) {
		return workflow.ExecuteLocalActivity(r.localCtx(), activity, in).Get(r.ctx, out)
	}
	lctx := workflow.WithLocalActivityOptions(r.ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second, ScheduleToCloseTimeout: time.Minute, RetryPolicy: dbRetry})
	err := workflow.ExecuteLocalActivity(lctx, activity, in).Get(r.ctx, out)
	var ae *temporal.ApplicationError
	if err == nil || (errors.As(err, &ae) && ae.NonRetryable()) {
		return err
	}
	actx := workflow.WithActivityOptions(r.ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry})
	return workflow.ExecuteActivity(actx, activity, in).Get(r.ctx, out)
}

// known trims a customer to the run's schema.
func (r *run) known(c journey.Customer) journey.Customer {
	if r.uses(changeKnownData) {
		return r.def.Schema.Known(c)
	}
	return c
}

// knownEvent trims an event to the run's schema; ok is false for an event
// type the run's schema never declared.
func (r *run) knownEvent(ev *journey.Event) (*journey.Event, bool) {
	if !r.uses(changeKnownData) {
		return ev, true
	}
	k, ok := r.def.Schema.KnownEvent(*ev)
	return &k, ok
}
