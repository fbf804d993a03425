// Package ingest takes customers and events in and routes them to journeys:
// it validates them against the schema, stores them, and starts or signals
// the Temporal workflow of every journey run they concern. It is shared by
// the API and `lojal dev`.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// Errors callers map to responses.
var (
	// ErrInvalid wraps validation failures (a 4xx for the API).
	ErrInvalid = errors.New("invalid")
	// ErrUnknownCustomer is returned for events about customers lojal has
	// never been told about.
	ErrUnknownCustomer = errors.New("unknown customer")
	// ErrConflict is returned for an event whose id was already used for a
	// different event.
	ErrConflict = errors.New("conflict")
)

// Starter is the part of the Temporal client ingest uses.
type Starter interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID string, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID string, runID string, signalName string, arg any) error
}

// Dispatcher routes customers and events to journeys.
type Dispatcher struct {
	Store    *store.Store
	Temporal Starter
	Catalog  catalog.Source
	Log      *slog.Logger
	// TaskQueue defaults to workflows.TaskQueue.
	TaskQueue string
	// Now is the clock (tests set it).
	Now func() time.Time
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) taskQueue() string {
	if d.TaskQueue != "" {
		return d.TaskQueue
	}
	return workflows.TaskQueue
}

// Outcome is what happened to one journey.
type Outcome struct {
	Journey    string `json:"journey"`
	WorkflowID string `json:"workflow_id,omitempty"`
	// Action is started, signalled or skipped.
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// Result reports what an event or customer update did.
type Result struct {
	// Duplicate is true when the event was delivered before and fully
	// dispatched then; nothing was done this time.
	Duplicate bool      `json:"duplicate,omitempty"`
	Created   bool      `json:"created,omitempty"`
	Journeys  []Outcome `json:"journeys"`
}

// Event ingests one event and dispatches it at once (lojal dev, tests).
// It is idempotent by event id: delivering the same event again starts or
// advances nothing more. The API instead Accepts events and lets Run
// dispatch them.
func (d *Dispatcher) Event(ctx context.Context, e journey.Event) (Result, error) {
	cat := d.Catalog.Current()
	e, err := cat.Schema.CheckEvent(e)
	if err != nil {
		return Result{}, fmt.Errorf("%w: event: %w", ErrInvalid, err)
	}
	st, err := d.Store.InsertEvent(ctx, e)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Result{}, fmt.Errorf("%w %q: upsert the customer before sending their events", ErrUnknownCustomer, e.CustomerID)
	case errors.Is(err, store.ErrEventConflict):
		return Result{}, fmt.Errorf("%w: %s", ErrConflict, ConflictMessage(e.ID))
	case err != nil:
		return Result{}, err
	}
	if st.Dispatched {
		return Result{Duplicate: true, Journeys: []Outcome{}}, nil
	}
	return d.Dispatch(ctx, e)
}

// Accepted is the fate of one event handed to Accept.
type Accepted struct {
	ID string `json:"id"`
	// Status is accepted, duplicate, conflict, unknown_customer or invalid.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Pointer locates an invalid field in the event (RFC 6901).
	Pointer string `json:"pointer,omitempty"`
}

// Accept statuses.
const (
	StatusAccepted        = "accepted"
	StatusDuplicate       = "duplicate"
	StatusConflict        = "conflict"
	StatusUnknownCustomer = "unknown_customer"
	StatusInvalid         = "invalid"
)

// ConflictMessage explains a conflict on event id.
func ConflictMessage(id string) string {
	return fmt.Sprintf("event id %q was already used for a different event (type, customer, time or data differ); "+
		"an event id names one event: send a new id for a new event", id)
}

// Accept validates events and stores them for dispatch. It never talks to
// Temporal, so it is fast and keeps working while Temporal is down. Each
// event gets its own result: one that fails validation, names an unknown
// customer or reuses an id for another event is reported and not stored,
// and the others are stored all the same.
func (d *Dispatcher) Accept(ctx context.Context, evs []journey.Event) ([]Accepted, error) {
	cat := d.Catalog.Current()
	out := make([]Accepted, len(evs))
	valid := make([]journey.Event, 0, len(evs))
	idx := make([]int, 0, len(evs))
	for i, e := range evs {
		out[i].ID = e.ID
		ce, err := cat.Schema.CheckEvent(e)
		if err != nil {
			out[i] = Invalid(e.ID, err)
			continue
		}
		valid, idx = append(valid, ce), append(idx, i)
	}
	if len(valid) == 0 {
		return out, nil
	}
	res, err := d.Store.AcceptEvents(ctx, valid)
	if err != nil {
		return nil, err
	}
	for k, r := range res {
		out[idx[k]].Status = r.Status
		switch r.Status {
		case StatusUnknownCustomer:
			out[idx[k]].Error = fmt.Sprintf("customer %q is unknown: upsert the customer before sending their events", valid[k].CustomerID)
			out[idx[k]].Pointer = "/customer_id"
		case StatusConflict:
			out[idx[k]].Error = ConflictMessage(valid[k].ID)
			out[idx[k]].Pointer = "/id"
		}
	}
	return out, nil
}

