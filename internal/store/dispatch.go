package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
)

// ClaimedEvent is an event the sweeper took to route, with how often
// routing it failed before.
type ClaimedEvent struct {
	journey.Event
	Attempts int
}

// ClaimDue takes up to limit events of a lane whose routing is due (see
// queries/dispatch.sql) and leases them for lease.
func (s *Store) ClaimDue(ctx context.Context, lane string, grace time.Duration, limit int, lease time.Duration) ([]ClaimedEvent, error) {
	rows, err := s.pool.Query(ctx, s.q.ClaimDueEvents, lane, grace, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("claim %s events: %w", lane, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ClaimedEvent, error) {
		var e ClaimedEvent
		var data []byte
		if err := row.Scan(&e.ID, &e.Type, &e.CustomerID, &e.At, &data, &e.Attempts); err != nil {
			return e, err
		}
		return e, json.Unmarshal(data, &e.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s events: %w", lane, err)
	}
	return out, nil
}

// ExtendClaims keeps claimed events from other passes for lease more,
// unless they were routed, dead-lettered or failed (and back off) since.
func (s *Store) ExtendClaims(ctx context.Context, claimed []ClaimedEvent, lease time.Duration) error {
	ids, attempts := make([]string, len(claimed)), make([]int32, len(claimed))
	for i, c := range claimed {
		ids[i], attempts[i] = c.ID, int32(c.Attempts)
	}
	if _, err := s.pool.Exec(ctx, s.q.ExtendClaims, ids, attempts, lease); err != nil {
		return fmt.Errorf("extend the claim on %d events: %w", len(claimed), err)
	}
	return nil
}

// Blocked returns the ids, among ids, of events that must wait behind an
// older failing event of the same customer and lane.
func (s *Store) Blocked(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, s.q.EventsBlocked, ids)
	if err != nil {
		return nil, fmt.Errorf("blocked events: %w", err)
	}
	blocked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("blocked events: %w", err)
	}
	out := make(map[string]bool, len(blocked))
	for _, id := range blocked {
		out[id] = true
	}
	return out, nil
}

// EventFailed records a failed attempt to route an event: it backs off,
// and after maxAttempts it is dead-lettered (dead is true).
func (s *Store) EventFailed(ctx context.Context, id, reason string, maxAttempts int) (attempts int, dead bool, err error) {
	err = s.pool.QueryRow(ctx, s.q.EventFailed, id, reason, maxAttempts).Scan(&attempts, &dead)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil // routed meanwhile by someone else
	}
	if err != nil {
		return 0, false, fmt.Errorf("event %s failed: %w", id, err)
	}
	return attempts, dead, nil
}

// Route is what routing did with an event for one journey.
type Route struct {
	EventID    string     `json:"-"`
	JourneyID  string     `json:"journey"`
	WorkflowID string     `json:"workflow_id,omitempty"`
	Action     string     `json:"action"`
	Reason     string     `json:"reason,omitempty"`
	ParkUntil  *time.Time `json:"park_until,omitempty"`
	RoutedAt   time.Time  `json:"routed_at,omitzero"`
	// Replaces, set when routing an event its run handed back, is the
	// requeued route's RoutedAt as that routing read it: the outcome
	// replaces the route only while it is still that hand-back. Any other
	// settle leaves a requeued route to be routed again (queries/
	// dispatch.sql, upsert-route).
	Replaces time.Time `json:"-"`
}

