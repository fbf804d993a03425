// Package dispatch routes stored events to the journey runs they concern.
//
// Routing happens in the request path: the API replica that accepted an
// event routes it at once (a start on the run's workflow id, or a
// signal). There is no elected dispatcher and no home-made coordination:
// Temporal keeps one run per workflow id, runs deduplicate events by id and
// put events that arrive close together back in the order they happened
// (their reorder window), and journey_runs' unique entry decides which
// router may start a run. A sweeper that Temporal runs once (a schedule)
// routes what a replica left behind when it died or hung, retries what
// failed with a backoff per event, dead-letters what keeps failing, parks
// events that arrive before their run exists, and reconciles journey_runs
// with what Temporal knows. docs/scaling.md explains the choice.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/telemetry"
	"github.com/lojal/lojal/workflows"
)

// Temporal is the part of the Temporal client routing uses.
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID string, runID string, signalName string, arg any) error
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Internal event types. Schema event types cannot start with "lojal.".
const (
	// EnrolEvent enrols a customer in a scheduled journey (data: journey).
	EnrolEvent = "lojal.enrol"
	// SegmentEntryEvent starts a segment-entry journey for a customer who
	// entered its audience (data: journey).
	SegmentEntryEvent = "lojal.segment_entry"
)

// Routing actions, stored per event and journey.
const (
	ActionStarted   = "started"
	ActionSignalled = "signalled"
	ActionSkipped   = "skipped"
	ActionParked    = "parked"
	ActionUnmatched = "unmatched"
	ActionRequeued  = "requeued"
)

// MaxWorkflowIDBytes bounds a run's workflow id; Temporal's default limit
// (limit.maxIDLength) is 1,000.
const MaxWorkflowIDBytes = 1000

// memoEntry names, in a run's Temporal memo, the entry that started it, so
// a router that cannot tell whether its start went through can ask.
const memoEntry = "entry"

// Router routes events. Its zero value is not usable: set Store, Temporal,
// Catalog and Log.
type Router struct {
	Store    *store.Store
	Temporal Temporal
	Catalog  catalog.Source
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	// TaskQueue defaults to workflows.TaskQueue.
	TaskQueue string
	// ReorderWindow is how long runs hold events that arrive close
	// together to apply them in the order they happened (0: at once).
	ReorderWindow time.Duration
	// ParkFor is how long an event that arrives before its run exists is
	// kept for it (default 10 minutes).
	ParkFor time.Duration
	// MaxAttempts dead-letters an event after this many failed attempts
	// (default 10).
	MaxAttempts int
	// Parallel bounds how many customers' events are routed at once
	// (default 16).
	Parallel int
	// Now is the clock (tests set it).
	Now func() time.Time
}

func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Router) taskQueue() string {
	if r.TaskQueue != "" {
		return r.TaskQueue
	}
	return workflows.TaskQueue
}

// queueFor is the task queue a run of j starts on: runs a schedule enrols
// by the hundred thousand go to the bulk queue, so that their first
// workflow tasks never queue ahead of a live run's.
func (r *Router) queueFor(j *journey.Journey) string {
	if j.Trigger.Cron != "" {
		return workflows.BulkQueue(r.taskQueue())
	}
	return r.taskQueue()
}

func (r *Router) parkFor() time.Duration {
	if r.ParkFor > 0 {
		return r.ParkFor
	}
	return 10 * time.Minute
}

func (r *Router) maxAttempts() int {
	if r.MaxAttempts > 0 {
		return r.MaxAttempts
	}
	return 10
}

// Outcome is what routing did for one journey.
type Outcome struct {
	Journey    string `json:"journey"`
	WorkflowID string `json:"workflow_id,omitempty"`
	// Action is started, signalled, skipped or parked.
	Action string     `json:"action"`
	Reason string     `json:"reason,omitempty"`
	Until  *time.Time `json:"park_until,omitempty"`
	// started is the journey_runs row and Temporal run this routing
	// started, for Settle to record.
	started *store.StartedRun
}

// Result is what routing did with one event.
type Result struct {
	Journeys []Outcome `json:"journeys"`
}

