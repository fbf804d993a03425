package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/telemetry"
)

// Routed is what RouteAll did with one event.
type Routed struct {
	Event  journey.Event
	Result Result
	// Err is set when routing failed; the event was given a retry with
	// backoff (Dead: it was dead-lettered) or left to the sweeper.
	Err  error
	Dead bool
}

// RouteAll routes events: a customer's events one after the other, in the
// order they happened, and up to Parallel customers at once. When routing
// an event fails, the failure is recorded with a backoff (or the event is
// dead-lettered after MaxAttempts) and the customer's later events in evs
// are left for the sweeper, which routes them in order; other customers
// are not held up.
func (r *Router) RouteAll(ctx context.Context, evs []journey.Event) []Routed {
	return r.routeAll(ctx, evs, nil, false)
}

// RouteAccepted is RouteAll for events the request path just stored,
// with their customers as the insert read them (store.AcceptResult), so
// that routing does not read them again. The caller leaves out events
// that must wait behind an older failing event of their customer.
func (r *Router) RouteAccepted(ctx context.Context, evs []journey.Event, customers map[string]*journey.Customer) []Routed {
	return r.routeAll(ctx, evs, customers, true)
}

// routeAll routes evs. In the request path (answering), once a call
// finds Temporal away the rest are not made: each would wait as long
// (seconds), and a batch for many customers would outlast its client's
// patience. They fail at once, as that call did, and the sweeper retries
// them in order like any failure. The sweeper itself makes every call:
// Temporal can be away for some workflows only (a history shard), and
// other customers' events must not wait for them.
func (r *Router) routeAll(ctx context.Context, evs []journey.Event, customers map[string]*journey.Customer, answering bool) []Routed {
	out := make([]Routed, len(evs))
	byCustomer := map[string][]int{}
	var order []string
	for i, e := range evs {
		out[i].Event = e
		if _, ok := byCustomer[e.CustomerID]; !ok {
			order = append(order, e.CustomerID)
		}
		byCustomer[e.CustomerID] = append(byCustomer[e.CustomerID], i)
	}
	parallel := r.Parallel
	if parallel <= 0 {
		parallel = 16
	}
	var away atomic.Bool
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(parallel, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cust := range work {
				idx := byCustomer[cust]
				slices.SortStableFunc(idx, func(a, b int) int { return evs[a].At.Compare(evs[b].At) })
				for k, i := range idx {
					if away.Load() {
						out[i].Err = ErrTemporalAway
					} else {
						out[i].Result, out[i].Err = r.routeWith(ctx, evs[i], customers[cust])
						if answering && out[i].Err != nil && temporalAway(out[i].Err) {
							away.Store(true)
						}
					}
					if out[i].Err == nil {
						continue
					}
					out[i].Dead = r.failed(ctx, evs[i], out[i].Err)
					for _, later := range idx[k+1:] {
						out[later].Err = fmt.Errorf("waits behind event %s of the same customer", evs[i].ID)
					}
					break
				}
			}
		}()
	}
	for _, c := range order {
		work <- c
	}
	close(work)
	wg.Wait()
	return out
}

// ErrTemporalAway is why events were not routed after a call found
// Temporal away in the same batch.
var ErrTemporalAway = errors.New("Temporal did not answer another call of the same batch; the sweeper retries")

// temporalAway reports whether err says Temporal did not answer (not
// reachable, or not in time), rather than that it refused this one call.
func temporalAway(err error) bool {
	var unavailable *serviceerror.Unavailable
	var late *serviceerror.DeadlineExceeded
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &unavailable) || errors.As(err, &late) {
		return true
	}
	if st, ok := status.FromError(err); ok {
		return st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded
	}
	return false
}

