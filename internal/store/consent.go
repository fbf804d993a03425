package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/policy"
)

// The consent ledger (migrations/010_consent_ledger.sql) is append-only:
// every change of a customer's consent is a new entry, written under the
// customer's lock so it is ordered with every decision about them, and
// the consent the policy sees is derived from the entries.

// ErrConsentRefused wraps what is wrong with an entry a caller asked to
// record.
var ErrConsentRefused = errors.New("consent entry refused")

// Capture says where and by whom entries derived from a change are
// captured, and in which words: Wording returns the text and version the
// customer saw for an entry (empty when there was none).
type Capture struct {
	Source  string
	Actor   string
	Locale  string
	At      time.Time
	Wording func(e policy.ConsentEntry) (text, version string)
	// Evidence is recorded with every entry.
	Evidence string
	// MessageID is the Message-ID of the message whose link the customer
	// used (a one-click unsubscribe), recorded with every entry: reports
	// count the unsubscribe against that message's journey.
	MessageID string
}

func (c Capture) entry(channel, topic string, a policy.ConsentAction) policy.ConsentEntry {
	e := policy.ConsentEntry{Channel: channel, Topic: topic, Action: a, Basis: policy.BasisConsent,
		Source: c.Source, Actor: c.Actor, Locale: c.Locale, At: c.At, Evidence: c.Evidence, MessageID: c.MessageID}
	if c.Wording != nil {
		e.Wording, e.WordingVersion = c.Wording(e)
	}
	return e
}

// Preferences is a customer's choice as a whole: consent per channel and
// the topics they opt out of (nil leaves opt-outs as they are).
type Preferences struct {
	Consent  map[string]bool
	OptedOut []string
	// Sync marks another system's copy of the customer (a customer
	// upsert, a CRM's nightly sync): it withdraws and grants like any
	// change, but does not grant again what the customer withdrew
	// themselves (customersOwn), which only the customer, or consent
	// recorded with its wording, can.
	Sync bool
}

// customersOwn reports whether e is a withdrawal the customer made
// through lojal: an unsubscribe link or the preference centre.
func customersOwn(e policy.ConsentEntry) bool {
	return e.Action == policy.Withdraw && (e.Source == policy.SourceUnsubscribe || e.Source == policy.SourcePreferenceCentre)
}

// CreatedAgain is the wording version that marks the entries starting a
// customer created under an erased customer's id afresh (afterErasure).
// The consent endpoint refuses it: it ends the customer's own withdrawals.
const CreatedAgain = "customer created again"

// ownWithdrawalStands reports whether a withdrawal of marketing on ch the
// customer made themselves (customersOwn) has not been followed by
// consent given since, though other withdrawals may have come after it
// (a support agent's, a CRM's). An erasure ends it: what the erased
// customer withdrew does not bind a new one under the same id.
func ownWithdrawalStands(entries []policy.ConsentEntry, ch string) bool {
	return ownStands(entries, func(e policy.ConsentEntry) bool {
		return e.Topic == policy.AllTopics && (e.Channel == ch || e.Channel == policy.AllChannels)
	})
}

// ownTopicOptOutStands is ownWithdrawalStands for an opt-out of topic on
// every channel.
func ownTopicOptOutStands(entries []policy.ConsentEntry, topic string) bool {
	return ownStands(entries, func(e policy.ConsentEntry) bool { return e.Topic == topic && e.Channel == policy.AllChannels })
}

// ownStands scans the entries about one thing (about) in time order: the
// customer's own withdrawal stands until a grant with the consent basis,
// or an erasure's reset.
func ownStands(entries []policy.ConsentEntry, about func(policy.ConsentEntry) bool) bool {
	stands := false
	for _, e := range policy.InOrder(entries) {
		if !about(e) {
			continue
		}
		switch {
		case customersOwn(e):
			stands = true
		case e.Action == policy.Grant && e.Basis == policy.BasisConsent,
			e.Source == policy.SourceAPI && e.WordingVersion == CreatedAgain:
			stands = false
		}
	}
	return stands
}