// ErrPreviousRunFinishing means a run could not start yet: the customer's
// previous run of the journey under the same key has recorded its end and
// not yet ended in Temporal, which keeps one run per workflow id. It is a
// matter of moments; the event is retried with its backoff.
var ErrPreviousRunFinishing = errors.New("the previous run under this id recorded its end but still runs in Temporal; " +
	"retried once it has ended (if this persists, it runs without an open journey_runs row: end it in Temporal, then lojal events retry)")

// ErrRunStarting means the run an event goes to is recorded and has not
// started yet; the event is retried with its backoff.
var ErrRunStarting = errors.New("the run this event goes to is recorded and not started yet; retried once it has")

// ErrUnknownCustomer means the event's customer no longer exists.
var ErrUnknownCustomer = errors.New("unknown customer")

// CheckKeys refuses, before an event is stored, an event that could never
// be routed: one whose key makes a workflow id Temporal cannot take. Keys
// that depend on the customer cannot be checked here and are checked when
// routed.
func CheckKeys(cat *catalog.Catalog, e journey.Event) error {
	for _, j := range cat.Journeys {
		kx := j.KeyFor[e.Type]
		if kx == nil || !j.Listens(e.Type) {
			continue
		}
		ev, err := j.Schema.EventVars(&e)
		if err != nil {
			continue
		}
		key, err := kx.String(journey.Vars{Customer: map[string]any{}, Event: ev})
		if err != nil {
			continue
		}
		if err := checkWorkflowID(workflows.WorkflowID(j.ID, e.CustomerID, key)); err != nil {
			return fmt.Errorf("journey %s keys its runs by this event, and %w", j.ID, err)
		}
	}
	return nil
}

func checkWorkflowID(id string) error {
	if len(id) > MaxWorkflowIDBytes {
		return fmt.Errorf("the key makes a run id of %d bytes (at most %d): send a shorter key", len(id), MaxWorkflowIDBytes)
	}
	return nil
}

// Route routes one stored event to every journey it concerns, records
// what it did per journey and marks the event dispatched. An error means
// nothing is settled: the event stays undispatched for a retry.
func (r *Router) Route(ctx context.Context, e journey.Event) (res Result, err error) {
	return r.routeWith(ctx, e, nil)
}

// routeWith is Route with the event's customer when the caller has read
// it (nil: read it).
func (r *Router) routeWith(ctx context.Context, e journey.Event, cust *journey.Customer) (res Result, err error) {
	ctx, span := telemetry.Start(ctx, "dispatch.Route", attribute.String("lojal.event.id", e.ID), attribute.String("lojal.event.type", e.Type))
	defer func() { telemetry.End(routeEvents(span, res), err) }()
	return r.route(ctx, e, "", time.Time{}, true, cust)
}

