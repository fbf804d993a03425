package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/journey"
)

// Design (b) of docs/scaling.md, prototyped to be measured beside design
// (a), which lojal ships: replicas own ranges of customer partitions
// through leases in Postgres, each lease carrying a fencing epoch, and
// each replica polls the events of its partitions and routes them. The
// API only stores events. This code is the measurement's, not the
// product's: it has what the design costs on the hot path (lease renewal,
// a claim query per partition set, the fencing check before dispatch
// writes) and none of its failure handling.

const (
	prototypePartitions = 16
	prototypeLeaseTTL   = 5 * time.Second
	prototypePoll       = 50 * time.Millisecond
)

const prototypeDDL = `
CREATE TABLE dispatch_leases (
    part       int PRIMARY KEY,
    owner      text,
    epoch      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO dispatch_leases (part) SELECT generate_series(0, 15);
CREATE INDEX ON events ((hashtext(customer_id) & 15), seq) WHERE dispatched_at IS NULL AND dead_at IS NULL;
`

// Take the partitions a replica is meant to own (part % replicas) that are
// free or expired, bumping the epoch: a lease changing hands fences off
// the old owner.
const prototypeAcquire = `
UPDATE dispatch_leases
SET owner = $1, epoch = CASE WHEN owner = $1 AND expires_at > now() THEN epoch ELSE epoch + 1 END,
    expires_at = now() + $4::interval
WHERE part % $2 = $3 AND (owner IS NULL OR owner = $1 OR expires_at < now())
RETURNING part, epoch`

const prototypeClaim = `
SELECT id, type, customer_id, occurred_at, data
FROM events
WHERE dispatched_at IS NULL AND dead_at IS NULL AND (hashtext(customer_id) & 15) = ANY($1::int[])
ORDER BY seq
LIMIT 500`

// The fence: the leases this replica routes under are still its own at
// the epoch it took them with.
const prototypeFence = `
SELECT count(*) FROM dispatch_leases
WHERE owner = $1 AND part = ANY($2::int[]) AND epoch = ANY($3::bigint[]) AND expires_at > now()`

type prototypeReplica struct {
	name     string
	index, n int
	pool     *pgxpool.Pool
	router   *dispatch.Router
	routed   *atomic.Int64
}

func (p *prototypeReplica) run(ctx context.Context) error {
	for ctx.Err() == nil {
		rows, err := p.pool.Query(ctx, prototypeAcquire, p.name, p.n, p.index, prototypeLeaseTTL)
		if err != nil {
			return fmt.Errorf("acquire leases: %w", err)
		}
		var parts []int32
		var epochs []int64
		for rows.Next() {
			var part int32
			var epoch int64
			if err := rows.Scan(&part, &epoch); err != nil {
				return err
			}
			parts, epochs = append(parts, part), append(epochs, epoch)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("acquire leases: %w", err)
		}
		evs, err := p.claim(ctx, parts)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(prototypePoll):
			}
			continue
		}
		var held int
		if err := p.pool.QueryRow(ctx, prototypeFence, p.name, parts, epochs).Scan(&held); err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		if held != len(parts) {
			continue // lost a lease: the new owner routes these
		}
		for _, r := range p.router.RouteAll(ctx, evs) {
			if r.Err == nil {
				p.routed.Add(1)
			}
		}
	}
	return nil
}

func (p *prototypeReplica) claim(ctx context.Context, parts []int32) ([]journey.Event, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, prototypeClaim, parts)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (journey.Event, error) {
		var e journey.Event
		err := r.Scan(&e.ID, &e.Type, &e.CustomerID, &e.At, &e.Data)
		return e, err
	})
}

// DispatchPartitioned measures design (b) like Dispatch measures design
// (a): the same clients post the same events to the API, which only
// stores them, and replicas routes them from their partitions. Its rate is
// events posted over the time until the last of them reached its run,
// against bare SignalWithStartWorkflow calls, interleaved.
func DispatchPartitioned(ctx context.Context, o DispatchOptions, replicas int) (Result, error) {
	res := Result{Name: fmt.Sprintf("event dispatch, design (b) prototype: %d partitioned dispatchers, %d clients", replicas, o.Conc),
		Unit: "events/s", BaseName: "bare SignalWithStartWorkflow, same clients", Target: 0.8,
		Note: "not shipped; measured for the decision in docs/scaling.md"}
	cat, err := catalog.Load(benchJourneys, "bench")
	if err != nil {
		return res, err
	}
	st, _, closeStore, err := schemaStore(ctx, o.URL, "dispatchb", o.Conc+8+4*replicas)
	if err != nil {
		return res, err
	}
	defer closeStore()
	if _, err := st.Pool().Exec(ctx, prototypeDDL); err != nil {
		return res, fmt.Errorf("prototype tables: %w", err)
	}
	if err := copyCustomers(ctx, st, "d-", o.Customers, []string{"Europe/Oslo"}, `{"first_name": "Kari"}`); err != nil {
		return res, err
	}
	log := slog.New(slog.DiscardHandler)
	tc, err := dialTemporal(o.TemporalAddress, log)
	if err != nil {
		return res, err
	}
	defer tc.Close()
	tag := time.Now().UnixNano()
	queue := fmt.Sprintf("bench-dispatchb-%d", tag)
	a, err := startAPI(ctx, st, nil, cat, queue, 2*time.Second) // store only: the replicas route
	if err != nil {
		return res, err
	}
	defer a.Close()

	var routed atomic.Int64
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for i := range replicas {
		p := &prototypeReplica{name: fmt.Sprintf("replica-%d", i), index: i, n: replicas, pool: st.Pool(), routed: &routed,
			router: &dispatch.Router{Store: st, Temporal: tc, Catalog: cat, Log: log, TaskQueue: queue, ReorderWindow: 2 * time.Second, Parallel: 16}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(rctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	round := 0
	ours := func() (float64, error) {
		round++
		r := round
		start := time.Now()
		before := routed.Load()
		var posted atomic.Int64
		if _, err := throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			id := fmt.Sprintf("b-%d-%d-%d-%d", tag, r, w, i) // new on a reused server, as in Dispatch
			cust := fmt.Sprintf("d-%07d", (w*100003+i*7+r)%o.Customers)
			if err := a.postEvent(ctx, id, cust, "bench.ping", fmt.Sprintf(`{"ping_id": %q}`, id)); err != nil {
				return err
			}
			posted.Add(1)
			return nil
		}); err != nil {
			return 0, err
		}
		deadline := time.Now().Add(2 * time.Minute)
		for routed.Load()-before < posted.Load() {
			select {
			case err := <-errs:
				return 0, err
			default:
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("routed %d of %d events in 2 min", routed.Load()-before, posted.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return float64(posted.Load()) / time.Since(start).Seconds(), nil
	}
	if _, err := ours(); err != nil { // warm-up
		return res, err
	}
	res.Ours, res.Baseline, err = alternate(o.Rounds, ours, bareSignalWithStart(ctx, tc, o, fmt.Sprintf("bench-swstart-b-%d", tag), queue+"-baseline"))
	return res, err
}
