package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
)

// AcceptResult says what happened to one event of a batch.
type AcceptResult struct {
	ID string
	// Status is accepted, duplicate, conflict or unknown_customer.
	Status string
	// An accepted live event comes with what routing it in the request
	// path needs: its customer as stored, and Blocked when an older event
	// of the customer failed and waits for a retry (the sweeper routes
	// this one after it, keeping the customer's order).
	Customer *journey.Customer
	Blocked  bool
	// Unrouted is set on a duplicate of a live event that was stored and
	// never routed (its replica died before it could); it comes with
	// Customer and Blocked like an accepted one, to be routed now.
	Unrouted bool
}

// AcceptEvents stores validated events in one round trip: one multi-row
// insert that also returns, for the events it stored, what routing them
// needs (AcceptResult). Events for unknown customers are not stored; an id
// stored before is a duplicate when the event is the same and a conflict
// when it is not. Telling those apart takes two more round trips, only
// when some event was not stored.
func (s *Store) AcceptEvents(ctx context.Context, evs []journey.Event) ([]AcceptResult, error) {
	return s.AcceptEventsIn(ctx, LaneLive, evs)
}

// Lanes keep bulk routing work apart from live events.
const (
	// LaneLive is for events customers' own actions cause.
	LaneLive = "live"
	// LaneBulk is for enrolment events of scheduled journeys: a sweep of a
	// million customers never delays a live event.
	LaneBulk = "bulk"
)

// offered is a batch of events as insert-events and events-differ take it.
type offered struct {
	id, typ, cust []string
	at            []time.Time
	data          [][]byte
}

func (o *offered) add(e journey.Event) error {
	b, err := json.Marshal(nonNilMap(e.Data))
	if err != nil {
		return fmt.Errorf("accept event %s: %w", e.ID, err)
	}
	o.id, o.typ, o.cust, o.at, o.data = append(o.id, e.ID), append(o.typ, e.Type), append(o.cust, e.CustomerID), append(o.at, e.At), append(o.data, b)
	return nil
}

// AcceptEventsIn is AcceptEvents for a lane. Only live events come with
// their customer and blocked flag: bulk enrolments are routed by the
// sweeper.
func (s *Store) AcceptEventsIn(ctx context.Context, lane string, evs []journey.Event) ([]AcceptResult, error) {
	out := make([]AcceptResult, len(evs))
	var all offered
	for i, e := range evs {
		out[i] = AcceptResult{ID: e.ID}
		if err := all.add(e); err != nil {
			return nil, err
		}
	}
	if len(evs) == 0 {
		return out, nil
	}
	var inserted []AcceptResult
	b := s.genericTx()
	b.Queue(s.q.InsertEvents, all.id, all.typ, all.cust, all.at, all.data, lane).Query(func(rows pgx.Rows) error {
		var err error
		inserted, err = pgx.CollectRows(rows, scanAccepted)
		return err
	})
	if err := s.commit(ctx, b); err != nil {
		return nil, fmt.Errorf("accept events: %w", err)
	}
	fresh := make(map[string]AcceptResult, len(inserted))
	for _, r := range inserted {
		fresh[r.ID] = r
	}
	var rest []int
	for i := range out {
		if r, ok := fresh[out[i].ID]; ok {
			out[i] = r
			delete(fresh, r.ID) // the same id twice in one batch: once
			continue
		}
		rest = append(rest, i)
	}
	if len(rest) == 0 {
		return out, nil
	}
	return out, s.notAccepted(ctx, lane, evs, out, rest, inserted)
}

// notAccepted tells why the events at rest were not stored: their
// customer is unknown, or their id was stored before, for the same event
// (a duplicate) or another (a conflict). A live duplicate that was never
// routed is marked Unrouted, with what routing it needs.
func (s *Store) notAccepted(ctx context.Context, lane string, evs []journey.Event, out []AcceptResult, rest []int, inserted []AcceptResult) error {
	ids := make([]string, 0, len(rest))
	for _, i := range rest {
		ids = append(ids, evs[i].CustomerID)
	}
	rows, err := s.pool.Query(ctx, s.q.CustomersExist, ids)
	if err != nil {
		return fmt.Errorf("accept events: %w", err)
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("accept events: %w", err)
	}
	exists := make(map[string]bool, len(known))
	for _, k := range known {
		exists[k] = true
	}
	var again offered
	// pos maps an event offered again (1-based, as WITH ORDINALITY
	// counts) to its result.
	pos := make([]int, 0, len(rest))
	for _, i := range rest {
		if !exists[evs[i].CustomerID] {
			out[i].Status = "unknown_customer"
			continue
		}
		out[i].Status = "duplicate"
		if err := again.add(evs[i]); err != nil {
			return err
		}
		pos = append(pos, i)
	}
	if len(pos) == 0 {
		return nil
	}
	rows, err = s.pool.Query(ctx, s.q.EventsDiffer, again.id, again.typ, again.cust, again.at, again.data)
	if err != nil {
		return fmt.Errorf("accept events: compare redelivered: %w", err)
	}
	differ, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("accept events: compare redelivered: %w", err)
	}
	for _, ord := range differ {
		out[pos[ord-1]].Status = "conflict"
	}
	if lane != LaneLive || len(differ) == len(pos) {
		return nil
	}
	// A duplicate of an event this batch inserted is routed with it.
	now := make(map[string]bool, len(inserted))
	for _, r := range inserted {
		now[r.ID] = true
	}
	dup := make(map[string]int, len(pos))
	for _, i := range pos {
		if out[i].Status == "duplicate" && !now[evs[i].ID] {
			dup[evs[i].ID] = i
		}
	}
	if len(dup) == 0 {
		return nil
	}
	rows, err = s.pool.Query(ctx, s.q.RedeliveredUnrouted, slices.Collect(maps.Keys(dup)))
	if err != nil {
		return fmt.Errorf("accept events: find redelivered events not routed: %w", err)
	}
	unrouted, err := pgx.CollectRows(rows, scanAccepted)
	if err != nil {
		return fmt.Errorf("accept events: find redelivered events not routed: %w", err)
	}
	for _, r := range unrouted {
		i := dup[r.ID]
		out[i].Customer, out[i].Blocked, out[i].Unrouted = r.Customer, r.Blocked, true
	}
	return nil
}