// RecordRoutes stores routing outcomes in one round trip.
func (s *Store) RecordRoutes(ctx context.Context, routes []Route) error {
	if len(routes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, r := range routes {
		b.Queue(s.q.UpsertRoute, r.EventID, r.JourneyID, r.WorkflowID, r.Action, r.Reason, r.ParkUntil, nullTime(r.Replaces))
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record routes of %s: %w", routes[0].EventID, err)
	}
	return nil
}

// StartedRun is a journey_runs row whose Temporal run routing started.
type StartedRun struct {
	Row        int64
	RunID      string
	WorkflowID string
}

// Settlement is what routing one event leaves to record: the runs it
// started, what it did per journey, and whether the event is done with.
type Settlement struct {
	Started []StartedRun
	Routes  []Route
	// Dispatched marks these events routed.
	Dispatched []string
	// Outcomes are journeys' declared outcomes the event is.
	Outcomes []OutcomeReached
}

// OutcomeReached is a customer's event that is a journey's declared
// outcome (journey.OutcomeEvent): it marks the customer's runs of the
// journey that began within Within before At.
type OutcomeReached struct {
	JourneyID  string
	CustomerID string
	At         time.Time
	Within     time.Duration
}

// Settle records a settlement in one round trip and one transaction: the
// started runs' Temporal run ids, the routes, the outcomes reached, the
// events marked dispatched, all or nothing. It returns, per started run's workflow id,
// the events parked for it before it existed, oldest first, for the
// caller to deliver.
func (s *Store) Settle(ctx context.Context, st Settlement) (map[string][]ParkedEvent, error) {
	parked := map[string][]ParkedEvent{}
	if len(st.Started)+len(st.Routes)+len(st.Dispatched)+len(st.Outcomes) == 0 {
		return parked, nil
	}
	b := s.genericTx()
	for _, r := range st.Started {
		b.Queue(s.q.SetRunID, r.Row, r.RunID)
	}
	for _, r := range st.Routes {
		b.Queue(s.q.UpsertRoute, r.EventID, r.JourneyID, r.WorkflowID, r.Action, r.Reason, r.ParkUntil, nullTime(r.Replaces))
	}
	for _, o := range st.Outcomes {
		b.Queue(s.q.ReachOutcome, o.JourneyID, o.CustomerID, o.At, o.Within)
	}
	if len(st.Dispatched) > 0 {
		b.Queue(s.q.MarkDispatchedMany, st.Dispatched)
	}
	for _, r := range st.Started {
		b.Queue(s.q.ParkedForWorkflow, r.WorkflowID).Query(func(rows pgx.Rows) error {
			evs, err := pgx.CollectRows(rows, scanParked)
			if len(evs) > 0 {
				parked[r.WorkflowID] = evs
			}
			return err
		})
	}
	if err := s.commit(ctx, b); err != nil {
		return nil, fmt.Errorf("settle routing: %w", err)
	}
	return parked, nil
}

// genericTx begins a batch that runs as one transaction on generic plans
// (generic-plans): the request path's statements touch every month of
// events, and Postgres would plan them again on every call. Queue the
// statements, then commit.
func (s *Store) genericTx() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.q.GenericPlans)
	return b
}

// commit ends a batch genericTx began and sends it: one round trip.
func (s *Store) commit(ctx context.Context, b *pgx.Batch) error {
	b.Queue("COMMIT")
	return s.pool.SendBatch(ctx, b).Close()
}

// ParkedEvent is an event waiting for the run it concerns to exist.
type ParkedEvent struct {
	JourneyID string
	Event     journey.Event
}

func scanParked(row pgx.CollectableRow) (ParkedEvent, error) {
	var p ParkedEvent
	var data []byte
	if err := row.Scan(&p.Event.ID, &p.JourneyID, &p.Event.Type, &p.Event.CustomerID, &p.Event.At, &data); err != nil {
		return p, err
	}
	return p, json.Unmarshal(data, &p.Event.Data)
}

// WaitingRoute is a parked or requeued route due another look.
type WaitingRoute struct {
	Route
	Event journey.Event
}

