package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// ErrLedgerConflict means a status change found the message in another
// state than the one it expects: another attempt finished it first, or it
// does not exist. It is never ignored.
var ErrLedgerConflict = errors.New("ledger row is not in the expected state")

// ErrReservationOver means a message's reservation ended before it could
// be handed over: decisions no longer count it, and its time (the start
// of the customer's quiet hours, say) has passed. It must not be sent.
var ErrReservationOver = errors.New("the reservation ended before the message could be handed over")

// Request is one policy question about one message, as stored.
type Request struct {
	// IdempotencyKey is RequestKey plus the ask number; Temporal retrying
	// the same ask finds the row written the first time.
	IdempotencyKey string
	RequestKey     string
	CustomerID     string
	WorkflowID     string
	// RunID is the run chain's first run id (journey_runs.run_id): a
	// waiting message names the run that will ask again.
	RunID      string
	JourneyID  string
	Version    string
	StepID     string
	Template   string
	Channel    string
	Topic      string
	Purpose    string
	Priority   policy.Priority
	FirstAsked time.Time
	Now        time.Time
	// ReservationTTL is how long an allowed message may take to be sent
	// before its reservation stops counting and sending is refused.
	ReservationTTL time.Duration
	// MessageID is the Message-ID an allowed message is sent with,
	// recorded with the decision (activities.MessageID derives it from
	// the idempotency key), so sending it writes no new index entry.
	MessageID string
}

// ContactSlack bounds how long after its decision a message reaches the
// customer: it is sent within its reservation (activities.ReservationTTL,
// 15 minutes) or not at all, and the longest an attempt that began in
// time can take to finish is minutes. A week is the margin decisions and
// reports use to read only the ledger's months that can hold a contact of
// a period: contacts since t were decided since t - ContactSlack.
const ContactSlack = 7 * 24 * time.Hour

// clockSkew is how far the clocks of the Temporal server (which dates a
// message's first ask) and of the worker deciding it may disagree.
const clockSkew = 24 * time.Hour

// ErrTimeout means a decision gave up waiting, for the customer's lock
// (another decision about them held it past the lock timeout) or for the
// database (the statement timeout). Nothing was recorded: asking again is
// safe, and Temporal does.
var ErrTimeout = errors.New("timed out")

// DecideTimeouts bound how long a decision may wait. Zero values take the
// defaults.
type DecideTimeouts struct {
	// Lock is how long a decision waits for the customer's lock, held by
	// another decision about them (default 2s; a decision holds it for a
	// few milliseconds).
	Lock time.Duration
	// Statement is how long each round trip of a decision may take
	// (default 5s).
	Statement time.Duration
	// Idle is how long a decision's transaction may sit between its round
	// trips before Postgres ends it and releases the customer's lock: a
	// worker stopped mid-decision (SIGSTOP, a long GC pause) must not
	// hold up every later decision about the customer (default 10s).
	Idle time.Duration
}

func (t DecideTimeouts) withDefaults() DecideTimeouts {
	if t.Lock <= 0 {
		t.Lock = 2 * time.Second
	}
	if t.Statement <= 0 {
		t.Statement = 5 * time.Second
	}
	if t.Idle <= 0 {
		t.Idle = 10 * time.Second
	}
	return t
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
	// Key is the idempotency key the decision is stored under: the
	// request's own, or that of an earlier ask of the same message that
	// is still live (reserved, being sent, sent or possibly delivered).
	Key string
	// Replayed is true when the decision was found from an earlier attempt
	// or ask rather than taken now.
	Replayed bool
}

// Decide takes one policy decision for a message atomically: it takes the
// customer's lock, reads their relationship, contact window and waiting
// messages, calls decide, and records the decision (reserving a slot when
// it allows) before the lock is released. Concurrent journeys for the same
// customer queue on the lock, so together they can never exceed a cap.
//
// The wait for the customer's lock and each round trip are bounded
// (DecideTimeouts); a decision that runs out of time fails with
// ErrTimeout, retryable, having recorded nothing.
func (s *Store) Decide(ctx context.Context, r Request, lookback time.Duration, decide DecideFunc) (Decided, error) {
	out, err := s.decide(ctx, r, lookback, decide)
	if err != nil {
		return out, fmt.Errorf("decide %s: %w", r.IdempotencyKey, s.timeoutError(r.CustomerID, err))
	}
	return out, nil
}