// scanAccepted reads a row of insert-events: an event stored, with its
// customer and blocked flag when it is live.
func scanAccepted(row pgx.CollectableRow) (AcceptResult, error) {
	r := AcceptResult{Status: "accepted"}
	var id, email, locale, tz, preferred *string
	var attrs, consent []byte
	if err := row.Scan(&r.ID, &r.Blocked, &id, &email, &locale, &tz, &preferred, &attrs, &consent); err != nil {
		return r, err
	}
	if id == nil {
		return r, nil
	}
	c := journey.Customer{ID: *id, Email: deref(email), Locale: deref(locale), Timezone: deref(tz), PreferredChannel: deref(preferred)}
	if _, err := decodeCustomerJSON(&c, attrs, consent); err != nil {
		return r, fmt.Errorf("customer %s: %w", c.ID, err)
	}
	r.Customer = &c
	return r, nil
}

// MarkEventsDispatched records that events reached every journey they
// concern.
func (s *Store) MarkEventsDispatched(ctx context.Context, ids []string) error {
	if _, err := s.pool.Exec(ctx, s.q.MarkDispatchedMany, ids); err != nil {
		return fmt.Errorf("mark dispatched: %w", err)
	}
	return nil
}

// Token is an API client.
type Token struct {
	ID   int64
	Name string
}

// ErrBadToken means a bearer token is unknown or revoked.
var ErrBadToken = errors.New("unknown or revoked token")

// HashToken is how tokens are stored.
func HashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// CreateToken stores a token's hash.
func (s *Store) CreateToken(ctx context.Context, name, secret string) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, s.q.InsertToken, name, HashToken(secret)).Scan(&id); err != nil {
		return 0, fmt.Errorf("create token: %w", err)
	}
	return id, nil
}

// TokenFor looks a bearer token up by its hash.
func (s *Store) TokenFor(ctx context.Context, secret string) (Token, error) {
	var t Token
	err := s.pool.QueryRow(ctx, s.q.TokenByHash, HashToken(secret)).Scan(&t.ID, &t.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrBadToken
	}
	if err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// RevokeToken revokes every live token with a name.
func (s *Store) RevokeToken(ctx context.Context, name string) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.q.RevokeToken, name)
	if err != nil {
		return 0, fmt.Errorf("revoke token: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Deployment is a published journeys directory.
type Deployment struct {
	ID         int64
	Hash       string
	Files      map[string]string
	DeployedAt time.Time
}

// Deploy publishes a journeys directory.
func (s *Store) Deploy(ctx context.Context, d Deployment, summary, by string) (Deployment, error) {
	files, err := json.Marshal(d.Files)
	if err != nil {
		return d, err
	}
	if err := s.pool.QueryRow(ctx, s.q.InsertDeployment, d.Hash, files, summary, by).Scan(&d.ID, &d.DeployedAt); err != nil {
		return d, fmt.Errorf("deploy: %w", err)
	}
	return d, nil
}

// LatestDeploymentID returns the newest deployment's id, or 0.
func (s *Store) LatestDeploymentID(ctx context.Context) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, s.q.LatestDeploymentID).Scan(&id)
	return id, err
}

// LatestDeployment returns the deployment in force, or ErrNotFound.
func (s *Store) LatestDeployment(ctx context.Context) (Deployment, error) {
	var d Deployment
	var files []byte
	err := s.pool.QueryRow(ctx, s.q.LatestDeployment).Scan(&d.ID, &d.Hash, &files, &d.DeployedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("latest deployment: %w", err)
	}
	return d, json.Unmarshal(files, &d.Files)
}

// CustomersPage returns up to limit customers in the given time zones with
// ids after `after`, in id order.
func (s *Store) CustomersPage(ctx context.Context, zones []string, after string, limit int) ([]journey.Customer, error) {
	rows, err := s.pool.Query(ctx, s.q.CustomersPage, zones, after, limit)
	if err != nil {
		return nil, fmt.Errorf("customers page: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (journey.Customer, error) {
		var c journey.Customer
		var attrs, consent []byte
		if err := row.Scan(&c.ID, &c.Email, &c.Locale, &c.Timezone, &c.PreferredChannel, &attrs, &consent); err != nil {
			return c, err
		}
		_, err := decodeCustomerJSON(&c, attrs, consent)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("customers page: %w", err)
	}
	return out, nil
}

// CustomerTimezones lists the time zones customers are in.
func (s *Store) CustomerTimezones(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.q.CustomerTimezones)
	if err != nil {
		return nil, fmt.Errorf("time zones: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
