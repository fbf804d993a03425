// Package evidence assembles what lojal can prove about one customer's
// consent: every consent-ledger entry as it was captured, the double
// opt-in requests, what the customer's consent allows now on each topic
// and channel, and every message sent with the basis it relied on. It is
// what `lojal consent export` and GET /v1/customers/{id}/consent print,
// as JSON and as a page a person reads, for a data-subject request or a
// consumer authority.
package evidence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// Evidence is one customer's consent evidence.
type Evidence struct {
	GeneratedAt time.Time `json:"generated_at"`
	Customer    Customer  `json:"customer"`
	// Now says, for each declared topic and channel, what a message could
	// rely on at GeneratedAt.
	Now       []Standing              `json:"now"`
	Entries   []Entry                 `json:"entries"`
	Requests  []store.ConsentRequest  `json:"double_opt_in_requests"`
	Messages  []store.MessageEvidence `json:"messages"`
	Topics    map[string]policy.Topic `json:"topics"`
	Retention store.Retention         `json:"-"`
	Kept      string                  `json:"retention"`
}

// Customer is who the evidence is about.
type Customer struct {
	ID       string `json:"id"`
	Email    string `json:"email,omitempty"`
	Locale   string `json:"locale,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Deleted is true when the customer no longer exists: their consent
	// evidence is kept for the consent retention.
	Deleted bool `json:"deleted,omitempty"`
}

// Entry is a ledger entry with what it records in words.
type Entry struct {
	policy.ConsentEntry
	Fact string `json:"fact"`
}

// Standing is what a message of one topic on one channel could rely on.
type Standing struct {
	Topic   string           `json:"topic"`
	Kind    policy.TopicKind `json:"kind"`
	Channel string           `json:"channel"`
	// Basis is empty when no message of the topic may reach the customer
	// on the channel; Reason then says why.
	Basis  policy.Basis  `json:"basis,omitempty"`
	Reason policy.Reason `json:"reason,omitempty"`
	Fact   string        `json:"fact"`
}

// Build reads one customer's evidence. rules are the policy in force
// (for the topics); a customer who no longer exists still has evidence.
func Build(ctx context.Context, st *store.Store, rules *policy.Rules, customerID string, ret store.Retention, now time.Time) (Evidence, error) {
	ev := Evidence{GeneratedAt: now, Customer: Customer{ID: customerID}, Topics: rules.Topics, Retention: ret}
	c, err := st.Customer(ctx, customerID)
	switch {
	case err == nil:
		ev.Customer = Customer{ID: c.ID, Email: c.Email, Locale: c.Locale, Timezone: c.Timezone}
	case isNotFound(err):
		ev.Customer.Deleted = true
	default:
		return ev, err
	}
	entries, err := st.ConsentEntries(ctx, customerID)
	if err != nil {
		return ev, err
	}
	if ev.Customer.Deleted && len(entries) == 0 {
		return ev, fmt.Errorf("customer %s: %w", customerID, store.ErrNotFound)
	}
	for _, e := range entries {
		ev.Entries = append(ev.Entries, Entry{ConsentEntry: e, Fact: e.Fact()})
	}
	if ev.Requests, err = st.ConsentRequests(ctx, customerID); err != nil {
		return ev, err
	}
	if ev.Messages, err = st.ConsentMessages(ctx, customerID); err != nil {
		return ev, err
	}
	names := make([]string, 0, len(rules.Topics))
	for n := range rules.Topics {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, t := range names {
		for _, ch := range []string{policy.Email, policy.Push} {
			b, fact, reason := rules.BasisFor(entries, t, []policy.Basis{policy.BasisConsent, policy.BasisSoftOptIn}, ch)
			ev.Now = append(ev.Now, Standing{Topic: t, Kind: rules.Topics[t].Kind, Channel: ch, Basis: b, Reason: reason, Fact: fact})
		}
	}
	ev.Kept = fmt.Sprintf("consent evidence is kept %s after it stops being needed; messages %s (docs/consent.md)",
		policy.FormatDuration(ret.Consent), policy.FormatDuration(ret.Ledger))
	if ev.Entries == nil {
		ev.Entries = []Entry{}
	}
	return ev, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