// route routes e to the journeys it concerns (only to journey only, when
// set: an event that journey's run handed back, whose requeued route,
// routed at requeued as read, this routing replaces if it is still that
// hand-back; with its customer when known, as the caller read it) and
// settles:
// the runs it started, the routing outcomes, the journeys' declared
// outcomes it is and, when dispatched, the event marked routed, in one
// transaction. Events parked for the runs it started are
// delivered after.
func (r *Router) route(ctx context.Context, e journey.Event, only string, requeued time.Time, dispatched bool, known *journey.Customer) (Result, error) {
	cat := r.Catalog.Current()
	res := Result{Journeys: []Outcome{}}
	var cust journey.Customer
	if known != nil {
		cust = *known
	} else {
		var err error
		cust, err = r.Store.Customer(ctx, e.CustomerID)
		if errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("%w %q", ErrUnknownCustomer, e.CustomerID)
		}
		if err != nil {
			return res, err
		}
	}
	switch e.Type {
	case EnrolEvent, SegmentEntryEvent:
		id, _ := e.Data["journey"].(string)
		j, ok := cat.Journey(id)
		if !ok {
			res.Journeys = append(res.Journeys, Outcome{Journey: id, Action: ActionSkipped, Reason: "journey no longer deployed"})
		} else {
			o, err := r.startEntry(ctx, j, cust, e)
			if err != nil {
				return res, fmt.Errorf("journey %s: %w", j.ID, err)
			}
			res.Journeys = append(res.Journeys, o)
		}
	default:
		for _, j := range cat.Journeys {
			if !j.Listens(e.Type) || (only != "" && j.ID != only) {
				continue
			}
			o, err := r.routeJourney(ctx, j, cust, e)
			if err != nil {
				return res, fmt.Errorf("journey %s: %w", j.ID, err)
			}
			res.Journeys = append(res.Journeys, o)
		}
		if only != "" && len(res.Journeys) == 0 {
			// Handed back to a journey that is gone or no longer takes
			// the event: say so, or the route is looked at every second.
			res.Journeys = append(res.Journeys, Outcome{Journey: only, Action: ActionSkipped,
				Reason: fmt.Sprintf("journey no longer deployed, or no longer listens to %s", e.Type)})
		}
	}
	set := store.Settlement{Routes: make([]store.Route, 0, len(res.Journeys))}
	for _, o := range res.Journeys {
		set.Routes = append(set.Routes, store.Route{EventID: e.ID, JourneyID: o.Journey, WorkflowID: o.WorkflowID, Action: o.Action,
			Reason: o.Reason, ParkUntil: o.Until, Replaces: requeued})
		if o.started != nil {
			set.Started = append(set.Started, *o.started)
		}
	}
	if dispatched {
		set.Dispatched = []string{e.ID}
	}
	if only == "" {
		// The event may be journeys' declared outcome: counted for the
		// customer's runs that began within the window, not routed.
		for _, j := range cat.Journeys {
			if o := j.Outcome; o != nil && o.Event == e.Type {
				set.Outcomes = append(set.Outcomes, store.OutcomeReached{JourneyID: j.ID, CustomerID: cust.ID, At: e.At, Within: o.Within})
			}
		}
	}
	parked, err := r.Store.Settle(ctx, set)
	if err != nil {
		return res, err
	}
	for _, o := range res.Journeys {
		r.Metrics.Routed(o.Action)
	}
	for _, s := range set.Started {
		if err := r.deliverParked(ctx, s.WorkflowID, parked[s.WorkflowID]); err != nil {
			// The run started; the sweeper delivers what is still parked.
			r.Log.WarnContext(ctx, "parked events not delivered yet", "workflow_id", s.WorkflowID, "err", err)
		}
	}
	return res, nil
}

func (r *Router) routeJourney(ctx context.Context, j *journey.Journey, cust journey.Customer, e journey.Event) (Outcome, error) {
	o := Outcome{Journey: j.ID}
	vars, err := r.vars(j, cust, &e)
	if err != nil {
		o.Action, o.Reason = ActionSkipped, err.Error()
		return o, nil
	}
	var key string
	if kx := j.KeyFor[e.Type]; kx != nil {
		if key, err = kx.String(vars); err != nil {
			o.Action, o.Reason = ActionSkipped, "key: "+err.Error()
			return o, nil
		}
	}
	o.WorkflowID = workflows.WorkflowID(j.ID, cust.ID, key)
	if err := checkWorkflowID(o.WorkflowID); err != nil {
		o.Action, o.Reason = ActionSkipped, err.Error()
		return o, nil
	}
	if j.Trigger.Event != e.Type {
		return r.signalOrPark(ctx, o, e)
	}
	if j.Audience != nil {
		in, err := j.Audience.Bool(vars)
		if err != nil || !in {
			o.Action, o.Reason = ActionSkipped, "not in audience"
			if err != nil {
				o.Reason += ": " + err.Error()
			}
			return o, nil
		}
	}
	last, row, recorded, err := r.Store.LatestRunOrRecord(ctx, o.WorkflowID, j.ID, j.Version, cust.ID, key, e.ID)
	switch {
	case recorded:
		// The customer's first run of the journey under this key.
		return r.startRecorded(ctx, o, j, cust, key, &e, e.ID, row)
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return o, err
	case last.TriggerEventID == e.ID:
		// This event's own run: routed before (a retry, the sweeper after
		// the request path). Make sure it got it.
		return r.confirm(ctx, o, j, cust, key, &e, e.ID, last)
	case last.Open:
		// One run per customer and key at a time: the running one hears
		// about the event, once it has started.
		if last.RunID == "" && r.now().Sub(last.StartedAt) < entryGrace {
			if err := r.entryStarted(ctx, o.WorkflowID, last); err != nil {
				return o, err
			}
		}
		if o, ok, err := r.signal(ctx, o, e); ok || err != nil {
			return o, err
		}
		// journey_runs says running, Temporal has no running execution:
		// the run ended without recording it (failed, terminated). Close
		// the row and judge reentry on what Temporal knows.
		if err := r.closeStale(ctx, last); err != nil {
			return o, err
		}
		fallthrough
	default:
		if why := r.refusal(j, last); why != "" {
			o.Action, o.Reason = ActionSkipped, why
			return o, nil
		}
	}
	return r.start(ctx, o, j, cust, key, &e, e.ID)
}