// timeoutError explains a decision that ran out of time.
func (s *Store) timeoutError(customer string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	t := s.timeouts
	switch pgErr.Code {
	case "55P03": // lock_not_available
		return fmt.Errorf("%w: another decision about customer %s held their lock for more than %s (lock timeout); nothing was recorded, ask again: %w",
			ErrTimeout, customer, t.Lock, err)
	case "57014": // query_canceled
		return fmt.Errorf("%w: the database took more than %s to answer a decision about customer %s (statement timeout); nothing was recorded, ask again: %w",
			ErrTimeout, t.Statement, customer, err)
	case "25P03": // idle_in_transaction_session_timeout
		return fmt.Errorf("%w: the decision about customer %s paused for more than %s between its round trips, and the database ended it; nothing was recorded, ask again: %w",
			ErrTimeout, customer, t.Idle, err)
	case "23514":
		if strings.Contains(pgErr.Message, "no partition") {
			return fmt.Errorf("the contact ledger has no partition for this decision's time: the retention job (the Temporal schedule "+
				"lojal-retention) creates them months ahead; check that it runs (`lojal migrate` creates them too): %w", err)
		}
	}
	return err
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
	// live is this message's row among the contacts, found whatever ask
	// made it: idempotency is per message, not per ask.
	var live *Decided
	keySince := minTime
	if !r.FirstAsked.IsZero() {
		keySince = minT(r.FirstAsked, r.Now).Add(-clockSkew)
	}
	t := s.timeouts
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.q.DecideTimeouts, pgInterval(t.Lock), pgInterval(t.Statement), pgInterval(t.Idle))
	b.Queue(s.q.LockCustomer, r.CustomerID)
	b.Queue(s.q.Relationship, r.CustomerID).QueryRow(func(row pgx.Row) error {
		var attrs, consent []byte
		var suppressed string
		var pushSubs int64
		c := &snap.Customer
		err := row.Scan(&c.ID, &c.Email, &c.Locale, &c.Timezone, &c.PreferredChannel, &attrs, &consent, &suppressed, &pushSubs)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		entries, err := decodeCustomerJSON(c, attrs, consent)
		if err != nil {
			return err
		}
		snap.Relationship = relationship(*c, policy.Reason(suppressed), pushSubs)
		snap.Relationship.Consent = entries
		return nil
	})
	b.Queue(s.q.ConversationState, r.CustomerID).QueryRow(func(row pgx.Row) error {
		var c policy.Conversation
		var answered *time.Time
		err := row.Scan(&c.OpenedAt, &answered)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if answered != nil {
			c.AnsweredAt = *answered
		}
		snap.Relationship.Conversation = &c
		return nil
	})
	b.Queue(s.q.LastEngaged, r.CustomerID).QueryRow(func(row pgx.Row) error {
		var at *time.Time
		if err := row.Scan(&at); err != nil {
			return err
		}
		if at != nil {
			snap.Relationship.LastEngaged = *at
		}
		return nil
	})
	b.Queue(monthBounds(s.sqls[s.q.LedgerByKey], keySince, r.Now), r.IdempotencyKey, keySince).QueryRow(func(row pgx.Row) error {
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
	b.Queue(monthBounds(s.sqls[s.q.ContactWindow], r.Now.Add(-lookback-ContactSlack), r.Now), r.CustomerID, r.Now.Add(-lookback), r.Now, r.Now.Add(-lookback-ContactSlack)).Query(func(rows pgx.Rows) error {
		var c policy.Contact
		var key string
		var reason policy.Reason
		_, err := pgx.ForEachRow(rows, []any{&c.At, &c.Channel, &c.Purpose, &c.Key, &c.Critical, &key, &reason}, func() error {
			snap.Window = append(snap.Window, c)
			if c.Key == r.RequestKey && live == nil {
				live = &Decided{Decision: policy.Decision{Verdict: policy.Allow, Reason: reason, Channel: c.Channel}, Key: key, Replayed: true}
			}
			return nil
		})
		return err
	})
	b.Queue(s.q.WaitingForCustomer, r.CustomerID).Query(func(rows pgx.Rows) error {
		var w policy.Waiting
		_, err := pgx.ForEachRow(rows, []any{&w.Key, &w.Priority, &w.Since, &w.Due, &w.Reason}, func() error {
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
		out = Decided{Decision: *prior, Key: r.IdempotencyKey, Replayed: true}
		_, err = conn.Exec(ctx, "COMMIT")
		return out, err
	case live != nil:
		// An earlier ask of this message was allowed and is still live:
		// this ask is the same message (the send activity timed out after
		// it went out, say), not a new one.
		out = *live
		_, err = conn.Exec(ctx, "COMMIT")
		return out, err
	}
	d := decide(snap)
	out = Decided{Decision: d, Key: r.IdempotencyKey}
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
	messageID := ""
	switch d.Verdict {
	case policy.Defer:
		deferUntil = &d.Until
	case policy.Allow:
		// The reservation ends when the customer's quiet hours begin, if
		// that is sooner: a message held up on its send queue past then
		// asks again rather than going out at night.
		exp := r.Now.Add(r.ReservationTTL)
		if !d.SendBy.IsZero() && d.SendBy.Before(exp) {
			exp = d.SendBy
		}
		contactedAt, expiresAt, messageID = &r.Now, &exp, r.MessageID
	}
	b := &pgx.Batch{}
	b.Queue(s.q.InsertDecision, r.IdempotencyKey, r.RequestKey, r.CustomerID, r.WorkflowID, r.JourneyID, r.Version, r.StepID,
		r.Template, channel, r.Topic, r.Purpose, r.Priority.String(), string(d.Verdict), string(d.Reason), detail, status,
		r.Now, deferUntil, contactedAt, expiresAt, messageID)
	if d.Verdict == policy.Defer {
		b.Queue(s.q.UpsertWaiting, r.RequestKey, r.CustomerID, int(r.Priority), r.FirstAsked, d.Until, r.WorkflowID, r.RunID, string(d.Reason))
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

// Delivery is a reservation about to be sent, or being sent.
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
	// Attempt is the number of the latest attempt to send.
	Attempt int
	// Error is the reason recorded with the status.
	Error string
}

// span is a range of decision times a statement about one message reads.
// A message being sent was decided minutes ago, so each such statement
// reads the months around now first (recent), and every month (always)
// only when that finds nothing: exact, and one partition in the usual case.
type span struct{ from, to time.Time }

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	always  = span{minTime, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}
)

func recent() span {
	now := time.Now()
	return span{now.Add(-2 * clockSkew), now.Add(2 * clockSkew)}
}

// recentFirst runs f on the recent span and, when it finds nothing, on
// every month.
func recentFirst(f func(span) (found bool, err error)) error {
	found, err := f(recent())
	if err != nil || found {
		return err
	}
	_, err = f(always)
	return err
}

// monthBounds writes into a query on the ledger the months that can hold
// decisions taken from from to to, as constants: the start of from's UTC
// month, and the start of the month after to plus twice clockSkew (a
// worker whose clock runs ahead may have decided a little "later"). The
// query's own parameters still bound the rows exactly; the constants only
// let Postgres prune the other months when it plans, so that it neither
// opens nor locks them. With parameters alone, a custom plan opens every
// month from the bound on (the months ahead too), and a generic plan
// locks every partition each time it runs, past the 16 locks a backend
// takes on the fast path: on a ledger of a year, decisions spent more
// time planning and locking than reading. The query text changes once a
// month, so a pooled connection prepares it again then.
//
// A from before the first month of any ledger (minTime) leaves the lower
// bound open.
func monthBounds(query string, from, to time.Time) string {
	lo := "'-infinity'"
	if from.After(minTime) {
		f := from.UTC()
		lo = "'" + time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339) + "'"
	}
	t := to.Add(2 * clockSkew).UTC()
	hi := "'" + time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339) + "'"
	query = strings.Replace(query, "/*months_from*/'-infinity'", lo, 1)
	return strings.Replace(query, "/*months_to*/'infinity'", hi, 1)
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Delivery loads the reservation for an idempotency key.
func (s *Store) Delivery(ctx context.Context, key string) (Delivery, error) {
	var d Delivery
	var exp *time.Time
	err := recentFirst(func(sp span) (bool, error) {
		err := s.pool.QueryRow(ctx, s.q.DeliveryByKey, key, sp.from, sp.to).Scan(&d.Status, &d.CustomerID, &d.JourneyID, &d.StepID, &d.Template,
			&d.Channel, &d.Topic, &exp, &d.MessageID, &d.WorkflowID, &d.Attempt, &d.Error)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return true, err
	})
	if err == nil && d.Status == "" {
		err = pgx.ErrNoRows
	}
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

// Sending is what an attempt is about to send.
type Sending struct {
	MessageID string
	Address   string
	Locale    string
	Subject   string
}

// BeginSend starts an attempt to send a reserved message (or to take over
// from an attempt that died before handing it over) and returns the
// attempt's number, which every later write of the attempt names.
func (s *Store) BeginSend(ctx context.Context, key string, m Sending) (int, error) {
	var attempt int
	err := recentFirst(func(sp span) (bool, error) {
		err := s.pool.QueryRow(ctx, s.q.BeginSend, key, m.MessageID, m.Address, m.Locale, m.Subject, sp.from, sp.to).Scan(&attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return true, err
	})
	if err == nil && attempt == 0 {
		return 0, s.conflict(ctx, "begin send", key)
	}
	if err != nil {
		return 0, fmt.Errorf("begin send %s: %w", key, err)
	}
	return attempt, nil
}

// MarkUncertain records that the server may have the message: it was
// handed over in full (or is about to be) and no answer has come back.
func (s *Store) MarkUncertain(ctx context.Context, key string, attempt int, at time.Time, reason string) error {
	return s.update(ctx, "mark uncertain", key, s.q.MarkUncertain, key, attempt, reason, at)
}

// MarkSent records that the server took the message.
func (s *Store) MarkSent(ctx context.Context, key string, attempt int, at time.Time) error {
	return s.update(ctx, "mark sent", key, s.q.MarkSent, key, attempt, at)
}

// MarkRefused records an explicit refusal of a message that was handed
// over: retry puts it back to reserved for another attempt, otherwise it
// failed with the server's reason.
func (s *Store) MarkRefused(ctx context.Context, key string, attempt int, retry bool, reason string) error {
	status := "failed"
	if retry {
		status = "reserved"
	}
	return s.update(ctx, "mark refused", key, s.q.MarkRefused, key, attempt, status, reason)
}

// Release gives back a reservation that will not be sent, or was not handed
// over (status released, or failed with the error), so it no longer counts
// against caps.
func (s *Store) Release(ctx context.Context, key, status, reason string) error {
	if status != "released" && status != "failed" {
		return fmt.Errorf("release %s: bad status %q", key, status)
	}
	return s.update(ctx, "release", key, s.q.MarkFailed, key, status, reason)
}

// update runs a status change of one message (args, then the span it
// reads) and turns one that changed no row into ErrLedgerConflict, naming
// the state the row is really in.
func (s *Store) update(ctx context.Context, op, key, query string, args ...any) error {
	var changed bool
	err := recentFirst(func(sp span) (bool, error) {
		tag, err := s.pool.Exec(ctx, query, append(args, sp.from, sp.to)...)
		changed = err == nil && tag.RowsAffected() > 0
		return changed, err
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	if !changed {
		return s.conflict(ctx, op, key)
	}
	return nil
}

func (s *Store) conflict(ctx context.Context, op, key string) error {
	var status string
	err := recentFirst(func(sp span) (bool, error) {
		err := s.pool.QueryRow(ctx, s.q.LedgerStatus, key, sp.from, sp.to).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return true, err
	})
	if err == nil && status == "" {
		err = pgx.ErrNoRows
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s %s: %w: no such message", op, key, ErrLedgerConflict)
	case err != nil:
		return fmt.Errorf("%s %s: %w (reading its status: %v)", op, key, ErrLedgerConflict, err)
	}
	return fmt.Errorf("%s %s: %w: it is %s", op, key, ErrLedgerConflict, status)
}

// PushDelivery is the state of one push subscription's request for one
// message.
type PushDelivery struct {
	// Status is sending, sent, uncertain, retry, failed or gone.
	Status string
	Error  string
	// RetryAfter is when a subscription that asked to wait may be tried
	// again.
	RetryAfter time.Time
}

// PushDeliveries returns the per-subscription states of a push message.
func (s *Store) PushDeliveries(ctx context.Context, key string) (map[int64]PushDelivery, error) {
	rows, err := s.pool.Query(ctx, s.q.PushDeliveries, key)
	if err != nil {
		return nil, fmt.Errorf("push deliveries %s: %w", key, err)
	}
	out := map[int64]PushDelivery{}
	var id int64
	var d PushDelivery
	var after *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &d.Status, &d.Error, &after}, func() error {
		d.RetryAfter = time.Time{}
		if after != nil {
			d.RetryAfter = *after
		}
		out[id] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("push deliveries %s: %w", key, err)
	}
	return out, nil
}

// RecordPush records one subscription's state for a message. A final
// state is never overwritten: recording another state over one is
// ErrLedgerConflict, recording it again as it is lands.
func (s *Store) RecordPush(ctx context.Context, key string, subscription int64, d PushDelivery) error {
	tag, err := s.pool.Exec(ctx, s.q.RecordPush, key, subscription, d.Status, d.Error, nullTime(d.RetryAfter))
	if err != nil {
		return fmt.Errorf("record push %s to subscription %d: %w", key, subscription, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record push %s to subscription %d as %s: %w: its state is final", key, subscription, d.Status, ErrLedgerConflict)
	}
	return nil
}

// OrphanedPushSends marks uncertain the requests of a message that an
// earlier attempt started and never finished, and returns how many.
func (s *Store) OrphanedPushSends(ctx context.Context, key, reason string) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.q.OrphanedPushSends, key, reason)
	if err != nil {
		return 0, fmt.Errorf("orphaned push sends %s: %w", key, err)
	}
	return tag.RowsAffected(), nil
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

// History returns every decision about a customer the ledger still holds
// (see docs/retention.md), oldest first.
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
	// Status is sent, or uncertain (the server may have it).
	Status string
	// MessageID is the Message-ID lojal gave it (email).
	MessageID string
}

// SentSince lists messages sent (or possibly delivered) since t.
func (s *Store) SentSince(ctx context.Context, t time.Time) ([]Sent, error) {
	rows, err := s.pool.Query(ctx, s.q.RecentSent, t, t.Add(-ContactSlack))
	if err != nil {
		return nil, fmt.Errorf("sent since %s: %w", t, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Sent, error) {
		var m Sent
		err := row.Scan(&m.CustomerID, &m.JourneyID, &m.StepID, &m.Channel, &m.SentAt, &m.Subject, &m.Address, &m.Locale, &m.Status, &m.MessageID)
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
	// Caps counts the decisions by the effective caps they were taken
	// at, lowest halvings first: level 0 (caps in full) and each level
	// adaptive pressure lowered them to. Lowered is how many customers had
	// a decision at lowered caps.
	Caps    []CapLevel
	Lowered int
	// Spam is the complaint rate per day, for days with deliveries or
	// complaints.
	Spam []SpamDay
}

// SpamDay is one UTC day's emails delivered and complaints received.
type SpamDay struct {
	Day time.Time
	Spam
}

// Spam is emails delivered (sent or uncertain) and complaints received
// over a period.
type Spam struct {
	Delivered  int
	Complaints int
}

// PerThousand is complaints per 1,000 delivered emails (0 with none
// delivered).
func (s Spam) PerThousand() float64 {
	if s.Delivered == 0 {
		return 0
	}
	return 1000 * float64(s.Complaints) / float64(s.Delivered)
}

// spamSlack bounds how long before its delivery an email was decided,
// for the spam-rate gauge, which every API replica reads every minute:
// ContactSlack's week would make each read scan eight days of the ledger
// for one day's deliveries. A message goes within its reservation or not
// at all (minutes, see ContactSlack); a day is margin enough.
const spamSlack = 24 * time.Hour

// SpamSince counts emails delivered and complaints received since t.
func (s *Store) SpamSince(ctx context.Context, t time.Time) (Spam, error) {
	var sp Spam
	if err := s.pool.QueryRow(ctx, s.q.SpamSince, t, t.Add(-spamSlack)).Scan(&sp.Delivered, &sp.Complaints); err != nil {
		return sp, fmt.Errorf("spam rate: %w", err)
	}
	return sp, nil
}

// Held counts deferrals or suppressions for one reason.
type Held struct {
	Decision string
	Reason   string
	Count    int
}

// CapLevel is how many decisions of a period were taken at one level of
// effective caps, and for how many customers.
type CapLevel struct {
	// Halvings is how many times adaptive pressure halved the caps (0:
	// the caps in full; policy.ScaleWord names each level).
	Halvings int
	// Decisions is how many decisions were taken at this level.
	Decisions int
	// Customers is how many customers had a decision at this level (a
	// customer whose caps changed in the period counts at each of its
	// levels). Left 0 at level 0: everyone else is there (Pressure.Lowered).
	Customers int
}

// reportSettings are the settings of a report's transaction (its own;
// the server's defaults are unchanged): enough memory to count per
// customer and week without spilling to disk (about 110 MB of hash table
// for 700,000 customer-weeks; a larger ledger spills, and is only
// slower); no JIT compilation, which costs 0.1-0.2 s a query and pays off
// only on far larger scans; plans made for the period asked (a generic
// plan guesses at it); and a tenth of the default charge for passing a
// row from a parallel worker, which otherwise keeps Postgres from
// splitting these scans of a million small rows across workers (the
// three passes of a 28-day report over 10M rows: 1.2 s instead of 1.7 s).
const reportSettings = "SELECT set_config('work_mem', '128MB', true), set_config('jit', 'off', true), " +
	"set_config('plan_cache_mode', 'force_custom_plan', true), set_config('parallel_tuple_cost', '0.01', true)"

// Pressure summarises messages per customer per week, emails and
// complaints per day, held-back decisions by reason and the effective
// caps decisions were taken at, between from and to: one read-only
// transaction, so every count is of the same moment.
func (s *Store) Pressure(ctx context.Context, from, to time.Time) (Pressure, error) {
	p := Pressure{From: from, To: to, PerWeek: map[int]int{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, reportSettings); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, s.q.CountCustomers).Scan(&p.Customers); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, s.q.PressurePerWeek, from, to, from.Add(-ContactSlack))
		if err != nil {
			return err
		}
		var n, count int
		covered := 0
		if _, err := pgx.ForEachRow(rows, []any{&n, &count}, func() error {
			p.PerWeek[n] = count
			covered += count
			return nil
		}); err != nil {
			return err
		}
		p.Weeks = int((to.Sub(from) + 7*24*time.Hour - 1) / (7 * 24 * time.Hour))
		if zero := p.Customers*p.Weeks - covered; zero > 0 {
			p.PerWeek[0] = zero
		}
		rows, err = tx.Query(ctx, s.q.SpamPerDay, from, to, from.Add(-ContactSlack))
		if err != nil {
			return err
		}
		var d SpamDay
		if _, err := pgx.ForEachRow(rows, []any{&d.Day, &d.Delivered, &d.Complaints}, func() error {
			p.Spam = append(p.Spam, d)
			return nil
		}); err != nil {
			return err
		}
		return s.decisionsByCaps(ctx, tx, &p)
	})
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	return p, nil
}

// decisionsByCaps fills in the held-back decisions and the effective caps
// from one pass over the decisions of the period.
func (s *Store) decisionsByCaps(ctx context.Context, tx pgx.Tx, p *Pressure) error {
	held := map[Held]int{}
	levels := map[int]*CapLevel{}
	level := func(h int) *CapLevel {
		if levels[h] == nil {
			levels[h] = &CapLevel{Halvings: h}
		}
		return levels[h]
	}
	rows, err := tx.Query(ctx, s.q.DecisionsByCaps, p.From, p.To)
	if err != nil {
		return err
	}
	var grouping, h, count int
	var decision, reason string
	if _, err := pgx.ForEachRow(rows, []any{&grouping, &decision, &reason, &h, &count}, func() error {
		switch grouping {
		case 1: // decisions by decision, reason and level
			level(h).Decisions += count
			if decision != string(policy.Allow) {
				held[Held{Decision: decision, Reason: reason}] += count
			}
		case 12: // customers at each level (none counted at level 0)
			if h > 0 {
				level(h).Customers = count
			}
		case 14: // customers at any lowered level
			p.Lowered = count
		}
		return nil
	}); err != nil {
		return err
	}
	for h, c := range held {
		p.Held = append(p.Held, Held{Decision: h.Decision, Reason: h.Reason, Count: c})
	}
	slices.SortFunc(p.Held, func(a, b Held) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Decision, b.Decision), cmp.Compare(a.Reason, b.Reason))
	})
	for _, l := range levels {
		p.Caps = append(p.Caps, *l)
	}
	slices.SortFunc(p.Caps, func(a, b CapLevel) int { return cmp.Compare(a.Halvings, b.Halvings) })
	return nil
}

// HandOver is the hand-over of one message to the server that delivers
// it: the record that the server may have the message leaves the process
// together with the message (see PrepareHandOver). For an email the
// record is that it is uncertain, and the final "." of DATA follows it;
// for a push request, that the request to one subscription is under way,
// and the request's body follows it.
type HandOver struct {
	s       *Store
	conn    *pgxpool.Conn
	key     string
	attempt int
	// sp is the span the message was found in: the months its record
	// must be written to.
	sp span
	// answer has Postgres' answer to the record once it is read (send).
	answer chan error
	// cancel ends the record's own context (send).
	cancel context.CancelFunc
	// unchanged is the error of a record that changed no row.
	unchanged func() error
}

// handOverRecordTime bounds how long a hand-over record may take to be
// stored once the message has left with it. Past it, pgx closes the
// connection and Postgres cancels the record: the next attempt, finding
// none, sends the message again (docs/delivery.md).
const handOverRecordTime = 15 * time.Second

// PrepareHandOver checks, just before a message is handed over (the final
// "." of an email, the body of a push request), that the attempt still
// owns the message (an attempt given up for dead finds its number stale
// and must not hand the message over) and that its reservation still
// holds at now (ErrReservationOver: the SMTP session or the push request
// may have begun in time and reached its end after), and holds a
// connection for the hand-over record. Release it with Wait, or Abandon.
func (s *Store) PrepareHandOver(ctx context.Context, key string, attempt int, now time.Time) (*HandOver, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("hand over %s: %w", key, err)
	}
	var status string
	var current int
	var expires *time.Time
	var found span
	err = recentFirst(func(sp span) (bool, error) {
		err := conn.QueryRow(ctx, s.q.SendAttempt, key, sp.from, sp.to).Scan(&status, &current, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		found = sp
		return true, err
	})
	if err == nil && status == "" {
		err = pgx.ErrNoRows
	}
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("hand over %s: %w", key, err)
	}
	if status != "sending" || current != attempt {
		conn.Release()
		return nil, fmt.Errorf("hand over %s (attempt %d): %w: it is %s by attempt %d", key, attempt, ErrLedgerConflict, status, current)
	}
	if expires != nil && !now.Before(*expires) {
		conn.Release()
		return nil, fmt.Errorf("hand over %s at %s: %w at %s", key, now.UTC().Format(time.RFC3339), ErrReservationOver, expires.UTC().Format(time.RFC3339))
	}
	return &HandOver{s: s, conn: conn, key: key, attempt: attempt, sp: found}, nil
}