// changes returns the entries that bring the ledger to p: only what
// differs from what the entries already say, so a CRM that sends the same
// customer every night records nothing new. Saying "no consent" for a
// channel the customer never consented on records nothing: there is
// nothing to withdraw.
func (p Preferences) changes(current []policy.ConsentEntry, c Capture) []policy.ConsentEntry {
	var out []policy.ConsentEntry
	for _, ch := range slices.Sorted(maps.Keys(p.Consent)) {
		if ch != policy.Email && ch != policy.Push {
			continue
		}
		e, granted := policy.ChannelConsent(current, ch)
		want := p.Consent[ch]
		switch {
		case want && !granted && p.Sync && ownWithdrawalStands(current, ch):
			// A stale copy: the customer's own withdrawal is newer.
		case want && !granted:
			out = append(out, c.entry(ch, policy.AllTopics, policy.Grant))
		case !want && granted, !want && e.Action == "" && softOptIns(current, ch):
			out = append(out, c.entry(ch, policy.AllTopics, policy.Withdraw))
		}
	}
	if p.OptedOut != nil {
		was := policy.TopicsOptedOut(current)
		for _, t := range slices.Sorted(slices.Values(p.OptedOut)) {
			if !slices.Contains(was, t) {
				out = append(out, c.entry(policy.AllChannels, t, policy.Withdraw))
			}
		}
		for _, t := range was {
			if slices.Contains(p.OptedOut, t) {
				continue
			}
			if p.Sync && ownTopicOptOutStands(current, t) {
				continue
			}
			out = append(out, c.entry(policy.AllChannels, t, policy.Grant))
		}
	}
	return out
}

// softOptIns reports whether a soft opt-in was recorded on ch: saying "no"
// to marketing there is then an opt-out that must be recorded.
func softOptIns(entries []policy.ConsentEntry, ch string) bool {
	return slices.ContainsFunc(entries, func(e policy.ConsentEntry) bool { return e.SoftOptInOn(ch) })
}

func decodeEntries(b []byte) ([]policy.ConsentEntry, error) {
	entries := []policy.ConsentEntry{}
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("decode consent ledger: %w", err)
	}
	return entries, nil
}

// ConsentEntries returns one customer's consent ledger, oldest first.
func (s *Store) ConsentEntries(ctx context.Context, customerID string) ([]policy.ConsentEntry, error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, s.q.ConsentEntries, customerID).Scan(&b); err != nil {
		return nil, fmt.Errorf("consent ledger of %s: %w", customerID, err)
	}
	return decodeEntries(b)
}

// RecordConsent appends entries to a customer's consent ledger, after
// checking each (policy.ConsentEntry.Validate), and returns them as stored.
func (s *Store) RecordConsent(ctx context.Context, customerID string, entries []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("record consent: entry %d: %w: %w", i, ErrConsentRefused, err)
		}
	}
	var out []policy.ConsentEntry
	err := s.changeConsent(ctx, customerID, func(pgx.Tx, []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
		return entries, nil
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("record consent: %w", err)
	}
	return out, nil
}

