package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Request is one policy question about one message, as stored.
type Request struct {
	// IdempotencyKey is RequestKey plus the ask number; Temporal retrying
	// the same ask finds the row written the first time.
	IdempotencyKey string
	RequestKey     string
	CustomerID     string
	WorkflowID     string
	JourneyID      string
	Version        string
	StepID         string
	Template       string
	Channel        string
	Topic          string
	Purpose        string
	Priority       policy.Priority
	FirstAsked     time.Time
	Now            time.Time
	// ReservationTTL is how long an allowed message may take to be sent
	// before its reservation stops counting and sending is refused.
	ReservationTTL time.Duration
}

// Snapshot is what the policy sees, read under the customer's lock.
type Snapshot struct {
	Customer     journey.Customer
	Relationship policy.Relationship
	Window       []policy.Contact
	Waiting      []policy.Waiting
}

// DecideFunc turns a snapshot into a decision; it must be pure.
type DecideFunc func(Snapshot) policy.Decision

// Decided is a stored decision.
type Decided struct {
	policy.Decision
	// Replayed is true when the decision was found from an earlier attempt
	// rather than taken now.
	Replayed bool
}

// Decide takes one policy decision for a message atomically: it takes the
// customer's lock, reads their relationship, contact window and waiting
// messages, calls decide, and records the decision (reserving a slot when
// it allows) before the lock is released. Concurrent journeys for the same
// customer queue on the lock, so together they can never exceed a cap.
func (s *Store) Decide(ctx context.Context, r Request, lookback time.Duration, decide DecideFunc) (Decided, error) {
	out, err := s.decide(ctx, r, lookback, decide)
	if err != nil {
		return out, fmt.Errorf("decide %s: %w", r.IdempotencyKey, err)
	}
	return out, nil
}

// decide runs the transaction in two round trips: BEGIN and every read in
// one pipeline, then the writes and COMMIT in another. Decisions are the
// hot path of every message, and round trips, not SQL, dominate them.
func (s *Store) decide(ctx context.Context, r Request, lookback time.Duration, decide DecideFunc) (out Decided, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return out, err
	}
	defer conn.Release()
	open := false
	defer func() {
		if err != nil && open {
			// A failed statement leaves the transaction aborted (and skips
			// the rest of the pipeline, COMMIT included): roll back, or drop
			// the connection if even that fails.
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
	}()
	var snap Snapshot
	var found bool
	var prior *policy.Decision
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.q.LockCustomer, r.CustomerID)
	b.Queue(s.q.Relationship, r.CustomerID).QueryRow(func(row pgx.Row) error {
		var attrs, consent []byte
		var suppressed string
		var pushSubs int64
		c := &snap.Customer
		err := row.Scan(&c.ID, &c.Email, &c.Locale, &c.Timezone, &c.PreferredChannel, &attrs, &c.TopicsOptedOut, &consent, &suppressed, &pushSubs)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if err := decodeCustomerJSON(c, attrs, consent); err != nil {
			return err
		}
		snap.Relationship = relationship(*c, policy.Reason(suppressed), pushSubs)
		return nil
	})
	b.Queue(s.q.LedgerByKey, r.IdempotencyKey).QueryRow(func(row pgx.Row) error {
		var d policy.Decision
		var status string
		var detail []byte
		err := row.Scan(&d.Verdict, &d.Reason, &status, &d.Channel, &d.Until, &detail)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Verdict != policy.Defer {
			d.Until = time.Time{}
		}
		_ = json.Unmarshal(detail, &d.Detail)
		prior = &d
		return nil
	})
	b.Queue(s.q.ContactWindow, r.CustomerID, r.Now.Add(-lookback), r.Now).Query(func(rows pgx.Rows) error {
		var c policy.Contact
		_, err := pgx.ForEachRow(rows, []any{&c.At, &c.Channel, &c.Purpose, &c.Key, &c.Critical}, func() error {
			snap.Window = append(snap.Window, c)
			return nil
		})
		return err
	})
	b.Queue(s.q.WaitingForCustomer, r.CustomerID).Query(func(rows pgx.Rows) error {
		var w policy.Waiting
		_, err := pgx.ForEachRow(rows, []any{&w.Key, &w.Priority, &w.Since, &w.Due}, func() error {
			snap.Waiting = append(snap.Waiting, w)
			return nil
		})
		return err
	})
	open = true
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return out, err
	}
	switch {
	case !found:
		err = fmt.Errorf("customer %s: %w", r.CustomerID, ErrNotFound)
		return out, err
	case prior != nil:
		out = Decided{Decision: *prior, Replayed: true}
		_, err = conn.Exec(ctx, "COMMIT")
		return out, err
	}
	d := decide(snap)
	out = Decided{Decision: d}
	b, err = s.decisionWrites(r, d)
	if err != nil {
		return out, err
	}
	b.Queue("COMMIT")
	if err = conn.SendBatch(ctx, b).Close(); err != nil {
		return out, err
	}
	open = false
	return out, nil
}