// Send writes the record that the message is uncertain (handed over, no
// answer yet) to Postgres without waiting for the answer. The caller
// writes the final "." right after: both leave the process back to back,
// and a process killed after both still has the kernel deliver both, so
// the record is in Postgres whenever the server may have the message. It
// fails when the record could not be written to the connection: then the
// "." must not follow.
func (h *HandOver) Send(ctx context.Context, at time.Time, reason string) error {
	h.unchanged = func() error { return h.s.conflict(context.Background(), "mark uncertain", h.key) }
	err := h.send(ctx, statement{h.s.q.MarkUncertain, []any{h.key, h.attempt, reason, at, h.sp.from, h.sp.to}})
	if err != nil {
		return fmt.Errorf("mark uncertain %s: %w", h.key, err)
	}
	return nil
}

// SendPush writes the record that the push request to subscription is
// leaving (sending, as RecordPush) to Postgres without waiting for the
// answer, as Send does for an email; the caller writes the request's body
// right after. The record's transaction also holds the message's ledger
// row (hold-send), so that the next attempt waits for it rather than send
// to the device again while it is on its way. It fails when the record
// could not be written to the connection: then the body must not follow.
func (h *HandOver) SendPush(ctx context.Context, subscription int64) error {
	h.unchanged = func() error {
		return fmt.Errorf("record push %s to subscription %d as sending: %w: the attempt no longer owns it, or its state is final", h.key, subscription, ErrLedgerConflict)
	}
	err := h.send(ctx,
		statement{h.s.q.HoldSend, []any{h.key, h.attempt, h.sp.from, h.sp.to}},
		statement{h.s.q.RecordPush, []any{h.key, subscription, "sending", "", nil}})
	if err != nil {
		return fmt.Errorf("record push %s to subscription %d as sending: %w", h.key, subscription, err)
	}
	return nil
}