// SetPreferences brings a customer's consent and topic opt-outs to p,
// recording each difference as a ledger entry captured as c says, and
// returns the entries recorded.
func (s *Store) SetPreferences(ctx context.Context, customerID string, p Preferences, c Capture) ([]policy.ConsentEntry, error) {
	var out []policy.ConsentEntry
	err := s.changeConsent(ctx, customerID, func(_ pgx.Tx, current []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
		return p.changes(current, c), nil
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("set preferences: %w", err)
	}
	return out, nil
}

// ErrCustomersOwnWithdrawal refuses a grant without wording over a
// withdrawal the customer made themselves (ownWithdrawalStands).
var ErrCustomersOwnWithdrawal = errors.New("the customer withdrew consent themselves")

// SetConsent records consent for one channel, when it changes. It carries
// no wording: like a sync, it cannot grant again what the customer
// withdrew themselves, and says so (ErrCustomersOwnWithdrawal).
func (s *Store) SetConsent(ctx context.Context, customerID, channel string, granted bool, c Capture) error {
	err := s.changeConsent(ctx, customerID, func(_ pgx.Tx, current []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
		if _, ok := policy.ChannelConsent(current, channel); granted && !ok && ownWithdrawalStands(current, channel) {
			return nil, ErrCustomersOwnWithdrawal
		}
		return Preferences{Consent: map[string]bool{channel: granted}, Sync: true}.changes(current, c), nil
	}, nil)
	if err != nil {
		return fmt.Errorf("set consent: %w", err)
	}
	return nil
}

// Unsubscribe is what a one-click unsubscribe does, whichever way it came
// (the link's POST, or an email to the List-Unsubscribe mailto: address):
// it opts the customer out of the message's topic, or, for a message
// without one, out of marketing on every channel and every topic in
// allTopics.
func (s *Store) Unsubscribe(ctx context.Context, customerID, topic string, allTopics []string, c Capture) error {
	var err error
	if topic != "" {
		err = s.OptOutTopics(ctx, customerID, []string{topic}, c)
	} else {
		err = s.changeConsent(ctx, customerID, func(_ pgx.Tx, current []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
			out := []policy.ConsentEntry{c.entry(policy.AllChannels, policy.AllTopics, policy.Withdraw)}
			return append(out, Preferences{OptedOut: union(policy.TopicsOptedOut(current), allTopics)}.changes(current, c)...), nil
		}, nil)
	}
	if err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// OptOutTopics opts a customer out of topics they are not yet opted out of.
func (s *Store) OptOutTopics(ctx context.Context, customerID string, topics []string, c Capture) error {
	err := s.changeConsent(ctx, customerID, func(_ pgx.Tx, current []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
		return Preferences{OptedOut: union(policy.TopicsOptedOut(current), topics)}.changes(current, c), nil
	}, nil)
	if err != nil {
		return fmt.Errorf("opt out: %w", err)
	}
	return nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// changeConsent appends the entries f derives from the customer's ledger,
// in one transaction under the customer's lock: a decision about the
// customer sees all of them or none, and two changes at once cannot both
// read the same ledger and record the same difference twice.
func (s *Store) changeConsent(ctx context.Context, customerID string, f func(pgx.Tx, []policy.ConsentEntry) ([]policy.ConsentEntry, error), stored *[]policy.ConsentEntry) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, s.q.CustomerExists, customerID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("customer %s: %w", customerID, ErrNotFound)
		}
		out, err := s.appendConsent(ctx, tx, customerID, f)
		if stored != nil {
			*stored = out
		}
		return err
	})
}