// entryGrace is how long a recorded run may take to start (its router
// settling, or the previous run under its id finishing) before routing
// and the reconciler judge it by what Temporal has.
const entryGrace = 5 * time.Minute

// entryStarted reports, for a run recorded and not yet confirmed started,
// whether Temporal's current execution of its workflow id is that run,
// so that an event can go to it: nil if so; ErrRunStarting when there is
// none yet (its router has not started it, or will retry); and
// ErrPreviousRunFinishing when an earlier run still holds the id, which
// would drop the event or hand it back.
func (r *Router) entryStarted(ctx context.Context, workflowID string, run store.Run) error {
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("signal %s: %w", workflowID, ErrRunStarting)
	case err != nil:
		return fmt.Errorf("describe %s: %w", workflowID, err)
	case !sameRun(desc, run.RunID, run.TriggerEventID):
		return fmt.Errorf("signal %s: %w", workflowID, ErrPreviousRunFinishing)
	}
	return nil
}

// refusal says why a journey's reentry rule refuses a new run after the
// customer's last one, or "" when it allows it.
func (r *Router) refusal(j *journey.Journey, last store.Run) string {
	switch {
	case j.Reentry.Mode == journey.ReentryOnce:
		return "reentry: once, and the customer has been through this journey"
	case j.Reentry.Mode == journey.ReentryAfter && r.now().Sub(last.StartedAt) < j.Reentry.After:
		return fmt.Sprintf("reentry: after %s, last run started %s", policy.FormatDuration(j.Reentry.After), last.StartedAt.UTC().Format(time.RFC3339))
	}
	return ""
}

// startEntry starts a run of a segment-entry or scheduled journey, under
// the journey's reentry rule. The entry event names the run.
func (r *Router) startEntry(ctx context.Context, j *journey.Journey, c journey.Customer, e journey.Event) (Outcome, error) {
	o := Outcome{Journey: j.ID, WorkflowID: workflows.WorkflowID(j.ID, c.ID, "")}
	last, row, recorded, err := r.Store.LatestRunOrRecord(ctx, o.WorkflowID, j.ID, j.Version, c.ID, "", e.ID)
	switch {
	case recorded:
		return r.startRecorded(ctx, o, j, c, "", nil, e.ID, row)
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return o, err
	case last.TriggerEventID == e.ID:
		return r.confirm(ctx, o, j, c, "", nil, e.ID, last)
	case last.Open:
		if open, err := r.running(ctx, last); err != nil || open {
			o.Action, o.Reason = ActionSkipped, "a run is in progress"
			return o, err
		}
		fallthrough
	default:
		if why := r.refusal(j, last); why != "" {
			o.Action, o.Reason = ActionSkipped, why
			return o, nil
		}
	}
	return r.start(ctx, o, j, c, "", nil, e.ID)
}

// start records a new run under its entry and starts its workflow. Only
// the router that recorded the entry starts it; one that finds it
// recorded (the request path and the sweeper, a replica that hung and
// resumed) confirms the run instead.
func (r *Router) start(ctx context.Context, o Outcome, j *journey.Journey, c journey.Customer, key string, trigger *journey.Event,
	entry string) (Outcome, error) {
	id, recorded, err := r.Store.RecordRun(ctx, o.WorkflowID, j.ID, j.Version, c.ID, key, entry)
	if err != nil {
		return o, err
	}
	if !recorded {
		run, err := r.Store.RunByEntry(ctx, j.ID, entry)
		if err != nil {
			return o, err
		}
		return r.confirm(ctx, o, j, c, key, trigger, entry, run)
	}
	return r.startRecorded(ctx, o, j, c, key, trigger, entry, id)
}

