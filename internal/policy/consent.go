package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Basis is the legal ground a message relies on. Marketing by email or push
// to a private person needs prior consent (markedsføringsloven § 15,
// marknadsföringslagen § 19, markedsføringsloven § 10), except the soft
// opt-in: an address collected with a sale may receive marketing for the
// company's own similar products until the customer opts out. Messages
// about the customer's existing agreements need neither.
type Basis string

// The bases. Journeys name consent and soft_opt_in; service is what a
// decision about a service topic relies on.
const (
	BasisConsent   Basis = "consent"
	BasisSoftOptIn Basis = "soft_opt_in"
	BasisService   Basis = "service"
)

// ParseBasis parses a basis a journey may use: consent or soft_opt_in.
func ParseBasis(s string) (Basis, error) {
	switch b := Basis(s); b {
	case BasisConsent, BasisSoftOptIn:
		return b, nil
	}
	return "", fmt.Errorf("unknown basis %q (want consent or soft_opt_in)", s)
}

// TopicKind says whether messages of a topic are marketing.
type TopicKind string

// Topic kinds.
const (
	// TopicService: messages about the customer's existing agreements
	// (a renewal, an introduction to their adviser). They need no
	// marketing consent; a customer can still opt out of the topic.
	TopicService TopicKind = "service"
	// TopicMarketing: messages that promote something. They need prior
	// consent, or a soft opt-in from a sale in a product group the topic
	// covers.
	TopicMarketing TopicKind = "marketing"
)

// Topic is a topic declared in policy.yaml.
type Topic struct {
	Kind TopicKind `json:"kind"`
	// ProductGroups are the product groups a marketing topic promotes: a
	// sale in one of them is what makes a soft opt-in reach the topic.
	ProductGroups []string `json:"product_groups,omitempty"`
}

// Scopes that cover every channel or every topic.
const (
	AllChannels = "*"
	AllTopics   = "*"
)

// ConsentAction is what a consent-ledger entry records.
type ConsentAction string

// Actions.
const (
	Grant    ConsentAction = "grant"
	Withdraw ConsentAction = "withdraw"
)

// Where an entry was captured.
const (
	SourceAPI              = "api"
	SourcePreferenceCentre = "preference_centre"
	SourceImport           = "import"
	SourceDoubleOptIn      = "double_opt_in"
	SourceUnsubscribe      = "unsubscribe"
	SourceMigration        = "migration"
)

var sources = []string{SourceAPI, SourcePreferenceCentre, SourceImport, SourceDoubleOptIn, SourceUnsubscribe, SourceMigration}

// ConsentEntry is one entry of the consent ledger: a grant or a withdrawal
// by one customer, as it was captured. Entries are never changed; the
// customer's consent is what the entries say together (see Decide).
//
// Scope: an entry whose Topic is AllTopics is about marketing on the
// channel as a whole (the customer agreed to, or refused, marketing by
// email); an entry naming a topic opts the customer out of that topic or
// back into it. Channel AllChannels covers email and push.
type ConsentEntry struct {
	ID      int64         `json:"id,omitempty"`
	Channel string        `json:"channel"`
	Topic   string        `json:"topic"`
	Action  ConsentAction `json:"action"`
	Basis   Basis         `json:"basis"`
	// Wording is the text the customer saw when they agreed or opted out,
	// in their language, and WordingVersion names that text's version.
	Wording        string `json:"wording,omitempty"`
	WordingVersion string `json:"wording_version,omitempty"`
	Locale         string `json:"locale,omitempty"`
	// At is when the customer acted.
	At time.Time `json:"at"`
	// Source is where it was captured (SourceAPI, ...); Actor who captured
	// it there: the API token's name, "customer" for the customer's own
	// clicks, the imported file.
	Source string `json:"source"`
	Actor  string `json:"actor,omitempty"`
	// Evidence holds what else proves the entry: the double opt-in
	// request it confirms, the value recorded before the ledger existed.
	Evidence string `json:"evidence,omitempty"`
	// MessageID is the Message-ID of the message whose link the customer
	// used (a one-click unsubscribe).
	MessageID string `json:"message_id,omitempty"`
	// A soft opt-in rests on a sale: its id, when it was made, and the
	// product group it was in.
	SaleID       string    `json:"sale_id,omitempty"`
	SaleAt       time.Time `json:"sale_at,omitzero"`
	ProductGroup string    `json:"product_group,omitempty"`
	// RecordedAt is when lojal stored the entry.
	RecordedAt time.Time `json:"recorded_at,omitzero"`
}

