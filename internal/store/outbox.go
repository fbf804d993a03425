package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
)

// AcceptResult says what happened to one event of a batch.
type AcceptResult struct {
	ID string
	// Status is accepted, duplicate, conflict or unknown_customer.
	Status string
}

// AcceptEvents stores validated events in two round trips: one to learn
// which customers exist, one multi-row insert. Events for unknown
// customers are not stored; an id stored before is a duplicate when the
// event is the same and a conflict when it is not (a third round trip,
// only when some ids were stored before).
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

// AcceptEventsIn is AcceptEvents for a lane.
func (s *Store) AcceptEventsIn(ctx context.Context, lane string, evs []journey.Event) ([]AcceptResult, error) {
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		ids = append(ids, e.CustomerID)
	}
	rows, err := s.pool.Query(ctx, s.q.CustomersExist, ids)
	if err != nil {
		return nil, fmt.Errorf("accept events: %w", err)
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("accept events: %w", err)
	}
	exists := make(map[string]bool, len(known))
	for _, k := range known {
		exists[k] = true
	}
	var eid, typ, cust []string
	var at []time.Time
	var data [][]byte
	out := make([]AcceptResult, len(evs))
	for i, e := range evs {
		out[i] = AcceptResult{ID: e.ID, Status: "unknown_customer"}
		if !exists[e.CustomerID] {
			continue
		}
		b, err := json.Marshal(nonNilMap(e.Data))
		if err != nil {
			return nil, fmt.Errorf("accept event %s: %w", e.ID, err)
		}
		eid, typ, cust, at, data = append(eid, e.ID), append(typ, e.Type), append(cust, e.CustomerID), append(at, e.At), append(data, b)
		out[i].Status = "duplicate"
	}
	if len(eid) == 0 {
		return out, nil
	}
	rows, err = s.pool.Query(ctx, s.q.InsertEvents, eid, typ, cust, at, data, lane)
	if err != nil {
		return nil, fmt.Errorf("accept events: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("accept events: %w", err)
	}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	// pos maps an offered event (1-based, as WITH ORDINALITY counts) to its
	// result.
	pos := make([]int, 0, len(eid))
	for i := range out {
		if out[i].Status != "duplicate" {
			continue
		}
		pos = append(pos, i)
		if fresh[out[i].ID] {
			out[i].Status = "accepted"
			delete(fresh, out[i].ID) // the same id twice in one batch: once
		}
	}
	if len(inserted) == len(eid) {
		return out, nil
	}
	rows, err = s.pool.Query(ctx, s.q.EventsDiffer, eid, typ, cust, at, data)
	if err != nil {
		return nil, fmt.Errorf("accept events: compare redelivered: %w", err)
	}
	differ, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("accept events: compare redelivered: %w", err)
	}
	for _, ord := range differ {
		if i := pos[ord-1]; out[i].Status == "duplicate" {
			out[i].Status = "conflict"
		}
	}
	return out, nil
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
