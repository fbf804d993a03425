package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// PolicyOptions configure the policy benchmark.
type PolicyOptions struct {
	// URL is a database the benchmark may create schemas in.
	URL       string
	Conc      int
	Duration  time.Duration
	Rounds    int
	Customers int
}

// Policy compares policy decisions with reservation (store.Decide: lock,
// read window and waiting messages, decide, record) with a bare single-row
// UPDATE ... RETURNING transaction, at the same concurrency on the same
// database.
func Policy(ctx context.Context, o PolicyOptions) (Result, error) {
	res := Result{Name: fmt.Sprintf("policy decisions with reservation, %d clients", o.Conc), Unit: "decisions/s",
		BaseName: "bare UPDATE ... RETURNING transaction", Target: 0.75}
	st, schema, closeStore, err := schemaStore(ctx, o.URL, "policy", o.Conc)
	if err != nil {
		return res, err
	}
	defer closeStore()
	for i := range o.Customers {
		c := journey.Customer{ID: fmt.Sprintf("c-%05d", i), Email: fmt.Sprintf("c%d@example.com", i), Timezone: "Europe/Oslo",
			Consent: map[string]bool{"email": true, "push": true}}
		if _, err := st.UpsertCustomer(ctx, c, "bench"); err != nil {
			return res, err
		}
	}
	pc, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return res, err
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pc.MaxConns = int32(o.Conc)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, sql("create")); err != nil {
		return res, err
	}
	if _, err := pool.Exec(ctx, sql("fill"), o.Customers); err != nil {
		return res, err
	}
	// The house policy without quiet hours, so the mix of allow and defer
	// does not depend on the time of day the benchmark runs.
	rules := policy.Rules{Location: time.UTC, MinGap: 24 * time.Hour, MaxDefer: 7 * 24 * time.Hour,
		Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 3}, {Channel: policy.Push, Window: 24 * time.Hour, Max: 1}}}
	seq := time.Now().UnixNano()
	ours := func() (float64, error) {
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			cust := fmt.Sprintf("c-%05d", rand.IntN(o.Customers))
			key := fmt.Sprintf("bench-%d-%d-%d", seq, w, i)
			now := time.Now()
			req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: cust, WorkflowID: "bench", JourneyID: "bench",
				StepID: "send", Channel: policy.Preferred, Topic: "service", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute}
			_, err := st.Decide(ctx, req, rules.Lookback(), func(s store.Snapshot) policy.Decision {
				return policy.Decide(rules, s.Relationship, s.Window, s.Waiting, policy.Request{Key: key, Channel: policy.Preferred,
					Topic: "service", Priority: policy.Normal, FirstAsked: now}, now)
			})
			return err
		})
	}
	base := func() (float64, error) {
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var n int64
				return tx.QueryRow(ctx, sql("bump"), 1+rand.IntN(o.Customers)).Scan(&n)
			})
		})
	}
	res.Ours, res.Baseline, err = alternate(o.Rounds, ours, base)
	return res, err
}

// schemaStore migrates a fresh schema for one benchmark and opens a store
// on it; close drops the schema.
func schemaStore(ctx context.Context, url, name string, conns int) (st *store.Store, schema string, close func(), err error) {
	schema = fmt.Sprintf("bench_%s_%d", name, time.Now().UnixNano())
	cfg := store.Config{URL: url, Schema: schema, MaxConns: int32(conns)}
	if _, err := store.Migrate(ctx, cfg); err != nil {
		dropSchema(url, schema)
		return nil, "", nil, err
	}
	if st, err = store.Open(ctx, cfg); err != nil {
		dropSchema(url, schema)
		return nil, "", nil, err
	}
	return st, schema, func() { st.Close(); dropSchema(url, schema) }, nil
}

// cachedSchemaStore is schemaStore's for LedgerOptions.Cache: a schema
// of a fixed name, reused and kept.
func cachedSchemaStore(ctx context.Context, url, name string, conns int) (st *store.Store, schema string, close func(), err error) {
	schema = "bench_" + name + "_cache"
	cfg := store.Config{URL: url, Schema: schema, MaxConns: int32(conns)}
	if _, err := store.Migrate(ctx, cfg); err != nil {
		return nil, "", nil, err
	}
	if st, err = store.Open(ctx, cfg); err != nil {
		return nil, "", nil, err
	}
	return st, schema, st.Close, nil
}

func dropSchema(url, schema string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
