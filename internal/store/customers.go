package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// ErrNotFound is returned when a customer (or other row) does not exist.
var ErrNotFound = errors.New("not found")

// UpsertResult says what an upsert changed.
type UpsertResult struct {
	Created bool
	// Previous is the customer as it was before, when it existed.
	Previous *journey.Customer
	// Events are the events the upsert stored (UpsertCustomerWith).
	Events []journey.Event
}

// UpsertCustomer creates or replaces a customer and records the changes
// of their consent and topic opt-outs in the consent ledger, in one
// transaction; consentSource names who sent them (the ledger's actor).
// c must already be validated against the schema. Consent for channels
// not in c.Consent, and topic opt-outs when c.TopicsOptedOut is nil, are
// kept as they were.
func (s *Store) UpsertCustomer(ctx context.Context, c journey.Customer, consentSource string) (UpsertResult, error) {
	return s.UpsertCustomerWith(ctx, c, consentSource, nil)
}

// Entries says, from the customer as they were before an upsert (nil for a
// new customer), which events the upsert causes: segment-entry events for
// the journeys whose audience the customer just entered.
type Entries func(previous *journey.Customer) ([]journey.Event, error)

// UpsertCustomerWith is UpsertCustomer that also stores, in the same
// transaction, the events entries returns: a customer who enters a segment
// is never stored without the event that starts the segment's journey.
// The stored events are in UpsertResult.Events.
func (s *Store) UpsertCustomerWith(ctx context.Context, c journey.Customer, consentSource string, entries Entries) (UpsertResult, error) {
	var res UpsertResult
	attrs, err := json.Marshal(nonNilMap(c.Attributes))
	if err != nil {
		return res, fmt.Errorf("upsert customer %s: encode attributes: %w", c.ID, err)
	}
	// nil (left out) keeps the stored opt-outs; an empty list clears them.
	prefs := Preferences{Consent: c.Consent, OptedOut: c.TopicsOptedOut, Sync: true}
	capture := Capture{Source: policy.SourceAPI, Actor: consentSource, Locale: c.Locale, At: time.Now(),
		Wording: func(policy.ConsentEntry) (string, string) { return "", "customer update" }}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var oldAttrs []byte
		var oldEmail, oldLocale, oldTZ *string
		err := tx.QueryRow(ctx, s.q.UpsertCustomer, c.ID, c.Email, c.Locale, c.Timezone, c.PreferredChannel, attrs).
			Scan(&oldAttrs, &oldEmail, &oldLocale, &oldTZ)
		if err != nil {
			return err
		}
		if oldAttrs == nil {
			res.Created = true
		} else {
			prev := journey.Customer{ID: c.ID, Email: deref(oldEmail), Locale: deref(oldLocale), Timezone: deref(oldTZ)}
			if err := json.Unmarshal(oldAttrs, &prev.Attributes); err != nil {
				return fmt.Errorf("decode previous attributes: %w", err)
			}
			res.Previous = &prev
		}
		if res.Created || len(prefs.Consent) > 0 || prefs.OptedOut != nil {
			_, err := s.appendConsent(ctx, tx, c.ID, func(_ pgx.Tx, current []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
				var erased []policy.ConsentEntry
				if res.Created {
					// A ledger for an id that had no customer is an erased
					// customer's (their evidence is kept for its
					// retention): a new customer under the same id does
					// not inherit their consent.
					erased = afterErasure(current, capture)
					current = append(slices.Clone(current), erased...)
				}
				return append(erased, prefs.changes(current, capture)...), nil
			})
			if err != nil {
				return fmt.Errorf("record consent: %w", err)
			}
		}
		if entries == nil {
			return nil
		}
		evs, err := entries(res.Previous)
		if err != nil {
			return err
		}
		for _, e := range evs {
			data, err := json.Marshal(nonNilMap(e.Data))
			if err != nil {
				return err
			}
			var inserted, known bool
			var dispatched *bool
			if err := tx.QueryRow(ctx, s.q.InsertEvent, e.ID, e.Type, e.CustomerID, e.At, data).Scan(&inserted, &dispatched, &known); err != nil {
				return fmt.Errorf("store event %s: %w", e.ID, err)
			}
			if !known {
				return fmt.Errorf("store event %s: customer %s: %w", e.ID, e.CustomerID, ErrNotFound)
			}
			if inserted {
				res.Events = append(res.Events, e)
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("upsert customer %s: %w", c.ID, err)
	}
	return res, nil
}

// Customer loads a customer with their consent.
func (s *Store) Customer(ctx context.Context, id string) (journey.Customer, error) {
	c, _, err := s.CustomerConsent(ctx, id)
	return c, err
}

// CustomerConsent loads a customer with their consent ledger, in one
// query.
func (s *Store) CustomerConsent(ctx context.Context, id string) (journey.Customer, []policy.ConsentEntry, error) {
	return s.loadCustomer(ctx, s.q.GetCustomer, id)
}

// CustomerToSend is CustomerConsent for a message about to go out, with
// the suppression reason of the customer's email address ("" when it is
// not suppressed).
func (s *Store) CustomerToSend(ctx context.Context, id string) (journey.Customer, []policy.ConsentEntry, string, error) {
	var suppressed string
	c, entries, err := s.loadCustomer(ctx, s.q.GetCustomerToSend, id, &suppressed)
	return c, entries, suppressed, err
}

// loadCustomer runs query, which reads get-customer's columns and then
// those more scans, for customer id.
func (s *Store) loadCustomer(ctx context.Context, query, id string, more ...any) (journey.Customer, []policy.ConsentEntry, error) {
	var c journey.Customer
	var attrs, consent []byte
	dest := append([]any{&c.ID, &c.Email, &c.Locale, &c.Timezone, &c.PreferredChannel, &attrs, &consent}, more...)
	err := s.pool.QueryRow(ctx, query, id).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, nil, fmt.Errorf("load customer %s: %w", id, err)
	}
	entries, err := decodeCustomerJSON(&c, attrs, consent)
	if err != nil {
		return c, nil, fmt.Errorf("load customer %s: %w", id, err)
	}
	return c, entries, nil
}

