package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/lojal/lojal/internal/journey"
)

// RunOptions tune the dispatcher loop.
type RunOptions struct {
	// Batch is how many pending events one pass takes.
	Batch int
	// Parallel is how many customers are dispatched at once; one
	// customer's events always go in order.
	Parallel int
	// Idle is how long to sleep when nothing is pending.
	Idle time.Duration
	// Reorder is how long an event waits after arriving before it is
	// dispatched, so that events sent close together but out of order
	// (a shipment before its order) reach journeys in the order they
	// happened. Zero dispatches at once.
	Reorder time.Duration
}

// Run dispatches accepted events until ctx ends. Only one process in the
// deployment dispatches at a time (a Postgres advisory lock elects it), so
// each customer's events reach their journeys in the order they were
// accepted; the others wait and take over if it goes away.
func (d *Dispatcher) Run(ctx context.Context, o RunOptions) error {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Idle <= 0 {
		o.Idle = 200 * time.Millisecond
	}
	for ctx.Err() == nil {
		lock, ok, err := d.Store.TryLead(ctx)
		if err != nil {
			d.Log.Warn("dispatcher election", "err", err)
		}
		if !ok {
			sleep(ctx, 2*time.Second)
			continue
		}
		d.Log.Info("dispatching events (this process holds the dispatcher lock)")
		d.lead(ctx, lock, o)
		lock.Release(context.WithoutCancel(ctx))
	}
	return nil
}

func (d *Dispatcher) lead(ctx context.Context, lock interface{ Alive(context.Context) bool }, o RunOptions) {
	lastCheck := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastCheck) > 5*time.Second {
			if !lock.Alive(ctx) {
				d.Log.Warn("dispatcher lock lost; standing down")
				return
			}
			lastCheck = time.Now()
		}
		n, err := d.DispatchPending(ctx, o)
		if err != nil {
			d.Log.Warn("dispatch", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if n == 0 {
			sleep(ctx, o.Idle)
		}
	}
}

// DispatchPending dispatches one batch of pending events and returns how
// many were handled. Events of one customer go in order; if one fails, the
// customer's later events wait for the next pass.
func (d *Dispatcher) DispatchPending(ctx context.Context, o RunOptions) (int, error) {
	evs, err := d.Store.PendingEvents(ctx, o.Batch, o.Reorder)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	// Within a customer, events go in the order they happened (then in
	// the order they arrived).
	slices.SortStableFunc(evs, func(a, b journey.Event) int { return a.At.Compare(b.At) })
	var order []string
	byCustomer := map[string][]journey.Event{}
	for _, e := range evs {
		if _, ok := byCustomer[e.CustomerID]; !ok {
			order = append(order, e.CustomerID)
		}
		byCustomer[e.CustomerID] = append(byCustomer[e.CustomerID], e)
	}
	var mu sync.Mutex
	var done []string
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(o.Parallel, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cust := range work {
				for _, e := range byCustomer[cust] {
					_, err := d.route1(ctx, e)
					if errors.Is(err, ErrUnknownCustomer) {
						// The customer was deleted after the event was
						// accepted: nothing will ever route it.
						_ = d.Store.MarkEventFailed(ctx, e.ID, err.Error())
						err = nil
					}
					if err != nil {
						d.Log.Warn("event not dispatched; will retry", "event", e.ID, "err", err)
						_ = d.Store.MarkEventFailed(ctx, e.ID, err.Error())
						break
					}
					mu.Lock()
					done = append(done, e.ID)
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range order {
		work <- c
	}
	close(work)
	wg.Wait()
	if len(done) > 0 {
		if err := d.Store.MarkEventsDispatched(ctx, done); err != nil {
			return 0, err
		}
	}
	return len(done), nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