func (r *Router) startRecorded(ctx context.Context, o Outcome, j *journey.Journey, c journey.Customer, key string, trigger *journey.Event,
	entry string, runRow int64) (Outcome, error) {
	in := workflows.JourneyInput{Bundle: j.Bundle(), JourneyID: j.ID, Version: j.Version, CustomerID: c.ID, Key: key,
		Trigger: trigger, EntryID: entry, Customer: &c, ReorderWindow: r.ReorderWindow}
	opts := client.StartWorkflowOptions{
		ID:                                       o.WorkflowID,
		TaskQueue:                                r.queueFor(j),
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{memoEntry: entry},
	}
	// The run's input carries what it starts for (the trigger or the
	// entry, which it takes as seen), so a plain start is enough: a
	// SignalWithStart would write the same event to its history again as
	// a signal the run drops, at a history event and an action more.
	run, err := r.Temporal.ExecuteWorkflow(ctx, opts, workflows.JourneyWorkflow, in)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		// The workflow id's previous run has recorded its end (routing
		// found its row closed) and not yet ended in Temporal. It would
		// drop the event or hand it back, so the event is not given to
		// it: the attempt fails unsettled, and the retry finds the entry
		// recorded and starts its run (confirm) once that run has ended.
		return o, fmt.Errorf("start %s: %w", o.WorkflowID, ErrPreviousRunFinishing)
	}
	if err != nil {
		return o, fmt.Errorf("start %s: %w", o.WorkflowID, err)
	}
	// The run id is recorded when routing settles. A router that dies
	// before leaves the event undispatched: the sweeper confirms the run
	// by the entry in its memo (confirm).
	o.Action, o.started = ActionStarted, &store.StartedRun{Row: runRow, RunID: run.GetRunID(), WorkflowID: o.WorkflowID}
	return o, nil
}

// confirm makes sure the run an entry recorded exists and has its event:
// routing may be retried after the start went through (the router crashed
// before it knew), or it may not have gone through at all.
func (r *Router) confirm(ctx context.Context, o Outcome, j *journey.Journey, c journey.Customer, key string, trigger *journey.Event,
	entry string, run store.Run) (Outcome, error) {
	if !run.Open {
		o.Action, o.Reason = ActionSkipped, "this entry's run has already finished"
		return o, nil
	}
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, run.WorkflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		desc = nil
	case err != nil:
		return o, fmt.Errorf("describe %s: %w", run.WorkflowID, err)
	}
	if desc != nil && sameRun(desc, run.RunID, entry) {
		if desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			if run.RunID == "" {
				if err := r.Store.SetRunID(ctx, run.ID, desc.GetWorkflowExecutionInfo().GetFirstRunId()); err != nil {
					return o, err
				}
			}
			o.Action, o.Reason = ActionSignalled, "the run of this entry is running"
			return o, nil
		}
		if err := r.closeStale(ctx, run); err != nil {
			return o, err
		}
		o.Action, o.Reason = ActionSkipped, "this entry's run has already finished"
		return o, nil
	}
	if run.RunID != "" {
		// Its start was confirmed and it is no longer the current run: it
		// ended without recording it.
		if err := r.closeStale(ctx, run); err != nil {
			return o, err
		}
		o.Action, o.Reason = ActionSkipped, "this entry's run has already finished"
		return o, nil
	}
	// Recorded, never started (or its start found the previous run
	// still finishing): start it now.
	return r.startRecorded(ctx, o, j, c, key, trigger, entry, run.ID)
}

// sameRun reports whether Temporal's current execution of the workflow is
// the run a journey_runs row recorded: by its run id once confirmed, by
// the entry in its memo before.
func sameRun(desc *workflowservice.DescribeWorkflowExecutionResponse, runID, entry string) bool {
	info := desc.GetWorkflowExecutionInfo()
	if runID != "" {
		return info.GetFirstRunId() == runID
	}
	return memoString(info.GetMemo(), memoEntry) == entry
}