// Invalid is the result for an event that failed validation (or could not
// be decoded) with err.
func Invalid(id string, err error) Accepted {
	a := Accepted{ID: id, Status: StatusInvalid, Error: err.Error()}
	var ie *journey.InputError
	if errors.As(err, &ie) {
		a.Pointer = ie.Pointer
	}
	return a
}

// Dispatch starts or signals every journey a stored event concerns and
// marks it dispatched.
func (d *Dispatcher) Dispatch(ctx context.Context, e journey.Event) (Result, error) {
	res, err := d.route1(ctx, e)
	if err != nil {
		return res, err
	}
	if err := d.Store.MarkDispatched(ctx, e.ID); err != nil {
		return res, err
	}
	return res, nil
}

// route1 routes one stored event without marking it.
func (d *Dispatcher) route1(ctx context.Context, e journey.Event) (Result, error) {
	cat := d.Catalog.Current()
	cust, err := d.Store.Customer(ctx, e.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownCustomer, e.CustomerID)
	}
	if err != nil {
		return Result{}, err
	}
	res := Result{Journeys: []Outcome{}}
	if e.Type == EnrolEvent {
		id, _ := e.Data["journey"].(string)
		j, ok := cat.Journey(id)
		if !ok {
			res.Journeys = append(res.Journeys, Outcome{Journey: id, Action: "skipped", Reason: "journey no longer deployed"})
			return res, nil
		}
		o, err := d.startEntry(ctx, j, cust, e.ID)
		if err != nil {
			return res, fmt.Errorf("journey %s: %w", j.ID, err)
		}
		res.Journeys = append(res.Journeys, o)
		return res, nil
	}
	for _, j := range cat.Journeys {
		if !j.Listens(e.Type) {
			continue
		}
		o, err := d.route(ctx, j, cust, e)
		if err != nil {
			return res, fmt.Errorf("journey %s: %w", j.ID, err)
		}
		res.Journeys = append(res.Journeys, o)
	}
	return res, nil
}

// EnrolEvent is the internal event type that enrols a customer in a
// scheduled journey (data: {"journey": id}). Schema event types cannot
// start with "lojal.".
const EnrolEvent = activities.EnrolEvent

func (d *Dispatcher) route(ctx context.Context, j *journey.Journey, cust journey.Customer, e journey.Event) (Outcome, error) {
	o := Outcome{Journey: j.ID}
	vars, err := d.vars(j, cust, &e)
	if err != nil {
		return o, err
	}
	var key string
	if kx := j.KeyFor[e.Type]; kx != nil {
		if key, err = kx.String(vars); err != nil {
			o.Action, o.Reason = "skipped", "key: "+err.Error()
			return o, nil
		}
	}
	o.WorkflowID = workflows.WorkflowID(j.ID, cust.ID, key)
	if j.Trigger.Event != e.Type {
		return d.signal(ctx, o, e)
	}
	if j.Audience != nil {
		in, err := j.Audience.Bool(vars)
		if err != nil || !in {
			o.Action, o.Reason = "skipped", "not in audience"
			if err != nil {
				o.Reason += ": " + err.Error()
			}
			return o, nil
		}
	}
	last, err := d.Store.LatestRun(ctx, j.ID, cust.ID, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return o, err
	case last.TriggerEventID == e.ID:
		if !last.Open {
			o.Action, o.Reason = "skipped", "this event's run has already finished"
			return o, nil
		}
	case last.Open:
		// One run per customer and key at a time: the running one hears
		// about the event.
		return d.signal(ctx, o, e)
	default:
		if why := d.refusal(j, last); why != "" {
			o.Action, o.Reason = "skipped", why
			return o, nil
		}
	}
	return d.start(ctx, o, j, cust, key, &e, e.ID, e)
}

// refusal says why a journey's reentry rule refuses a new run after the
// customer's last one, or "" when it allows it.
func (d *Dispatcher) refusal(j *journey.Journey, last store.Run) string {
	switch {
	case j.Reentry.Mode == journey.ReentryOnce:
		return "reentry: once, and the customer has been through this journey"
	case j.Reentry.Mode == journey.ReentryAfter && d.now().Sub(last.StartedAt) < j.Reentry.After:
		return fmt.Sprintf("reentry: after %s, last run started %s", policy.FormatDuration(j.Reentry.After), last.StartedAt.UTC().Format(time.RFC3339))
	}
	return ""
}