func (s *Store) decisionWrites(r Request, d policy.Decision) (*pgx.Batch, error) {
	detail, err := json.Marshal(d.Detail)
	if err != nil {
		return nil, err
	}
	status := map[policy.Verdict]string{policy.Allow: "reserved", policy.Defer: "deferred", policy.Suppress: "suppressed"}[d.Verdict]
	channel := d.Channel
	if channel == "" {
		channel = r.Channel
	}
	var deferUntil, contactedAt, expiresAt *time.Time
	switch d.Verdict {
	case policy.Defer:
		deferUntil = &d.Until
	case policy.Allow:
		exp := r.Now.Add(r.ReservationTTL)
		contactedAt, expiresAt = &r.Now, &exp
	}
	b := &pgx.Batch{}
	b.Queue(s.q.InsertDecision, r.IdempotencyKey, r.RequestKey, r.CustomerID, r.WorkflowID, r.JourneyID, r.Version, r.StepID,
		r.Template, channel, r.Topic, r.Purpose, r.Priority.String(), string(d.Verdict), string(d.Reason), detail, status,
		r.Now, deferUntil, contactedAt, expiresAt)
	if d.Verdict == policy.Defer {
		b.Queue(s.q.UpsertWaiting, r.RequestKey, r.CustomerID, int(r.Priority), r.FirstAsked, d.Until)
	} else {
		b.Queue(s.q.DeleteWaiting, r.RequestKey)
	}
	return b, nil
}

// relationship builds the policy's view of a customer.
func relationship(c journey.Customer, emailSuppressed policy.Reason, pushSubs int64) policy.Relationship {
	rel := policy.Relationship{
		Channels: map[string]policy.ChannelState{
			policy.Email: {Consent: c.Consent[policy.Email], Address: c.Email != "", Suppressed: emailSuppressed},
			policy.Push:  {Consent: c.Consent[policy.Push], Address: pushSubs > 0},
		},
		TopicsOptedOut: c.TopicsOptedOut,
		Preferred:      c.PreferredChannel,
	}
	if c.Timezone != "" {
		if loc, err := journey.LoadLocation(c.Timezone); err == nil {
			rel.Location = loc
		}
	}
	return rel
}

// Delivery is a reservation about to be sent.
type Delivery struct {
	Status     string
	CustomerID string
	JourneyID  string
	StepID     string
	Template   string
	Channel    string
	Topic      string
	ExpiresAt  time.Time
	// MessageID is set when an earlier attempt got as far as sending.
	MessageID  string
	WorkflowID string
}

// Delivery loads the reservation for an idempotency key.
func (s *Store) Delivery(ctx context.Context, key string) (Delivery, error) {
	var d Delivery
	var exp *time.Time
	err := s.pool.QueryRow(ctx, s.q.DeliveryByKey, key).Scan(&d.Status, &d.CustomerID, &d.JourneyID, &d.StepID, &d.Template, &d.Channel, &d.Topic, &exp, &d.MessageID, &d.WorkflowID)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("delivery %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("delivery %s: %w", key, err)
	}
	if exp != nil {
		d.ExpiresAt = *exp
	}
	return d, nil
}

// MarkSending records, before the send, what is about to go out.
func (s *Store) MarkSending(ctx context.Context, key, messageID, address, locale, subject string) error {
	if _, err := s.pool.Exec(ctx, s.q.MarkSending, key, messageID, address, locale, subject); err != nil {
		return fmt.Errorf("mark %s sending: %w", key, err)
	}
	return nil
}

// MarkSent confirms a reservation as sent.
func (s *Store) MarkSent(ctx context.Context, key string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, s.q.MarkSent, key, at); err != nil {
		return fmt.Errorf("mark %s sent: %w", key, err)
	}
	return nil
}

// UnmarkSent returns a message recorded as sent to reserved, when the
// server refused it after all.
func (s *Store) UnmarkSent(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, s.q.UnmarkSent, key); err != nil {
		return fmt.Errorf("unmark %s sent: %w", key, err)
	}
	return nil
}