func memoString(m *commonpb.Memo, key string) string {
	p := m.GetFields()[key]
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// running reports whether the run a journey_runs row says is open really
// is; if not, it closes the row.
func (r *Router) running(ctx context.Context, run store.Run) (bool, error) {
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, run.WorkflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return false, fmt.Errorf("describe %s: %w", run.WorkflowID, err)
	case desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return true, nil
	}
	return false, r.closeStale(ctx, run)
}

// closeStale closes a journey_runs row whose run ended without recording
// it, with what Temporal says of it.
func (r *Router) closeStale(ctx context.Context, run store.Run) error {
	outcome := "closed without recording its end"
	if desc, err := r.Temporal.DescribeWorkflowExecution(ctx, run.WorkflowID, ""); err == nil {
		info := desc.GetWorkflowExecutionInfo()
		if run.RunID == "" || info.GetFirstRunId() == run.RunID {
			outcome = "temporal: " + statusName(info.GetStatus())
		}
	}
	if _, err := r.Store.CloseRun(ctx, run.ID, outcome); err != nil {
		return err
	}
	r.Log.InfoContext(ctx, "closed a run that ended without recording it", "workflow_id", run.WorkflowID, "entry", run.TriggerEventID, "outcome", outcome)
	return nil
}

// signal delivers e to the running workflow of o. ok is false when there
// is no running execution.
func (r *Router) signal(ctx context.Context, o Outcome, e journey.Event) (Outcome, bool, error) {
	err := r.Temporal.SignalWorkflow(ctx, o.WorkflowID, "", workflows.SignalEvent, e)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("signal %s: %w", o.WorkflowID, err)
	}
	o.Action = ActionSignalled
	return o, true, nil
}

// signalOrPark delivers an event a run is waiting for (a goal, a
// wait_for). When the run does not exist yet — the event arrived before
// the one that starts it — the event is parked: the run gets it when it
// starts, or the route is recorded as unmatched when it does not start in
// time.
func (r *Router) signalOrPark(ctx context.Context, o Outcome, e journey.Event) (Outcome, error) {
	o, ok, err := r.signal(ctx, o, e)
	if ok || err != nil {
		return o, err
	}
	until := r.now().Add(r.parkFor())
	o.Action, o.Until = ActionParked, &until
	o.Reason = "no run in progress yet; kept for it until " + until.UTC().Format(time.RFC3339)
	return o, nil
}

// deliverParked signals a freshly started run the events that arrived for
// it before it existed, oldest first.
func (r *Router) deliverParked(ctx context.Context, workflowID string, parked []store.ParkedEvent) error {
	if len(parked) == 0 {
		return nil
	}
	routes := make([]store.Route, 0, len(parked))
	for _, p := range parked {
		if err := r.Temporal.SignalWorkflow(ctx, workflowID, "", workflows.SignalEvent, p.Event); err != nil {
			_ = r.Store.RecordRoutes(ctx, routes)
			return fmt.Errorf("deliver parked event %s to %s: %w", p.Event.ID, workflowID, err)
		}
		routes = append(routes, store.Route{EventID: p.Event.ID, JourneyID: p.JourneyID, WorkflowID: workflowID, Action: ActionSignalled,
			Reason: "delivered when its run started"})
	}
	return r.Store.RecordRoutes(ctx, routes)
}

func (r *Router) vars(j *journey.Journey, c journey.Customer, e *journey.Event) (journey.Vars, error) {
	cv, err := j.Schema.CustomerVars(c)
	if err != nil {
		return journey.Vars{}, err
	}
	ev, err := j.Schema.EventVars(e)
	if err != nil {
		return journey.Vars{}, err
	}
	return journey.Vars{Customer: cv, Event: ev}, nil
}

func statusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued as new"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed out"
	}
	return "unknown"
}

// routeEvents notes on a Route span what routing did per journey.
func routeEvents(span trace.Span, res Result) trace.Span {
	for _, o := range res.Journeys {
		span.AddEvent(o.Action, trace.WithAttributes(attribute.String("lojal.journey", o.Journey),
			attribute.String("lojal.workflow_id", o.WorkflowID), attribute.String("lojal.reason", o.Reason)))
	}
	return span
}