// Validate says what is missing or wrong in an entry about to be recorded.
func (e ConsentEntry) Validate() error {
	var errs []error
	if e.Channel != Email && e.Channel != Push && e.Channel != AllChannels {
		errs = append(errs, fmt.Errorf("channel %q: want email, push or * (all channels)", e.Channel))
	}
	if e.Topic == "" {
		errs = append(errs, errors.New("topic is empty: name a topic, or * for marketing on the channel as a whole"))
	}
	if e.Action != Grant && e.Action != Withdraw {
		errs = append(errs, fmt.Errorf("action %q: want grant or withdraw", e.Action))
	}
	if e.Basis != BasisConsent && e.Basis != BasisSoftOptIn {
		errs = append(errs, fmt.Errorf("basis %q: want consent or soft_opt_in", e.Basis))
	}
	if e.At.IsZero() {
		errs = append(errs, errors.New("time is missing: say when the customer acted"))
	}
	if !slices.Contains(sources, e.Source) {
		errs = append(errs, fmt.Errorf("source %q: want one of %s", e.Source, strings.Join(sources, ", ")))
	}
	if e.Basis == BasisSoftOptIn && e.Action == Grant {
		if e.SaleID == "" || e.SaleAt.IsZero() || e.ProductGroup == "" {
			errs = append(errs, errors.New("a soft opt-in rests on a sale: give the sale's id, time and product group"))
		}
		if e.Topic != AllTopics {
			errs = append(errs, errors.New("a soft opt-in covers the topics whose product groups include the sale's: its topic must be *"))
		}
	}
	if e.Basis == BasisConsent && e.Action == Grant && e.Topic == AllTopics && e.Wording == "" {
		errs = append(errs, errors.New("consent needs the wording the customer agreed to (wording and wording_version)"))
	}
	return errors.Join(errs...)
}

func (e ConsentEntry) covers(ch string) bool { return e.Channel == ch || e.Channel == AllChannels }

// SoftOptInOn reports whether e records a soft opt-in (a sale) that
// covers channel ch.
func (e ConsentEntry) SoftOptInOn(ch string) bool {
	return e.Basis == BasisSoftOptIn && e.Action == Grant && e.covers(ch)
}

// SortEntries puts entries in ledger order: by time, then by id.
func SortEntries(entries []ConsentEntry) {
	slices.SortStableFunc(entries, func(a, b ConsentEntry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.ID, b.ID))
	})
}

// InOrder returns the entries in the order the ledger is read in (time,
// then id), sorting a copy only when they are not.
func InOrder(entries []ConsentEntry) []ConsentEntry { return inOrder(entries) }

func inOrder(entries []ConsentEntry) []ConsentEntry {
	if slices.IsSortedFunc(entries, func(a, b ConsentEntry) int { return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.ID, b.ID)) }) {
		return entries
	}
	entries = slices.Clone(entries)
	SortEntries(entries)
	return entries
}

// ChannelConsent returns the entry that decides whether the customer
// consents to marketing on ch: the latest consent grant or withdrawal for
// the channel as a whole. ok is true when it is a grant.
func ChannelConsent(entries []ConsentEntry, ch string) (ConsentEntry, bool) {
	entries = inOrder(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Topic == AllTopics && e.covers(ch) && (e.Action == Withdraw || e.Basis == BasisConsent) {
			return e, e.Action == Grant
		}
	}
	return ConsentEntry{}, false
}

// TopicOptOut returns the withdrawal that opts the customer out of topic on
// ch, when the latest entry about the topic is one.
func TopicOptOut(entries []ConsentEntry, ch, topic string) (ConsentEntry, bool) {
	entries = inOrder(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Topic == topic && e.covers(ch) {
			return e, e.Action == Withdraw
		}
	}
	return ConsentEntry{}, false
}

// TopicsOptedOut lists the topics the customer is opted out of on every
// channel, sorted.
func TopicsOptedOut(entries []ConsentEntry) []string {
	var out []string
	seen := map[string]bool{}
	entries = inOrder(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Topic == AllTopics || e.Channel != AllChannels || seen[e.Topic] {
			continue
		}
		seen[e.Topic] = true
		if e.Action == Withdraw {
			out = append(out, e.Topic)
		}
	}
	slices.Sort(out)
	return out
}