// afterErasure returns the entries that start a customer created under
// the id of an erased one afresh: a withdrawal on each channel the erased
// customer had consent, a soft opt-in or a withdrawal of their own on, and
// a withdrawal of each topic they had opted out of themselves. Recorded by
// the API, not by the customer, these bind the new customer to nothing
// another system cannot change: a sync may grant consent or lift an
// opt-out (Preferences.Sync), which the erased customer's own withdrawals
// would have stopped.
func afterErasure(erased []policy.ConsentEntry, c Capture) []policy.ConsentEntry {
	// (ownWithdrawalStands knows these entries by CreatedAgain.)
	reset := func(e policy.ConsentEntry) policy.ConsentEntry {
		e.Wording, e.WordingVersion = "", CreatedAgain
		e.Evidence = "a customer with this id was erased; consent given before the erasure does not carry over"
		return e
	}
	var out []policy.ConsentEntry
	for _, ch := range []string{policy.Email, policy.Push} {
		if _, granted := policy.ChannelConsent(erased, ch); granted || softOptIns(erased, ch) || ownWithdrawalStands(erased, ch) {
			out = append(out, reset(c.entry(ch, policy.AllTopics, policy.Withdraw)))
		}
	}
	for _, t := range policy.TopicsOptedOut(erased) {
		if ownTopicOptOutStands(erased, t) {
			out = append(out, reset(c.entry(policy.AllChannels, t, policy.Withdraw)))
		}
	}
	return out
}

