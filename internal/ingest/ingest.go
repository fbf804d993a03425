// Package ingest takes customers and events in: it validates them against
// the schema, stores them, and hands them to routing (internal/dispatch),
// which starts or signals the journey runs they concern. It is shared by
// the API, `lojal dev` and `lojal import`.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
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

// Dispatcher takes customers and events in and routes them.
type Dispatcher struct {
	Store *store.Store
	// Temporal routes events; nil stores them for the sweeper to route
	// (tools that must not wait on Temporal).
	Temporal dispatch.Temporal
	Catalog  catalog.Source
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	// TaskQueue defaults to workflows.TaskQueue.
	TaskQueue string
	// ReorderWindow is how long runs hold events that arrive close
	// together to apply them in the order they happened.
	ReorderWindow time.Duration
	// Now is the clock (tests set it).
	Now func() time.Time
}

// Router returns a router with the dispatcher's settings.
func (d *Dispatcher) Router() *dispatch.Router {
	return &dispatch.Router{Store: d.Store, Temporal: d.Temporal, Catalog: d.Catalog, Log: d.Log, Metrics: d.Metrics,
		TaskQueue: d.TaskQueue, ReorderWindow: d.ReorderWindow, Now: d.Now}
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Outcome is what routing did for one journey.
type Outcome = dispatch.Outcome

// Result reports what an event or customer update did.
type Result struct {
	// Duplicate is true when the event was delivered before and fully
	// dispatched then; nothing was done this time.
	Duplicate bool      `json:"duplicate,omitempty"`
	Created   bool      `json:"created,omitempty"`
	Journeys  []Outcome `json:"journeys"`
}

// Event ingests one event and routes it at once (lojal dev, tests). It is
// idempotent by event id: delivering the same event again starts or
// advances nothing more.
func (d *Dispatcher) Event(ctx context.Context, e journey.Event) (Result, error) {
	cat := d.Catalog.Current()
	e, err := cat.Schema.CheckEvent(e)
	if err != nil {
		return Result{}, fmt.Errorf("%w: event: %w", ErrInvalid, err)
	}
	if err := dispatch.CheckKeys(cat, e); err != nil {
		return Result{}, fmt.Errorf("%w: event %s: %w", ErrInvalid, e.ID, err)
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
	res, err := d.Router().Route(ctx, e)
	return Result{Journeys: res.Journeys}, err
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

// Accept validates events, stores them and routes them in the request
// path. Each event gets its own result: one that fails validation, names an
// unknown customer, reuses an id for another event or carries a key no run
// id can hold is reported and not stored, and the others are stored all
// the same. Routing cannot fail an accepted event: one that is not routed
// now (Temporal is down, this process dies) is routed by the sweeper.
func (d *Dispatcher) Accept(ctx context.Context, evs []journey.Event) ([]Accepted, error) {
	cat := d.Catalog.Current()
	out := make([]Accepted, len(evs))
	valid := make([]journey.Event, 0, len(evs))
	idx := make([]int, 0, len(evs))
	for i, e := range evs {
		out[i].ID = e.ID
		ce, err := cat.Schema.CheckEvent(e)
		if err == nil {
			err = dispatch.CheckKeys(cat, ce)
		}
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
	accepted := make([]journey.Event, 0, len(res))
	customers := make(map[string]*journey.Customer, len(res))
	for k, r := range res {
		out[idx[k]].Status = r.Status
		// Routed now: a new event, or a duplicate its first replica
		// stored and died (or hung) before routing, sent again by the
		// client, before it sends the customer's next event (runs drop an
		// event they already have). One that must wait behind an older
		// failing event of its customer is the sweeper's, which keeps the
		// customer's order.
		if (r.Status == StatusAccepted || r.Unrouted) && !r.Blocked {
			accepted = append(accepted, valid[k])
			customers[valid[k].CustomerID] = r.Customer
		}
		switch r.Status {
		case StatusUnknownCustomer:
			out[idx[k]].Error = fmt.Sprintf("customer %q is unknown: upsert the customer before sending their events", valid[k].CustomerID)
			out[idx[k]].Pointer = "/customer_id"
		case StatusConflict:
			out[idx[k]].Error = ConflictMessage(valid[k].ID)
			out[idx[k]].Pointer = "/id"
		}
	}
	if d.Temporal != nil && len(accepted) > 0 {
		// The client has its answer whatever routing does: errors are the
		// sweeper's to retry, recorded per event.
		d.Router().RouteAccepted(ctx, accepted, customers)
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

// Customer creates or updates a customer. A customer who enters the
// audience of a segment-entry journey with this update gets a segment-entry
// event, stored in the same transaction as the update (the outbox), and
// routed like any event: a failure to start the journey now is retried by
// the sweeper, never lost.
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
	at := d.now()
	var skipped []Outcome
	entries := func(prev *journey.Customer) ([]journey.Event, error) {
		var evs []journey.Event
		for _, j := range cat.Journeys {
			if !j.Trigger.SegmentEntry || j.Audience == nil {
				continue
			}
			entered, err := entered(j, prev, c)
			if err != nil {
				skipped = append(skipped, Outcome{Journey: j.ID, Action: dispatch.ActionSkipped, Reason: err.Error()})
				continue
			}
			if entered {
				evs = append(evs, journey.Event{ID: fmt.Sprintf("segment-entry:%s:%s:%d", j.ID, c.ID, at.UnixNano()),
					Type: dispatch.SegmentEntryEvent, CustomerID: c.ID, At: at, Data: map[string]any{"journey": j.ID}})
			}
		}
		return evs, nil
	}
	up, err := d.Store.UpsertCustomerWith(ctx, c, "api", entries)
	if err != nil {
		return Result{}, err
	}
	res := Result{Created: up.Created, Journeys: append([]Outcome{}, skipped...)}
	if d.Temporal == nil {
		return res, nil
	}
	routed, err := d.Router().AcceptAndRoute(ctx, up.Events)
	if err != nil {
		return res, err
	}
	for _, r := range routed {
		if r.Err != nil {
			d.Log.Warn("segment entry not routed yet; the sweeper will retry", "event", r.Event.ID, "err", r.Err)
			continue
		}
		res.Journeys = append(res.Journeys, r.Result.Journeys...)
	}
	return res, nil
}

// entered reports whether a customer entered a segment-entry journey's
// audience with an update.
func entered(j *journey.Journey, before *journey.Customer, after journey.Customer) (bool, error) {
	in := func(c journey.Customer) (bool, error) {
		cv, err := j.Schema.CustomerVars(c)
		if err != nil {
			return false, err
		}
		ok, err := j.Audience.Bool(journey.Vars{Customer: cv})
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

// Sweep routes, once and without waiting for the request path's grace,
// every event still due in both lanes (tests and tools; production runs
// the sweeper workflow).
func (d *Dispatcher) Sweep(ctx context.Context) (int, error) {
	total := 0
	for _, lane := range []string{store.LaneLive, store.LaneBulk} {
		for {
			n, err := d.Router().SweepLane(ctx, lane, dispatch.SweepOptions{Grace: time.Nanosecond, Batch: 500})
			total += n
			if err != nil {
				return total, err
			}
			if n == 0 {
				break
			}
		}
	}
	return total, nil
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