// failed records a failed attempt to route e and reports whether it was
// dead-lettered. The log line names the event, never its payload.
func (r *Router) failed(ctx context.Context, e journey.Event, cause error) bool {
	if errors.Is(cause, ErrUnknownCustomer) {
		// The customer was deleted after the event was accepted: nothing
		// will ever route it.
		if _, err := r.Store.DropEvent(ctx, e.ID, "dropped: "+cause.Error()); err != nil {
			r.Log.WarnContext(ctx, "drop event of a deleted customer", "event", e.ID, "err", err)
		}
		return false
	}
	attempts, dead, err := r.Store.EventFailed(context.WithoutCancel(ctx), e.ID, cause.Error(), r.maxAttempts())
	if err != nil {
		r.Log.WarnContext(ctx, "record failed routing", "event", e.ID, "err", err)
		return false
	}
	r.Metrics.RouteFailed(dead)
	if dead {
		r.Log.ErrorContext(ctx, "event dead-lettered: routing failed too often; see lojal events failed", "event", e.ID, "type", e.Type,
			"attempts", attempts, "err", truncate(cause.Error(), 300))
	} else {
		r.Log.WarnContext(ctx, "event not routed; will retry", "event", e.ID, "type", e.Type, "attempt", attempts, "err", truncate(cause.Error(), 300))
	}
	return dead
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// AcceptAndRoute routes events just accepted in the request path. Events
// that must wait behind an older failing event of their customer are left
// to the sweeper, which keeps each customer's order.
func (r *Router) AcceptAndRoute(ctx context.Context, evs []journey.Event) ([]Routed, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	blocked, err := r.Store.Blocked(ctx, ids)
	if err != nil {
		return nil, err
	}
	ready := evs
	if len(blocked) > 0 {
		ready = slices.DeleteFunc(slices.Clone(evs), func(e journey.Event) bool { return blocked[e.ID] })
	}
	return r.routeAll(ctx, ready, nil, true), nil
}

// SweepOptions tune one pass of the sweeper.
type SweepOptions struct {
	// Grace is how long the request path has to route an event before the
	// sweeper takes it (default 3 s).
	Grace time.Duration
	// Batch bounds how many events one pass claims (default 500).
	Batch int
	// Lease is how long claimed events are kept from other passes; the
	// pass renews it while it routes them, so a sweeper that hangs gives
	// its events up within a lease (default 4 s).
	Lease time.Duration
	// BulkParallel bounds how many customers' bulk events are routed at
	// once (default 4), and BulkRate how many a second (default 200;
	// negative: no bound): an enrolment of a million customers is a
	// steady stream of run starts Temporal and the workers take beside
	// live traffic, not a flood that makes live runs wait.
	BulkParallel int
	BulkRate     float64
}

func (o SweepOptions) withDefaults() SweepOptions {
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Lease <= 0 {
		o.Lease = 4 * time.Second
	}
	if o.BulkParallel <= 0 {
		o.BulkParallel = 4
	}
	if o.BulkRate == 0 {
		o.BulkRate = 200
	}
	return o
}

// SweepLane routes one batch of a lane's due events and returns how many
// it took.
func (r *Router) SweepLane(ctx context.Context, lane string, o SweepOptions) (int, error) {
	o = o.withDefaults()
	claimed, err := r.Store.ClaimDue(ctx, lane, o.Grace, o.Batch, o.Lease)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	evs := make([]journey.Event, len(claimed))
	for i, c := range claimed {
		evs[i] = c.Event
	}
	// A batch the sweeper routes is a trace of its own, linked to the
	// sweeper's (Sweep detaches its polling from it).
	ctx, span := telemetry.Linked(ctx, "dispatch.SweepLane", attribute.String("lojal.lane", lane), attribute.Int("lojal.events", len(evs)))
	defer span.End()
	defer r.holdClaims(ctx, claimed, o.Lease)()
	r.RouteAll(ctx, evs)
	return len(claimed), nil
}

// holdClaims renews the lease on claimed events four times a lease, from
// a goroutine of its own, until the returned stop is called or ctx ends: a
// long batch keeps its events, while a sweeper that hangs (SIGSTOP) or
// that Temporal gave up on (its context ends) stops renewing, and another
// pass takes the events within a lease. A renewal that fails is logged:
// the events may then be routed twice, which routing makes harmless.
func (r *Router) holdClaims(ctx context.Context, claimed []store.ClaimedEvent, lease time.Duration) (stop func()) {
	return every(ctx, lease/4, func() {
		if err := r.Store.ExtendClaims(ctx, claimed, lease); err != nil && ctx.Err() == nil {
			r.Log.WarnContext(ctx, "could not renew the claim on events being routed; another pass may route them too", "events", len(claimed), "err", err)
		}
	})
}

// Waiting deals with routes that wait: parked events whose run has started
// since (a replica that started the run died before delivering them) are
// delivered, parked events whose time is up are recorded as unmatched with
// the reason, and events a finishing run handed back are routed again.
func (r *Router) Waiting(ctx context.Context, limit int) (int, error) {
	routes, err := r.Store.WaitingRoutes(ctx, 2*time.Second, r.parkFor(), limit)
	if err != nil {
		return 0, err
	}
	now := r.now()
	done := 0
	for _, w := range routes {
		switch w.Action {
		case ActionRequeued:
			_, err := r.route(ctx, w.Event, w.JourneyID, w.RoutedAt, false, nil)
			if errors.Is(err, ErrPreviousRunFinishing) || errors.Is(err, ErrRunStarting) {
				// The run that handed it back has not ended yet, or the
				// next one not started: a later pass routes it. Other
				// waiting routes go on.
				continue
			}
			if err != nil {
				return done, fmt.Errorf("route requeued event %s: %w", w.EventID, err)
			}
		case ActionParked:
			o, ok, err := r.signal(ctx, Outcome{Journey: w.JourneyID, WorkflowID: w.WorkflowID}, w.Event)
			if err != nil {
				return done, err
			}
			route := w.Route
			switch {
			case ok:
				route.Action, route.Reason = o.Action, "delivered after waiting for its run"
			case w.ParkUntil == nil || !now.Before(*w.ParkUntil):
				route.Action = ActionUnmatched
				route.Reason = fmt.Sprintf("no run of %s for customer %s started within %s of the event", w.JourneyID, w.Event.CustomerID,
					r.parkFor())
			default:
				route.ParkUntil = w.ParkUntil // still waiting
			}
			if err := r.Store.RecordRoutes(ctx, []store.Route{route}); err != nil {
				return done, err
			}
		}
		done++
	}
	return done, nil
}