// decodeCustomerJSON decodes a customer's attributes and consent ledger,
// and derives from the ledger the consent and topic opt-outs a customer
// shows: whether they consent to marketing on each channel, and the
// topics opted out of everywhere.
func decodeCustomerJSON(c *journey.Customer, attrs, ledger []byte) ([]policy.ConsentEntry, error) {
	if err := json.Unmarshal(attrs, &c.Attributes); err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	entries, err := decodeEntries(ledger)
	if err != nil {
		return nil, err
	}
	c.Consent, c.TopicsOptedOut = map[string]bool{}, policy.TopicsOptedOut(entries)
	for _, ch := range []string{policy.Email, policy.Push} {
		_, c.Consent[ch] = policy.ChannelConsent(entries, ch)
	}
	return entries, nil
}

// Suppress records that nothing may be sent to an address again.
func (s *Store) Suppress(ctx context.Context, channel, address, reason, detail string) error {
	if _, err := s.pool.Exec(ctx, s.q.SuppressAddress, channel, address, reason, detail); err != nil {
		return fmt.Errorf("suppress %s: %w", address, err)
	}
	return nil
}

// Complain records a complaint about a message: it counts towards the
// spam rate (once per address and message, however often the report
// comes) and suppresses the address.
func (s *Store) Complain(ctx context.Context, channel, address, messageID, detail string) error {
	if _, err := s.pool.Exec(ctx, s.q.RecordComplaint, channel, address, messageID, detail); err != nil {
		return fmt.Errorf("record complaint from %s: %w", address, err)
	}
	return nil
}

// EventState is a stored event's dispatch state.
type EventState struct {
	// New is true when this delivery stored the event for the first time.
	New bool
	// Dispatched is true when an earlier delivery already started or
	// signalled every journey the event concerns.
	Dispatched bool
}

// ErrEventConflict is returned when an event id is reused for a different
// event: another type, customer, time or data.
var ErrEventConflict = errors.New("event id already used for a different event")

// InsertEvent stores an event once; redeliveries report its state.
func (s *Store) InsertEvent(ctx context.Context, e journey.Event) (EventState, error) {
	var st EventState
	data, err := json.Marshal(nonNilMap(e.Data))
	if err != nil {
		return st, fmt.Errorf("insert event %s: encode data: %w", e.ID, err)
	}
	var dispatched *bool
	var known bool
	err = s.pool.QueryRow(ctx, s.q.InsertEvent, e.ID, e.Type, e.CustomerID, e.At, data).Scan(&st.New, &dispatched, &known)
	if err != nil {
		return st, fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	if !known {
		return st, fmt.Errorf("insert event %s: customer %s: %w", e.ID, e.CustomerID, ErrNotFound)
	}
	if !st.New && dispatched == nil {
		return st, fmt.Errorf("insert event %s: %w", e.ID, ErrEventConflict)
	}
	st.Dispatched = dispatched != nil && *dispatched
	return st, nil
}

// MarkDispatched records that an event reached every journey it concerns.
func (s *Store) MarkDispatched(ctx context.Context, eventID string) error {
	if _, err := s.pool.Exec(ctx, s.q.MarkEventDispatch, eventID); err != nil {
		return fmt.Errorf("mark event %s dispatched: %w", eventID, err)
	}
	return nil
}

// Run is a recorded run of a journey for a customer and key.
type Run struct {
	ID         int64
	WorkflowID string
	// RunID is the first run id of the run's Temporal execution chain,
	// once its start was confirmed.
	RunID          string
	StartedAt      time.Time
	TriggerEventID string
	Open           bool
}

// LatestRun returns the latest run, or ErrNotFound.
func (s *Store) LatestRun(ctx context.Context, journeyID, customerID, key string) (Run, error) {
	var r Run
	err := s.pool.QueryRow(ctx, s.q.LatestRun, journeyID, customerID, key).Scan(&r.ID, &r.WorkflowID, &r.RunID, &r.StartedAt, &r.TriggerEventID, &r.Open)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("latest run of %s for %s: %w", journeyID, customerID, err)
	}
	return r, nil
}