// WaitingRoutes returns routes due another look (see
// queries/dispatch.sql): requeued ones that waited minAge, parked ones
// whose run started within parkWindow, parked ones whose time is up; up to
// limit of each.
func (s *Store) WaitingRoutes(ctx context.Context, minAge, parkWindow time.Duration, limit int) ([]WaitingRoute, error) {
	rows, err := s.pool.Query(ctx, s.q.WaitingRoutes, minAge, parkWindow, limit)
	if err != nil {
		return nil, fmt.Errorf("waiting routes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WaitingRoute, error) {
		var w WaitingRoute
		var data []byte
		if err := row.Scan(&w.EventID, &w.JourneyID, &w.WorkflowID, &w.Action, &w.ParkUntil, &w.RoutedAt, &w.Event.Type, &w.Event.CustomerID,
			&w.Event.At, &data); err != nil {
			return w, err
		}
		w.Event.ID = w.EventID
		return w, json.Unmarshal(data, &w.Event.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("waiting routes: %w", err)
	}
	return out, nil
}

// EventRecord is an event with its routing state, for `lojal events`.
type EventRecord struct {
	Event        journey.Event `json:"event"`
	ReceivedAt   time.Time     `json:"received_at"`
	Lane         string        `json:"lane"`
	Attempts     int           `json:"attempts"`
	NextAttempt  time.Time     `json:"next_attempt_at"`
	DispatchedAt *time.Time    `json:"dispatched_at,omitempty"`
	DeadAt       *time.Time    `json:"dead_at,omitempty"`
	Error        string        `json:"error,omitempty"`
	Routes       []Route       `json:"routes"`
}

// Status sums an event's routing state up in a word.
func (r EventRecord) Status() string {
	switch {
	case r.DispatchedAt != nil && r.DeadAt != nil:
		return "dropped"
	case r.DeadAt != nil:
		return "dead"
	case r.DispatchedAt != nil:
		return "routed"
	case r.Attempts > 0:
		return "retrying"
	}
	return "pending"
}

func scanEventRecord(row pgx.CollectableRow) (EventRecord, error) {
	var r EventRecord
	var data []byte
	err := row.Scan(&r.Event.ID, &r.Event.Type, &r.Event.CustomerID, &r.Event.At, &data, &r.ReceivedAt, &r.Lane, &r.Attempts,
		&r.NextAttempt, &r.DispatchedAt, &r.DeadAt, &r.Error)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(data, &r.Event.Data)
}

// Event returns a stored event with its routes, or ErrNotFound.
func (s *Store) Event(ctx context.Context, id string) (EventRecord, error) {
	rows, err := s.pool.Query(ctx, s.q.EventByID, id)
	if err != nil {
		return EventRecord{}, fmt.Errorf("event %s: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanEventRecord)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("event %s: %w", id, err)
	}
	rows, err = s.pool.Query(ctx, s.q.EventRoutes, id)
	if err != nil {
		return r, fmt.Errorf("routes of event %s: %w", id, err)
	}
	r.Routes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Route, error) {
		rt := Route{EventID: id}
		err := row.Scan(&rt.JourneyID, &rt.WorkflowID, &rt.Action, &rt.Reason, &rt.ParkUntil, &rt.RoutedAt)
		return rt, err
	})
	if err != nil {
		return r, fmt.Errorf("routes of event %s: %w", id, err)
	}
	return r, nil
}

// DeadEvents lists dead-lettered events, newest first.
func (s *Store) DeadEvents(ctx context.Context, limit int) ([]EventRecord, error) {
	rows, err := s.pool.Query(ctx, s.q.DeadEvents, limit)
	if err != nil {
		return nil, fmt.Errorf("dead events: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEventRecord)
	if err != nil {
		return nil, fmt.Errorf("dead events: %w", err)
	}
	return out, nil
}

// RetryEvent gives an undispatched event a fresh set of attempts now. It
// returns false when there is no such undispatched event.
func (s *Store) RetryEvent(ctx context.Context, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, s.q.RetryEvent, id)
	if err != nil {
		return false, fmt.Errorf("retry event %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DropEvent gives up on an undispatched event for good, recording why. It
// returns false when there is no such undispatched event.
func (s *Store) DropEvent(ctx context.Context, id, why string) (bool, error) {
	tag, err := s.pool.Exec(ctx, s.q.DropEvent, id, why)
	if err != nil {
		return false, fmt.Errorf("drop event %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DispatchStats is the state of the event path.
type DispatchStats struct {
	LiveBacklog int64
	BulkBacklog int64
	Dead        int64
	// OldestLive is how long the oldest undispatched live event has waited.
	OldestLive time.Duration
}

// DispatchStats reads the event path's backlog and dead letters.
func (s *Store) DispatchStats(ctx context.Context) (DispatchStats, error) {
	var st DispatchStats
	var secs float64
	if err := s.pool.QueryRow(ctx, s.q.DispatchStats).Scan(&st.LiveBacklog, &st.BulkBacklog, &st.Dead, &secs); err != nil {
		return st, fmt.Errorf("dispatch stats: %w", err)
	}
	st.OldestLive = time.Duration(secs * float64(time.Second))
	return st, nil
}

// PendingEvents returns up to limit undispatched, live events in the order
// they arrived (tests and tools).
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]journey.Event, error) {
	rows, err := s.pool.Query(ctx, s.q.UndispatchedEvents, limit)
	if err != nil {
		return nil, fmt.Errorf("pending events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (journey.Event, error) {
		var e journey.Event
		var data []byte
		if err := row.Scan(&e.ID, &e.Type, &e.CustomerID, &e.At, &data); err != nil {
			return e, err
		}
		return e, json.Unmarshal(data, &e.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("pending events: %w", err)
	}
	return out, nil
}

// RunByEntry returns the run an entry (a trigger event, an enrolment)
// started, or ErrNotFound.
func (s *Store) RunByEntry(ctx context.Context, journeyID, entry string) (Run, error) {
	var r Run
	err := s.pool.QueryRow(ctx, s.q.RunByEntry, journeyID, entry).Scan(&r.ID, &r.WorkflowID, &r.RunID, &r.StartedAt, &r.TriggerEventID, &r.Open)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("run of %s for entry %s: %w", journeyID, entry, err)
	}
	return r, nil
}

// SetRunID records the Temporal run chain a started run is.
func (s *Store) SetRunID(ctx context.Context, id int64, runID string) error {
	if _, err := s.pool.Exec(ctx, s.q.SetRunID, id, runID); err != nil {
		return fmt.Errorf("set run id of run %d: %w", id, err)
	}
	return nil
}

// CloseRun closes a run that ended without recording it, with the
// outcome Temporal reports, and releases its waiting messages (FinishRun).
// It returns false when the run was closed already.
func (s *Store) CloseRun(ctx context.Context, id int64, outcome string) (bool, error) {
	var closed int
	if err := s.pool.QueryRow(ctx, s.q.CloseRun, id, outcome).Scan(&closed); err != nil {
		return false, fmt.Errorf("close run %d: %w", id, err)
	}
	return closed == 1, nil
}

// OpenRunRow is an open journey_runs row to check against Temporal.
type OpenRunRow struct {
	ID         int64
	WorkflowID string
	RunID      string
	JourneyID  string
	EntryID    string
	StartedAt  time.Time
}

// RunsToCheck returns open runs at least minAge old, least recently
// checked first.
func (s *Store) RunsToCheck(ctx context.Context, minAge time.Duration, limit int) ([]OpenRunRow, error) {
	rows, err := s.pool.Query(ctx, s.q.RunsToCheck, minAge, limit)
	if err != nil {
		return nil, fmt.Errorf("runs to check: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OpenRunRow])
	if err != nil {
		return nil, fmt.Errorf("runs to check: %w", err)
	}
	return out, nil
}

// MarkRunsChecked records that runs were checked now.
func (s *Store) MarkRunsChecked(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, s.q.MarkRunsChecked, ids); err != nil {
		return fmt.Errorf("mark runs checked: %w", err)
	}
	return nil
}

// Requeue hands events a finishing run did not get to apply back to
// routing for its journey: the sweeper routes them again once the run has
// closed, so a trigger starts the next run (reentry permitting) instead of
// being lost with the run that ended.
func (s *Store) Requeue(ctx context.Context, journeyID, workflowID string, eventIDs []string) error {
	routes := make([]Route, 0, len(eventIDs))
	for _, id := range eventIDs {
		routes = append(routes, Route{EventID: id, JourneyID: journeyID, WorkflowID: workflowID, Action: "requeued",
			Reason: "arrived as its run finished; routed again"})
	}
	return s.RecordRoutes(ctx, routes)
}

// Firing is one firing of a scheduled journey.
type Firing struct {
	JourneyID string
	At        time.Time
	Zones     []string
	// Status is enrolled, or skipped (with Reason).
	Status   string
	Reason   string
	Scanned  int
	Enrolled int
}

// RecordFiring records a firing (idempotent by journey and time).
func (s *Store) RecordFiring(ctx context.Context, f Firing) error {
	if f.Zones == nil {
		f.Zones = []string{}
	}
	if _, err := s.pool.Exec(ctx, s.q.RecordFiring, f.JourneyID, f.At, f.Zones, f.Status, f.Reason, f.Scanned, f.Enrolled); err != nil {
		return fmt.Errorf("record firing of %s at %s: %w", f.JourneyID, f.At, err)
	}
	return nil
}

// RecentFirings returns a scheduled journey's latest firings, newest first.
func (s *Store) RecentFirings(ctx context.Context, journeyID string, limit int) ([]Firing, error) {
	rows, err := s.pool.Query(ctx, s.q.RecentFirings, journeyID, limit)
	if err != nil {
		return nil, fmt.Errorf("firings of %s: %w", journeyID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Firing])
	if err != nil {
		return nil, fmt.Errorf("firings of %s: %w", journeyID, err)
	}
	return out, nil
}