// statement is one prepared statement of a hand-over record and its
// arguments: strings, ints, times or nil.
type statement struct {
	name string
	args []any
}

// send writes the statements, prepared on every connection, on the
// connection's own pipeline: bound, run and flushed in one write, one
// implicit transaction, with no round trip first (pgx's batch may make
// one, and does not say whether its write left). The flush says whether
// they left. They run under a context of their own: the message leaves
// with them, so they must land even when the attempt's time runs out or
// the attempt is cancelled meanwhile; cancelled, pgx would cancel them,
// and the next attempt, finding no record, would send the message again.
// Postgres' answer is read as soon as it comes, and the connection goes
// back to the pool then, not once the server's answer came too.
func (h *HandOver) send(ctx context.Context, stmts ...statement) error {
	ctx, h.cancel = context.WithTimeout(context.WithoutCancel(ctx), handOverRecordTime)
	p := h.conn.Conn().PgConn().StartPipeline(ctx)
	for _, st := range stmts {
		params := make([][]byte, len(st.args))
		for i, a := range st.args {
			params[i] = textParam(a)
		}
		p.SendQueryPrepared(st.name, params, nil, nil)
	}
	if err := p.Sync(); err != nil {
		_ = p.Close()
		return err
	}
	h.answer = make(chan error, 1)
	go func() {
		defer h.release()
		h.answer <- h.read(p, len(stmts))
	}()
	return nil
}