// LatestRunOrRecord is LatestRun and, when the customer has no run of
// the journey under key yet, RecordRun, in one round trip. recorded says
// the caller recorded the run (its row is id) and alone may start it;
// otherwise last is the latest run, or ErrNotFound when there is none (the
// entry's run was recorded before: RunByEntry finds it).
func (s *Store) LatestRunOrRecord(ctx context.Context, workflowID, journeyID, version, customerID, key, triggerEventID string) (
	last Run, id int64, recorded bool, err error) {
	var newID, lastID *int64
	var wf, runID, trigger *string
	var started *time.Time
	var open *bool
	err = s.pool.QueryRow(ctx, s.q.LatestRunOrRecord, workflowID, journeyID, version, customerID, key, triggerEventID).
		Scan(&newID, &lastID, &wf, &runID, &started, &trigger, &open)
	if err != nil {
		return last, 0, false, fmt.Errorf("latest run of %s for %s: %w", journeyID, customerID, err)
	}
	if newID != nil {
		return last, *newID, true, nil
	}
	if lastID == nil {
		return last, 0, false, ErrNotFound
	}
	last = Run{ID: *lastID, WorkflowID: deref(wf), RunID: deref(runID), StartedAt: *started, TriggerEventID: deref(trigger), Open: *open}
	return last, 0, false, nil
}

// RecordRun records that a run is being started by an entry (an event, an
// enrolment) and returns its row id. recorded is false when the entry's run
// was recorded before: only the caller that recorded it may start it.
func (s *Store) RecordRun(ctx context.Context, workflowID, journeyID, version, customerID, key, triggerEventID string) (id int64, recorded bool, err error) {
	err = s.pool.QueryRow(ctx, s.q.InsertRun, workflowID, journeyID, version, customerID, key, triggerEventID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("record run %s: %w", workflowID, err)
	}
	return id, true, nil
}

// FinishRun records how a run ended, and gives up the places in the
// customer's line its deferred messages held: they will not ask again.
func (s *Store) FinishRun(ctx context.Context, journeyID, triggerEventID, outcome string) error {
	if _, err := s.pool.Exec(ctx, s.q.FinishRun, journeyID, triggerEventID, outcome); err != nil {
		return fmt.Errorf("finish run: %w", err)
	}
	return nil
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// OpenRun is a run that has not finished.
type OpenRun struct {
	WorkflowID string
	CustomerID string
	Version    string
}

// OpenRuns lists a journey's unfinished runs.
func (s *Store) OpenRuns(ctx context.Context, journeyID string) ([]OpenRun, error) {
	rows, err := s.pool.Query(ctx, s.q.OpenRuns, journeyID)
	if err != nil {
		return nil, fmt.Errorf("open runs of %s: %w", journeyID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OpenRun])
	if err != nil {
		return nil, fmt.Errorf("open runs of %s: %w", journeyID, err)
	}
	return out, nil
}

// PushSubscription is a stored push subscription.
type PushSubscription struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// AddPushSubscription stores (or refreshes) a customer's subscription.
func (s *Store) AddPushSubscription(ctx context.Context, customerID string, p PushSubscription) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, s.q.UpsertPushSub, customerID, p.Kind, p.Endpoint, p.P256dh, p.Auth).Scan(&id)
	if isForeignKeyViolation(err) {
		return 0, fmt.Errorf("add push subscription: customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("add push subscription: %w", err)
	}
	return id, nil
}

// PushSubscriptions lists a customer's subscriptions.
func (s *Store) PushSubscriptions(ctx context.Context, customerID string) ([]PushSubscription, error) {
	rows, err := s.pool.Query(ctx, s.q.PushSubs, customerID)
	if err != nil {
		return nil, fmt.Errorf("push subscriptions of %s: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PushSubscription])
	if err != nil {
		return nil, fmt.Errorf("push subscriptions of %s: %w", customerID, err)
	}
	return out, nil
}

// RemovePushSubscription deletes a subscription the push service says is
// gone.
func (s *Store) RemovePushSubscription(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, s.q.DeletePushSub, id); err != nil {
		return fmt.Errorf("remove push subscription %d: %w", id, err)
	}
	return nil
}