// Release gives back a reservation that will not be sent (status released,
// or failed with the error), so it no longer counts against caps.
func (s *Store) Release(ctx context.Context, key, status, reason string) error {
	if status != "released" && status != "failed" {
		return fmt.Errorf("release %s: bad status %q", key, status)
	}
	if _, err := s.pool.Exec(ctx, s.q.MarkFailed, key, status, reason); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

// LedgerEntry is one row of a customer's contact history.
type LedgerEntry struct {
	ID         int64           `json:"id"`
	DecidedAt  time.Time       `json:"decided_at"`
	JourneyID  string          `json:"journey"`
	Version    string          `json:"version"`
	StepID     string          `json:"step"`
	Template   string          `json:"template"`
	Channel    string          `json:"channel"`
	Topic      string          `json:"topic"`
	Purpose    string          `json:"purpose,omitempty"`
	Priority   string          `json:"priority"`
	Decision   string          `json:"decision"`
	Reason     string          `json:"reason"`
	Detail     json.RawMessage `json:"detail"`
	Status     string          `json:"status"`
	DeferUntil *time.Time      `json:"defer_until,omitempty"`
	SentAt     *time.Time      `json:"sent_at,omitempty"`
	Address    string          `json:"address,omitempty"`
	Locale     string          `json:"locale,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// History returns every decision about a customer, oldest first.
func (s *Store) History(ctx context.Context, customerID string) ([]LedgerEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.CustomerHistory, customerID)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LedgerEntry, error) {
		var e LedgerEntry
		err := row.Scan(&e.ID, &e.DecidedAt, &e.JourneyID, &e.Version, &e.StepID, &e.Template, &e.Channel, &e.Topic, &e.Purpose,
			&e.Priority, &e.Decision, &e.Reason, &e.Detail, &e.Status, &e.DeferUntil, &e.SentAt, &e.Address, &e.Locale, &e.Subject, &e.Error)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", customerID, err)
	}
	return out, nil
}

// Sent is one message that went out.
type Sent struct {
	CustomerID string
	JourneyID  string
	StepID     string
	Channel    string
	SentAt     time.Time
	Subject    string
	Address    string
	Locale     string
}

// SentSince lists messages sent since t.
func (s *Store) SentSince(ctx context.Context, t time.Time) ([]Sent, error) {
	rows, err := s.pool.Query(ctx, s.q.RecentSent, t)
	if err != nil {
		return nil, fmt.Errorf("sent since %s: %w", t, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Sent, error) {
		var m Sent
		err := row.Scan(&m.CustomerID, &m.JourneyID, &m.StepID, &m.Channel, &m.SentAt, &m.Subject, &m.Address, &m.Locale)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("sent since %s: %w", t, err)
	}
	return out, nil
}

// Decision is one ledger decision, for reports.
type Decision struct {
	CustomerID string
	JourneyID  string
	StepID     string
	Channel    string
	Decision   string
	Reason     string
	DecidedAt  time.Time
	DeferUntil *time.Time
	Status     string
}

// DecisionsSince lists decisions taken since t.
func (s *Store) DecisionsSince(ctx context.Context, t time.Time) ([]Decision, error) {
	rows, err := s.pool.Query(ctx, s.q.RecentDecisions, t)
	if err != nil {
		return nil, fmt.Errorf("decisions since %s: %w", t, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Decision, error) {
		var d Decision
		err := row.Scan(&d.CustomerID, &d.JourneyID, &d.StepID, &d.Channel, &d.Decision, &d.Reason, &d.DecidedAt, &d.DeferUntil, &d.Status)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("decisions since %s: %w", t, err)
	}
	return out, nil
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// Pressure is how hard lojal pressed on customers over a period.
type Pressure struct {
	From, To  time.Time
	Customers int
	Weeks     int
	// PerWeek[n] is how many (customer, week) pairs had n messages; n = 0
	// counts customers who heard nothing that week.
	PerWeek map[int]int
	Held    []Held
}

// Held counts deferrals or suppressions for one reason.
type Held struct {
	Decision string
	Reason   string
	Count    int
}

// Pressure summarises messages per customer per week and held-back
// decisions by reason, between from and to.
func (s *Store) Pressure(ctx context.Context, from, to time.Time) (Pressure, error) {
	p := Pressure{From: from, To: to, PerWeek: map[int]int{}}
	if err := s.pool.QueryRow(ctx, s.q.CountCustomers).Scan(&p.Customers); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	rows, err := s.pool.Query(ctx, s.q.PressurePerWeek, from, to)
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	var n, count int
	covered := 0
	_, err = pgx.ForEachRow(rows, []any{&n, &count}, func() error {
		p.PerWeek[n] = count
		covered += count
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	p.Weeks = int((to.Sub(from) + 7*24*time.Hour - 1) / (7 * 24 * time.Hour))
	if zero := p.Customers*p.Weeks - covered; zero > 0 {
		p.PerWeek[0] = zero
	}
	rows, err = s.pool.Query(ctx, s.q.HeldByReason, from, to)
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	var h Held
	_, err = pgx.ForEachRow(rows, []any{&h.Decision, &h.Reason, &h.Count}, func() error {
		p.Held = append(p.Held, h)
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	return p, nil
}