// start records a new run (entry names it in journey_runs) and starts its
// workflow with SignalWithStart, delivering signal to it.
func (d *Dispatcher) start(ctx context.Context, o Outcome, j *journey.Journey, c journey.Customer, key string, trigger *journey.Event,
	entry string, signal journey.Event) (Outcome, error) {
	if err := d.Store.RecordRun(ctx, o.WorkflowID, j.ID, j.Version, c.ID, key, entry); err != nil {
		return o, err
	}
	in := workflows.JourneyInput{Bundle: j.Bundle(), JourneyID: j.ID, Version: j.Version, CustomerID: c.ID, Key: key,
		Trigger: trigger, EntryID: entry, Customer: &c}
	_, err := d.Temporal.SignalWithStartWorkflow(ctx, o.WorkflowID, workflows.SignalEvent, signal, client.StartWorkflowOptions{
		ID:                    o.WorkflowID,
		TaskQueue:             d.taskQueue(),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.JourneyWorkflow, in)
	if err != nil {
		return o, fmt.Errorf("start %s: %w", o.WorkflowID, err)
	}
	o.Action = "started"
	return o, nil
}

func (d *Dispatcher) signal(ctx context.Context, o Outcome, e journey.Event) (Outcome, error) {
	err := d.Temporal.SignalWorkflow(ctx, o.WorkflowID, "", workflows.SignalEvent, e)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		o.Action, o.Reason = "skipped", "no run in progress"
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("signal %s: %w", o.WorkflowID, err)
	}
	o.Action = "signalled"
	return o, nil
}

func (d *Dispatcher) vars(j *journey.Journey, c journey.Customer, e *journey.Event) (journey.Vars, error) {
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

// Customer creates or updates a customer. A customer who enters the
// audience of a segment-entry journey with this update starts it.
func (d *Dispatcher) Customer(ctx context.Context, c journey.Customer) (Result, error) {
	cat := d.Catalog.Current()
	c, err := cat.Schema.CheckCustomer(c)
	if err != nil {
		return Result{}, fmt.Errorf("%w: customer: %w", ErrInvalid, err)
	}
	if c.Locale == "" {
		c.Locale = "en"
	}
	if c.Timezone == "" {
		c.Timezone = cat.Rules.Location.String()
	}
	up, err := d.Store.UpsertCustomer(ctx, c, "api")
	if err != nil {
		return Result{}, err
	}
	res := Result{Created: up.Created, Journeys: []Outcome{}}
	for _, j := range cat.Journeys {
		if !j.Trigger.SegmentEntry || j.Audience == nil {
			continue
		}
		entered, err := d.entered(j, up.Previous, c)
		if err != nil {
			res.Journeys = append(res.Journeys, Outcome{Journey: j.ID, Action: "skipped", Reason: err.Error()})
			continue
		}
		if !entered {
			continue
		}
		o, err := d.startEntry(ctx, j, c, fmt.Sprintf("segment-entry:%s:%s:%d", j.ID, c.ID, d.now().UnixNano()))
		if err != nil {
			return res, fmt.Errorf("journey %s: %w", j.ID, err)
		}
		res.Journeys = append(res.Journeys, o)
	}
	return res, nil
}

func (d *Dispatcher) entered(j *journey.Journey, before *journey.Customer, after journey.Customer) (bool, error) {
	in := func(c journey.Customer) (bool, error) {
		v, err := d.vars(j, c, nil)
		if err != nil {
			return false, err
		}
		ok, err := j.Audience.Bool(v)
		if err != nil {
			return false, nil // a missing attribute means not (yet) in the segment
		}
		return ok, nil
	}
	now, err := in(after)
	if err != nil || !now {
		return false, err
	}
	if before == nil {
		return true, nil
	}
	was, err := in(*before)
	return !was, err
}

// startEntry starts a run of a segment-entry or scheduled journey, under
// the journey's reentry rule. entry names the run in journey_runs.
func (d *Dispatcher) startEntry(ctx context.Context, j *journey.Journey, c journey.Customer, entry string) (Outcome, error) {
	o := Outcome{Journey: j.ID, WorkflowID: workflows.WorkflowID(j.ID, c.ID, "")}
	last, err := d.Store.LatestRun(ctx, j.ID, c.ID, "")
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return o, err
	case last.TriggerEventID == entry:
		o.Action, o.Reason = "skipped", "already started for this entry"
		return o, nil
	case last.Open:
		o.Action, o.Reason = "skipped", "a run is in progress"
		return o, nil
	default:
		if why := d.refusal(j, last); why != "" {
			o.Action, o.Reason = "skipped", why
			return o, nil
		}
	}
	return d.start(ctx, o, j, c, "", nil, entry, journey.Event{ID: entry, Type: "lojal.entry", CustomerID: c.ID, At: d.now()})
}

// ScheduleStarter is the part of the Temporal client EnsureSchedules uses.
type ScheduleStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// EnsureSchedules makes sure every scheduled journey in the catalog has its
// scheduler workflow running. It is idempotent: workers call it at start
// and after deployments.
func EnsureSchedules(ctx context.Context, c ScheduleStarter, cat *catalog.Catalog, queue string) error {
	if queue == "" {
		queue = workflows.TaskQueue
	}
	for _, j := range cat.Journeys {
		if j.Trigger.Cron == "" {
			continue
		}
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       workflows.ScheduleID(j.ID),
			TaskQueue:                queue,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, workflows.ScheduleWorkflow, workflows.ScheduleInput{JourneyID: j.ID})
		if err != nil {
			return fmt.Errorf("start scheduler for %s: %w", j.ID, err)
		}
	}
	return nil
}