// softOptIn returns the newest soft opt-in on ch from a sale in one of
// groups, and the sales outside them. A soft opt-in only lasts while no
// opt-out is recorded: any withdrawal of marketing on the channel, ever,
// ends every soft opt-in on it, and only the customer's own consent lets
// marketing reach them again.
func softOptIn(entries []ConsentEntry, ch string, groups []string) (covered ConsentEntry, ok bool, outside []ConsentEntry, optOut *ConsentEntry) {
	for _, e := range inOrder(entries) {
		if e.Topic != AllTopics || !e.covers(ch) {
			continue
		}
		switch {
		case e.Action == Withdraw:
			optOut = &e
		case e.Basis == BasisSoftOptIn && slices.Contains(groups, e.ProductGroup):
			covered, ok = e, true
		case e.Basis == BasisSoftOptIn:
			outside = append(outside, e)
		}
	}
	if optOut != nil {
		return ConsentEntry{}, false, nil, optOut
	}
	return covered, ok, outside, nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// Fact says in words what an entry records, for a decision's facts and the
// evidence page.
func (e ConsentEntry) Fact() string {
	where := strings.ReplaceAll(e.Source, "_", " ")
	if e.Actor != "" {
		where += " by " + e.Actor
	}
	switch {
	case e.Action == Grant && e.Basis == BasisSoftOptIn:
		return fmt.Sprintf("soft opt-in from sale %s, %s, product group %s", e.SaleID, day(e.SaleAt), e.ProductGroup)
	case e.Action == Grant && e.Topic != AllTopics:
		return fmt.Sprintf("opted back in to %s %s (%s)", e.Topic, day(e.At), where)
	case e.Action == Grant:
		s := fmt.Sprintf("consent given %s (%s", day(e.At), where)
		if e.WordingVersion != "" {
			s += ", wording " + e.WordingVersion
		}
		return s + ")"
	case e.Topic != AllTopics:
		return fmt.Sprintf("opted out of %s %s (%s)", e.Topic, day(e.At), where)
	}
	return fmt.Sprintf("marketing withdrawn %s (%s)", day(e.At), where)
}

// legacyConsent turns a relationship without a ledger (built by hand:
// simulations, benchmarks) into the entries it stands for.
func legacyConsent(rel Relationship) []ConsentEntry {
	var out []ConsentEntry
	for _, ch := range []string{Email, Push} {
		if rel.Channels[ch].Consent {
			out = append(out, ConsentEntry{Channel: ch, Topic: AllTopics, Action: Grant, Basis: BasisConsent, Source: SourceMigration})
		}
	}
	for _, t := range rel.TopicsOptedOut {
		out = append(out, ConsentEntry{Channel: AllChannels, Topic: t, Action: Withdraw, Basis: BasisConsent, Source: SourceMigration})
	}
	return out
}

// basis finds the legal basis a message on ch may rely on. It returns the
// basis and its fact, or the reason there is none with the fact that
// explains it. A topic policy.yaml does not declare is treated as
// marketing that may rely on consent only: the strictest reading.
func (r Rules) basis(entries []ConsentEntry, req Request, ch string) (Basis, string, Reason) {
	topic, declared := r.Topics[req.Topic]
	if declared && topic.Kind == TopicService {
		return BasisService, fmt.Sprintf("service topic %s: needs no marketing consent", req.Topic), ""
	}
	bases := req.Bases
	if len(bases) == 0 || !declared {
		bases = []Basis{BasisConsent}
	}
	var why []string
	reason := ReasonNoConsent
	if slices.Contains(bases, BasisConsent) {
		e, ok := ChannelConsent(entries, ch)
		if ok {
			if e.At.IsZero() {
				return BasisConsent, "consent recorded before the consent ledger", ""
			}
			return BasisConsent, e.Fact(), ""
		}
		if e.Action == Withdraw {
			why = append(why, e.Fact())
		} else {
			why = append(why, "no consent recorded")
		}
	}
	if slices.Contains(bases, BasisSoftOptIn) {
		e, ok, outside, optOut := softOptIn(entries, ch, topic.ProductGroups)
		switch {
		case ok:
			return BasisSoftOptIn, e.Fact(), ""
		case optOut != nil:
			why = append(why, "soft opt-in ended: "+optOut.Fact())
		case len(outside) > 0:
			reason = ReasonSoftOptInNotCovered
			var sales []string
			for _, s := range outside {
				sales = append(sales, fmt.Sprintf("sale %s, %s is in product group %s", s.SaleID, day(s.SaleAt), s.ProductGroup))
			}
			why = append(why, fmt.Sprintf("soft opt-in does not reach topic %s (product groups %s): %s",
				req.Topic, strings.Join(topic.ProductGroups, ", "), strings.Join(sales, "; ")))
		default:
			why = append(why, "no sale to rest a soft opt-in on")
		}
	}
	return "", strings.Join(why, "; "), reason
}

// BasisFor says what a marketing or service message of topic on ch could
// rely on now, for a journey that may use bases: the basis and its fact,
// or the reason there is none with the fact that explains it. The
// evidence export shows it for every declared topic.
func (r Rules) BasisFor(entries []ConsentEntry, topic string, bases []Basis, ch string) (Basis, string, Reason) {
	entries = inOrder(entries)
	if e, out := TopicOptOut(entries, ch, topic); out {
		return "", e.Fact(), ReasonTopicOptedOut
	}
	return r.basis(entries, Request{Topic: topic, Bases: bases}, ch)
}