// textParam writes a statement's argument in Postgres' text format. A
// time keeps the microseconds pgx's binary format would (Postgres would
// round a finer fraction instead).
func textParam(a any) []byte {
	switch v := a.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case int:
		return strconv.AppendInt(nil, int64(v), 10)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case time.Time:
		return v.UTC().Truncate(time.Microsecond).AppendFormat(nil, "2006-01-02T15:04:05.999999Z07:00")
	}
	panic(fmt.Sprintf("store: hand-over argument of type %T", a))
}

// Wait returns Postgres' answer to Send or SendPush, once, and the
// connection is released by then. Every statement of the record must
// have changed (or locked) its row.
func (h *HandOver) Wait() error {
	if h.answer == nil {
		h.release()
		return nil
	}
	return <-h.answer
}

// read reads the answers to a record of n statements.
func (h *HandOver) read(p *pgconn.Pipeline, n int) error {
	var err error
	unchanged := false
	for range n {
		var res any
		if res, err = p.GetResults(); err != nil {
			break
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			err = fmt.Errorf("unexpected pipeline result %T", res)
			break
		}
		var tag pgconn.CommandTag
		if tag, err = rr.Close(); err != nil {
			break
		}
		unchanged = unchanged || tag.RowsAffected() == 0
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hand-over record %s: %w", h.key, err)
	}
	if unchanged {
		return h.unchanged()
	}
	return nil
}

// Abandon releases the connection of a hand-over that did not happen (or
// waits for the record of one that did).
func (h *HandOver) Abandon() {
	_ = h.Wait()
}

func (h *HandOver) release() {
	if h.cancel != nil {
		h.cancel()
	}
	h.conn.Release()
}