// appendConsent is changeConsent inside a transaction the caller holds.
func (s *Store) appendConsent(ctx context.Context, tx pgx.Tx, customerID string, f func(pgx.Tx, []policy.ConsentEntry) ([]policy.ConsentEntry, error)) ([]policy.ConsentEntry, error) {
	if _, err := tx.Exec(ctx, s.q.LockCustomer, customerID); err != nil {
		return nil, err
	}
	var b []byte
	if err := tx.QueryRow(ctx, s.q.ConsentEntries, customerID).Scan(&b); err != nil {
		return nil, err
	}
	current, err := decodeEntries(b)
	if err != nil {
		return nil, err
	}
	entries, err := f(tx, current)
	if err != nil {
		return nil, err
	}
	out := make([]policy.ConsentEntry, 0, len(entries))
	for _, e := range entries {
		err := tx.QueryRow(ctx, s.q.InsertConsentEntry, customerID, e.Channel, e.Topic, string(e.Action), string(e.Basis),
			e.Wording, e.WordingVersion, e.Locale, e.At, e.Source, e.Actor, e.Evidence, e.SaleID, nullTime(e.SaleAt), e.ProductGroup, e.MessageID).
			Scan(&e.ID, &e.RecordedAt)
		if err != nil {
			return nil, fmt.Errorf("append %s %s/%s: %w", e.Action, e.Channel, e.Topic, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ConsentRequest is a double opt-in: consent asked for, waiting for the
// customer to confirm it through the link sent to their address.
type ConsentRequest struct {
	ID             int64     `json:"id"`
	CustomerID     string    `json:"customer_id"`
	Channel        string    `json:"channel"`
	Address        string    `json:"address"`
	Wording        string    `json:"wording"`
	WordingVersion string    `json:"wording_version"`
	Locale         string    `json:"locale,omitempty"`
	RequestedAt    time.Time `json:"requested_at"`
	RequestedBy    string    `json:"requested_by,omitempty"`
	ExpiresAt      time.Time `json:"expires_at"`
	ConfirmedAt    time.Time `json:"confirmed_at,omitzero"`
	// EntryID is the ledger entry the confirmation recorded.
	EntryID int64 `json:"entry_id,omitempty"`
}

// RequestConsent records a double opt-in request for email consent to the
// customer's current address.
func (s *Store) RequestConsent(ctx context.Context, r ConsentRequest) (ConsentRequest, error) {
	err := s.pool.QueryRow(ctx, s.q.InsertConsentRequest, r.CustomerID, policy.Email, r.Wording, r.WordingVersion, r.Locale,
		r.RequestedAt, r.RequestedBy, r.ExpiresAt).Scan(&r.ID, &r.Address)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("request consent: customer %s (with an email address): %w", r.CustomerID, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("request consent: %w", err)
	}
	r.Channel = policy.Email
	return r, nil
}

// Errors from ConfirmConsent.
var (
	ErrRequestExpired = errors.New("the confirmation link has expired")
	// ErrAddressChanged: the customer's address is no longer the one the
	// confirmation was sent to, so the click proves nothing about it.
	ErrAddressChanged = errors.New("the address changed since the confirmation was sent")
)

// ConfirmConsent records the customer's confirmation of a double opt-in
// request as a consent grant whose evidence names the request. A second
// confirmation finds the first and records nothing.
func (s *Store) ConfirmConsent(ctx context.Context, requestID int64, at time.Time) (ConsentRequest, error) {
	var r ConsentRequest
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var confirmed *time.Time
		err := tx.QueryRow(ctx, s.q.ConsentRequest, requestID).Scan(&r.ID, &r.CustomerID, &r.Channel, &r.Address, &r.Wording,
			&r.WordingVersion, &r.Locale, &r.RequestedAt, &r.RequestedBy, &r.ExpiresAt, &confirmed, &r.EntryID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("consent request %d: %w", requestID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if confirmed != nil {
			r.ConfirmedAt = *confirmed
			return nil
		}
		if !at.Before(r.ExpiresAt) {
			return ErrRequestExpired
		}
		stored, err := s.appendConsent(ctx, tx, r.CustomerID, func(tx pgx.Tx, _ []policy.ConsentEntry) ([]policy.ConsentEntry, error) {
			c, err := s.customerIn(ctx, tx, r.CustomerID)
			if err != nil {
				return nil, err
			}
			if c.Email != r.Address {
				return nil, ErrAddressChanged
			}
			return []policy.ConsentEntry{{Channel: r.Channel, Topic: policy.AllTopics, Action: policy.Grant, Basis: policy.BasisConsent,
				Wording: r.Wording, WordingVersion: r.WordingVersion, Locale: r.Locale, At: at, Source: policy.SourceDoubleOptIn,
				Actor: "customer", Evidence: fmt.Sprintf("confirmed request %d: asked %s by %s, confirmation sent to %s",
					r.ID, r.RequestedAt.UTC().Format(time.RFC3339), r.RequestedBy, r.Address)}}, nil
		})
		if err != nil {
			return err
		}
		r.ConfirmedAt, r.EntryID = at, stored[0].ID
		_, err = tx.Exec(ctx, s.q.ConfirmConsentRequest, r.ID, at, r.EntryID)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("confirm consent: %w", err)
	}
	return r, nil
}

func (s *Store) customerIn(ctx context.Context, tx pgx.Tx, id string) (c consentCustomer, err error) {
	var attrs, consent []byte
	var locale, tz, pref string
	err = tx.QueryRow(ctx, s.q.GetCustomer, id).Scan(&c.ID, &c.Email, &locale, &tz, &pref, &attrs, &consent)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	return c, err
}

type consentCustomer struct{ ID, Email string }

// ConsentRequests lists a customer's double opt-in requests.
func (s *Store) ConsentRequests(ctx context.Context, customerID string) ([]ConsentRequest, error) {
	rows, err := s.pool.Query(ctx, s.q.ConsentRequestsOf, customerID)
	if err != nil {
		return nil, fmt.Errorf("consent requests of %s: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConsentRequest, error) {
		var r ConsentRequest
		var confirmed *time.Time
		err := row.Scan(&r.ID, &r.CustomerID, &r.Channel, &r.Address, &r.Wording, &r.WordingVersion, &r.Locale,
			&r.RequestedAt, &r.RequestedBy, &r.ExpiresAt, &confirmed, &r.EntryID)
		if confirmed != nil {
			r.ConfirmedAt = *confirmed
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("consent requests of %s: %w", customerID, err)
	}
	return out, nil
}

// MessageEvidence is a message sent to a customer, with the basis it relied on.
type MessageEvidence struct {
	DecidedAt time.Time    `json:"decided_at"`
	SentAt    time.Time    `json:"sent_at"`
	Journey   string       `json:"journey"`
	Step      string       `json:"step"`
	Channel   string       `json:"channel"`
	Topic     string       `json:"topic"`
	Status    string       `json:"status"`
	Basis     policy.Basis `json:"basis"`
	BasisFact string       `json:"basis_fact"`
	MessageID string       `json:"message_id,omitempty"`
	Subject   string       `json:"subject,omitempty"`
}

// ConsentMessages lists the messages a customer was sent (or that may
// have reached them) with the basis each relied on.
func (s *Store) ConsentMessages(ctx context.Context, customerID string) ([]MessageEvidence, error) {
	rows, err := s.pool.Query(ctx, s.q.ConsentMessages, customerID)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[MessageEvidence])
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", customerID, err)
	}
	return out, nil
}

// BasisCount is how many messages relied on one basis, on one channel and
// topic.
type BasisCount struct {
	Basis   policy.Basis `json:"basis"`
	Channel string       `json:"channel"`
	Topic   string       `json:"topic"`
	Count   int64        `json:"count"`
}

// MessagesPerBasis counts the messages sent in [from, to) by the basis
// they relied on.
func (s *Store) MessagesPerBasis(ctx context.Context, from, to time.Time) ([]BasisCount, error) {
	rows, err := s.pool.Query(ctx, s.q.MessagesPerBasis, from, to)
	if err != nil {
		return nil, fmt.Errorf("messages per basis: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[BasisCount])
	if err != nil {
		return nil, fmt.Errorf("messages per basis: %w", err)
	}
	return out, nil
}

// purgeConsent deletes the consent entries no longer needed as evidence
// since before cutoff (see the purge-consent query). The consent ledger
// is append-only: its trigger lets a delete through only in a
// transaction that says it is retention's.
func (s *Store) purgeConsent(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.q.AllowConsentPurge); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.q.PurgeConsent, cutoff)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retain: purge consent ledger: %w", err)
	}
	return n, nil
}
