// Package policy decides whether one message may reach one customer now.
//
// It is the anti-spam core of lojal and holds no I/O: Decide is a pure
// function of the relationship policy (policy.yaml), the customer's
// relationship (consent, subscriptions, suppressions, time zone), the recent
// contact ledger, the other messages waiting for the same customer, the
// request and the current time. The store feeds it under a per-customer lock
// and records every Decision with the inputs that produced it.
package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Verdict is the outcome of a decision.
type Verdict string

// The three verdicts. A deferred message is retried at Decision.Until; a
// suppressed one is never sent.
const (
	Allow    Verdict = "allow"
	Defer    Verdict = "defer"
	Suppress Verdict = "suppress"
)

// Reason says which rule decided. Reasons are stable strings: they are stored
// in the ledger, counted in metrics and printed by `lojal why`.
type Reason string

// Reasons, one per rule.
const (
	ReasonOK               Reason = "ok"
	ReasonCritical         Reason = "critical"
	ReasonNoConsent        Reason = "no_consent"
	ReasonNoAddress        Reason = "no_address"
	ReasonHardBounce       Reason = "hard_bounce"
	ReasonComplaint        Reason = "complaint"
	ReasonUnsubscribed     Reason = "unsubscribed"
	ReasonTopicOptedOut    Reason = "topic_opted_out"
	ReasonDuplicatePurpose Reason = "duplicate_purpose"
	ReasonStale            Reason = "stale"
	ReasonQuietHours       Reason = "quiet_hours"
	ReasonMinGap           Reason = "min_gap"
	ReasonCap              Reason = "cap"
	ReasonPriority         Reason = "priority"
	// ReasonSoftOptInNotCovered: the customer's only basis is a soft
	// opt-in from a sale outside the product groups the topic covers.
	ReasonSoftOptInNotCovered Reason = "soft_opt_in_not_covered"
)

// Channels a message can be sent on. Preferred is resolved by Decide to one of
// the others.
const (
	Email     = "email"
	Push      = "push"
	Preferred = "preferred"
)

// Priority ranks messages competing for the same customer.
type Priority int

// Priorities from lowest to highest. The zero value means "not set" and is
// treated as Normal.
const (
	Low Priority = iota + 1
	Normal
	High
	Critical
)

// ParsePriority parses critical, high, normal or low.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "low":
		return Low, nil
	case "normal":
		return Normal, nil
	case "high":
		return High, nil
	case "critical":
		return Critical, nil
	}
	return 0, fmt.Errorf("unknown priority %q (want critical, high, normal or low)", s)
}

func (p Priority) String() string {
	switch p {
	case Low:
		return "low"
	case High:
		return "high"
	case Critical:
		return "critical"
	}
	return "normal"
}

func (p Priority) orNormal() Priority {
	if p == 0 {
		return Normal
	}
	return p
}

// Cap limits how many messages a customer receives in a rolling window, on
// one channel or (Channel == "") on all channels together.
type Cap struct {
	Channel string        `json:"channel,omitempty"`
	Window  time.Duration `json:"window"`
	Max     int           `json:"max"`
}

func (c Cap) String() string {
	ch := "all channels"
	if c.Channel != "" {
		ch = c.Channel
	}
	return fmt.Sprintf("%d per %s on %s", c.Max, FormatDuration(c.Window), ch)
}

// Rules is the relationship policy every journey obeys (policy.yaml).
type Rules struct {
	// Location is the time zone for customers who have none.
	Location *time.Location
	// Quiet, when set, holds messages during the customer's local night.
	Quiet *QuietHours
	// MinGap is the least time between any two messages to one customer.
	MinGap time.Duration
	Caps   []Cap
	// MaxDefer bounds how long a message may wait: one that cannot go out
	// within MaxDefer of its first request is dropped as stale, never sent late.
	MaxDefer time.Duration
	// PurposeWindow is how long a purpose key suppresses repeats, across
	// journeys.
	PurposeWindow time.Duration
	// AgingStep is how long a waiting message waits before it gains one
	// priority level, so a stream of higher-priority messages cannot starve it.
	AgingStep time.Duration
	// CriticalOutsideCaps, when set (critical_counts_toward_caps: false),
	// leaves critical messages out of the caps other messages share, so a
	// security alert does not use up the week's marketing budget. They
	// still count toward the minimum gap.
	CriticalOutsideCaps bool
	// Conversations, when set, pauses marketing while a customer's reply
	// is unanswered (policy.yaml conversations).
	Conversations *Conversations
	// Topics are the topics declared in policy.yaml, by name, with their
	// kind and, for marketing, the product groups they cover.
	Topics map[string]Topic
	// Adaptive, when set, lowers a customer's caps while messages go
	// without engagement (policy.yaml adaptive_pressure).
	Adaptive *Adaptive
	// TrackLinks (policy.yaml track_links: true) sends every http(s) link
	// in every message through lojal's signed redirect, which records a
	// click as engagement; without it only links a template wraps in
	// {{ track }} are. It is for rendering; Decide does not read it.
	TrackLinks bool
	// Where says where policy.yaml sets a setting, as file:line:col of its
	// value, by name (min_gap, max_defer, purpose_window; caps[i] for the
	// i-th cap), so that an error found later about it (a retention too
	// short for it) can point at it. Settings left out have none.
	Where map[string]string
}

// Defaults for rules policy.yaml leaves out.
const (
	DefaultPurposeWindow = 30 * 24 * time.Hour
	DefaultAgingStep     = 24 * time.Hour
	DefaultMaxDefer      = 7 * 24 * time.Hour
	// priorityGrace is how long a lower-priority message steps aside for a
	// higher-priority one that is due, and how long a waiting message may be
	// overdue before it is treated as abandoned.
	priorityGrace  = time.Minute
	abandonedAfter = 10 * time.Minute
)

// Lookback is how far back the contact ledger must be read for Decide to see
// every contact that can still matter.
func (r Rules) Lookback() time.Duration {
	d := max(r.MinGap, r.purposeWindow())
	for _, c := range r.Caps {
		d = max(d, c.Window)
	}
	return d
}

func (r Rules) purposeWindow() time.Duration {
	if r.PurposeWindow > 0 {
		return r.PurposeWindow
	}
	return DefaultPurposeWindow
}

func (r Rules) agingStep() time.Duration {
	if r.AgingStep > 0 {
		return r.AgingStep
	}
	return DefaultAgingStep
}

// ChannelState is what the customer relationship says about one channel.
type ChannelState struct {
	Consent bool `json:"consent"`
	// Address is true when the customer has somewhere to receive the channel:
	// an email address, or at least one push subscription.
	Address bool `json:"address"`
	// Suppressed is a suppression reason for the address (hard_bounce,
	// complaint, unsubscribed), or empty.
	Suppressed Reason `json:"suppressed,omitempty"`
}

// Relationship is one customer as the policy sees them.
type Relationship struct {
	Location       *time.Location
	Channels       map[string]ChannelState
	TopicsOptedOut []string
	// Preferred is the channel a `preferred` send tries first.
	Preferred string
	// Conversation is the customer's open or last answered conversation
	// with a helper; nil when there is none.
	Conversation *Conversation
	// Consent is the customer's consent ledger, oldest first. When it is
	// nil, Channels' Consent and TopicsOptedOut stand for it (a
	// relationship built by hand, as simulations do); the store always
	// fills it, and then derives those two from it.
	Consent []ConsentEntry
	// LastEngaged is when the customer last engaged with lojal's messages
	// (clicked a tracked link, replied, answered, reached a journey goal);
	// zero if never. Adaptive pressure counts the messages since.
	LastEngaged time.Time
}

// Request is one message asking to be sent.
type Request struct {
	// Key identifies the message across retries and re-asks (the ledger's
	// idempotency key without the ask counter).
	Key     string
	Journey string
	Step    string
	Channel string
	// Fallback holds the channels to try after Channel, in order
	// (channel: [push, email]).
	Fallback []string
	Topic    string
	// Priority defaults to Normal.
	Priority Priority
	// Purpose, when set, is sent at most once within Rules.PurposeWindow.
	Purpose string
	// FirstAsked is when the message first asked; MaxDefer counts from here.
	FirstAsked time.Time
	// Bases are the legal bases the journey says a marketing message may
	// rely on; none means consent only.
	Bases []Basis
}

// Contact is a message that counts against the customer's caps: sent, or
// reserved and about to be sent.
type Contact struct {
	At      time.Time
	Channel string
	Purpose string
	Key     string
	// Critical marks a critical message (see Rules.CriticalOutsideCaps).
	Critical bool
}

// Waiting is a message deferred earlier that will ask again at Due.
type Waiting struct {
	Key      string
	Priority Priority
	Since    time.Time
	Due      time.Time
	// Reason is why it waits; one paused by an open conversation
	// (ReasonConversationOpen) takes no slot from messages that may go.
	Reason Reason
}

// Decision is Decide's answer, with the inputs that decided it.
type Decision struct {
	Verdict Verdict `json:"verdict"`
	// Channel is the channel the message goes out on (Preferred resolved).
	Channel string `json:"channel,omitempty"`
	// Until is when a deferred message should ask again.
	Until time.Time `json:"until,omitzero"`
	// SendBy, for an allowed message, is when it must have gone out by:
	// the start of the customer's next quiet hours (zero when policy.yaml
	// has none, or for a critical message). A message that waits on its
	// send queue, or is retried, past it asks again instead of going out
	// at night.
	SendBy time.Time `json:"send_by,omitzero"`
	Reason Reason    `json:"reason"`
	Detail Detail    `json:"detail,omitzero"`
}

// Detail records the facts behind a decision, so `lojal why` can explain it.
type Detail struct {
	// Cap is the cap that was full ("3 per 7d on all channels") and Count
	// how many contacts filled it.
	Cap         string    `json:"cap,omitempty"`
	Count       int       `json:"count,omitempty"`
	LocalTime   string    `json:"local_time,omitempty"`
	QuietHours  string    `json:"quiet_hours,omitempty"`
	LastContact time.Time `json:"last_contact,omitzero"`
	MinGap      string    `json:"min_gap,omitempty"`
	BlockedBy   string    `json:"blocked_by,omitempty"`
	Waited      string    `json:"waited,omitempty"`
	Skipped     []string  `json:"skipped,omitempty"`
	Purpose     string    `json:"purpose,omitempty"`
	// RepliedAt is when the customer's reply opened the conversation that
	// holds the message, AnsweredAt when a helper answered it (zero while
	// unanswered), and PauseAfterAnswer the pause after the answer.
	RepliedAt        time.Time `json:"replied_at,omitzero"`
	AnsweredAt       time.Time `json:"answered_at,omitzero"`
	PauseAfterAnswer string    `json:"pause_after_answer,omitempty"`
	// Basis is the legal basis the message relies on on its channel, and
	// BasisFact the evidence in words ("soft opt-in from sale o-123,
	// 2026-02-01, product group home"); for a message without a basis,
	// BasisFact says why there is none.
	Basis     Basis  `json:"basis,omitempty"`
	BasisFact string `json:"basis_fact,omitempty"`
	// Ignored is how many messages in a row the customer let pass without
	// engaging, since IgnoredSince (the oldest of them), and CapHalvings
	// how many times adaptive pressure halved the caps for it. Recorded
	// only when the caps were lowered.
	Ignored      int       `json:"ignored,omitempty"`
	IgnoredSince time.Time `json:"ignored_since,omitzero"`
	CapHalvings  int       `json:"cap_halvings,omitempty"`
}

// String describes the facts in a sentence fragment, times in UTC.
func (d Detail) String() string {
	return d.Describe(func(t time.Time) string { return t.UTC().Format("Jan 02 15:04 UTC") })
}

// Describe describes the facts in a sentence fragment, writing times with
// at (in the customer's zone, for a person reading about that customer).
func (d Detail) Describe(at func(time.Time) string) string {
	var parts []string
	if d.Cap != "" {
		parts = append(parts, fmt.Sprintf("cap %s already has %d", d.Cap, d.Count))
	}
	if d.QuietHours != "" {
		parts = append(parts, fmt.Sprintf("local time %s is inside quiet hours %s", d.LocalTime, d.QuietHours))
	}
	if d.MinGap != "" {
		parts = append(parts, fmt.Sprintf("last message %s, min gap %s", at(d.LastContact), d.MinGap))
	} else if !d.LastContact.IsZero() {
		parts = append(parts, "same purpose sent "+at(d.LastContact))
	}
	if d.BlockedBy != "" {
		parts = append(parts, "waiting behind "+d.BlockedBy)
	}
	if d.Waited != "" {
		parts = append(parts, "waited "+d.Waited)
	}
	if len(d.Skipped) > 0 {
		parts = append(parts, "channels skipped: "+strings.Join(d.Skipped, "; "))
	}
	if d.Purpose != "" {
		parts = append(parts, "purpose "+d.Purpose)
	}
	switch {
	case !d.AnsweredAt.IsZero():
		parts = append(parts, fmt.Sprintf("the customer replied %s, answered %s; marketing pauses %s after the answer",
			at(d.RepliedAt), at(d.AnsweredAt), d.PauseAfterAnswer))
	case !d.RepliedAt.IsZero():
		parts = append(parts, fmt.Sprintf("the customer replied %s and has no answer yet", at(d.RepliedAt)))
	}
	if d.BasisFact != "" {
		parts = append(parts, "basis: "+d.BasisFact)
	}
	if d.CapHalvings > 0 {
		parts = append(parts, fmt.Sprintf("%d ignored since %s: caps %s", d.Ignored, at(d.IgnoredSince), ScaleWord(d.CapHalvings)))
	}
	return strings.Join(parts, "; ")
}

func (d Decision) String() string {
	switch d.Verdict {
	case Defer:
		return fmt.Sprintf("defer until %s (%s)", d.Until.UTC().Format(time.RFC3339), d.Reason)
	default:
		return fmt.Sprintf("%s (%s)", d.Verdict, d.Reason)
	}
}

// Decide applies the rules to one request. window holds the customer's
// contacts within Rules.Lookback, preferably newest first (the store reads
// them that way; any other order is sorted into a copy); waiting holds the customer's
// other deferred messages.
//
// Rules run in this order: channel usability and consent, topic opt-out,
// purpose dedupe, staleness, then (unless the message is critical) quiet
// hours, minimum gap, caps and priority. A conversation the customer has
// open with a helper holds non-critical messages outside the topics it
// allows before the throttling rules. Consent always wins: critical
// messages skip only the throttling rules.
func Decide(r Rules, rel Relationship, window []Contact, waiting []Waiting, req Request, now time.Time) Decision {
	entries := rel.Consent
	if entries == nil {
		entries = legacyConsent(rel)
	}
	entries = inOrder(entries)
	chans, skipped, why, facts := r.usableChannels(rel, entries, req)
	if len(chans) == 0 {
		return Decision{Verdict: Suppress, Reason: why, Detail: Detail{Skipped: skipped, BasisFact: facts.none}}
	}
	base := Decision{Channel: chans[0], Detail: Detail{Skipped: skipped}}
	suppress := func(reason Reason) Decision {
		base.Verdict, base.Reason = Suppress, reason
		return base
	}
	if req.Topic != "" {
		// A topic opt-out holds on every channel it covers; the message
		// goes on the first channel it does not.
		var open []string
		var out ConsentEntry
		for _, ch := range chans {
			if e, opted := TopicOptOut(entries, ch, req.Topic); opted {
				out = e
				continue
			}
			open = append(open, ch)
		}
		if len(open) == 0 {
			base.Detail.BasisFact = out.Fact()
			return suppress(ReasonTopicOptedOut)
		}
		chans, base.Channel = open, open[0]
	}
	withBasis := func(d Decision) Decision {
		if b, ok := facts.by[d.Channel]; ok {
			d.Detail.Basis, d.Detail.BasisFact = b.basis, b.fact
		}
		return d
	}
	return withBasis(r.decideOn(base, chans, rel, window, waiting, req, now))
}

// decideOn applies the rules after consent to a message that may go out
// on chans.
func (r Rules) decideOn(base Decision, chans []string, rel Relationship, window []Contact, waiting []Waiting, req Request, now time.Time) Decision {
	suppress := func(reason Reason) Decision {
		base.Verdict, base.Reason = Suppress, reason
		return base
	}
	if req.Purpose != "" {
		base.Detail.Purpose = req.Purpose
		for _, c := range window {
			if c.Purpose == req.Purpose && c.Key != req.Key && now.Sub(c.At) < r.purposeWindow() {
				base.Detail.LastContact = c.At
				return suppress(ReasonDuplicatePurpose)
			}
		}
	}
	first := req.FirstAsked
	if first.IsZero() || first.After(now) {
		first = now
	}
	maxDefer := r.MaxDefer
	if maxDefer <= 0 {
		maxDefer = DefaultMaxDefer
	}
	deadline := first.Add(maxDefer)
	if !now.Before(deadline) {
		base.Detail.Waited = FormatDuration(now.Sub(first).Truncate(time.Minute))
		return suppress(ReasonStale)
	}
	if req.Priority == Critical {
		base.Verdict, base.Reason = Allow, ReasonCritical
		return base
	}
	if h, held := r.conversationHold(rel, req, now, &base.Detail); held {
		if !h.until.Before(deadline) {
			base.Detail.Waited = FormatDuration(h.until.Sub(first).Truncate(time.Minute))
			return suppress(ReasonStale)
		}
		base.Verdict, base.Reason, base.Until = Defer, h.reason, h.until
		return base
	}

	if !slices.IsSortedFunc(window, newestFirst) {
		window = slices.Clone(window)
		slices.SortFunc(window, newestFirst)
	}
	pr := r.pressure(rel, window, req.Key, now)
	if pr.shift > 0 {
		base.Detail.Ignored, base.Detail.IgnoredSince, base.Detail.CapHalvings = pr.ignored, pr.since, pr.shift
	}
	loc := rel.Location
	if loc == nil {
		loc = r.Location
	}
	if loc == nil {
		loc = time.UTC
	}
	// Channels are tried in order, and the message goes out on the first
	// that may send now. Holds that concern the customer (quiet hours,
	// the gap, a cap on all channels, a message ahead) hold every channel
	// alike, so a later channel can only go first when the earlier ones
	// are held by their own caps. When none may send now, the message
	// waits for the channel that frees first.
	var d hold
	capped := map[string]string{}
	skippedFor := func(chosen string) []string {
		out := slices.Clone(base.Detail.Skipped)
		for _, ch := range chans {
			if why, ok := capped[ch]; ok && ch != chosen {
				out = append(out, ch+": cap "+why)
			}
		}
		return out
	}
	var held Detail
	var words wording
	for i, ch := range chans {
		det := base.Detail
		h := r.throttle(loc, window, waiting, req, ch, first, now, pr.shift, &words, &det)
		if h.reason == "" {
			det.Skipped = skippedFor(ch)
			base.Channel, base.Detail = ch, det
			base.Verdict, base.Reason = Allow, ReasonOK
			if r.Quiet != nil {
				base.SendBy = r.Quiet.Start.NextAtOrAfter(now.In(loc))
			}
			return base
		}
		if det.Cap != "" {
			capped[ch] = det.Cap
		}
		if i == 0 || h.until.Before(d.until) {
			d, held = h, det
			base.Channel = ch
		}
	}
	held.Skipped = skippedFor(base.Channel)
	base.Detail = held
	if !d.until.Before(deadline) {
		// The earliest moment it could go out is already too late.
		base.Detail.Waited = FormatDuration(d.until.Sub(first).Truncate(time.Minute))
		return suppress(ReasonStale)
	}
	base.Verdict, base.Reason, base.Until = Defer, d.reason, d.until
	return base
}

func newestFirst(a, b Contact) int { return b.At.Compare(a.At) }

type hold struct {
	until  time.Time
	reason Reason
}

// throttle returns the latest hold among the throttling rules, or a zero hold
// when the message may go now. Holds are re-checked at the resulting time
// (a cap that frees at 23:00 must still wait for quiet hours to end).
func (r Rules) throttle(loc *time.Location, window []Contact, waiting []Waiting, req Request, ch string, first, now time.Time, shift int, words *wording, det *Detail) hold {
	var h hold
	at := now
	// The facts are put into words once at the end: formatting them on
	// every pass would cost more than the rules themselves.
	f := facts{capHit: -1}
	defer func() {
		if f.capHit >= 0 {
			det.Cap = words.capLabel(r, f.capHit, shift)
		}
		if !f.quietAt.IsZero() {
			det.LocalTime, det.QuietHours = words.quiet(r, loc, f.quietAt)
		}
	}()
	for range 4 {
		next := r.holdAt(loc, window, waiting, req, ch, first, at, shift, &f, det)
		if next.reason == "" {
			return h
		}
		h = next
		at = next.until
	}
	return h
}

// facts are what throttle's passes found, to be put into words once.
type facts struct {
	// capHit is the index of the cap that holds longest, or -1.
	capHit int
	// quietAt is the time found inside quiet hours, or zero.
	quietAt time.Time
}

// wording remembers facts already put into words for one decision: every
// channel tried usually meets the same cap and the same night.
type wording struct {
	caps    [8]string
	quietAt time.Time
	local   string
	hours   string
}

func (w *wording) capLabel(r Rules, i, shift int) string {
	if i >= len(w.caps) {
		return r.capLabel(r.Caps[i], shift)
	}
	if w.caps[i] == "" {
		w.caps[i] = r.capLabel(r.Caps[i], shift)
	}
	return w.caps[i]
}

func (w *wording) quiet(r Rules, loc *time.Location, at time.Time) (local, hours string) {
	if w.local == "" || !w.quietAt.Equal(at) {
		l := at.In(loc)
		w.quietAt, w.local = at, l.Format("2006-01-02 15:04")+" "+ZoneAbbrev(l)
	}
	if w.hours == "" {
		w.hours = r.Quiet.String()
	}
	return w.local, w.hours
}

// capLabel names cap c as it applies under shift halvings.
func (r Rules) capLabel(c Cap, shift int) string {
	if shift == 0 {
		return c.String()
	}
	policyMax := c.Max
	c.Max = r.effectiveMax(c, shift)
	if c.Max > policyMax>>shift {
		// Halving went below the floor; say so, or the numbers do not add up.
		return c.String() + " (" + ScaleWord(shift) + " from " + strconv.Itoa(policyMax) + ", floor " + strconv.Itoa(c.Max) + ")"
	}
	return c.String() + " (" + ScaleWord(shift) + " from " + strconv.Itoa(policyMax) + ")"
}

func (r Rules) holdAt(loc *time.Location, window []Contact, waiting []Waiting, req Request, ch string, first, at time.Time, shift int, f *facts, det *Detail) hold {
	var h hold
	raise := func(until time.Time, reason Reason) {
		if until.After(at) && (h.reason == "" || until.After(h.until)) {
			h = hold{until: until, reason: reason}
		}
	}
	if r.Quiet != nil {
		if end, in := r.Quiet.EndIfInside(at.In(loc)); in {
			raise(end, ReasonQuietHours)
			f.quietAt = at
		}
	}
	if r.MinGap > 0 {
		// Contacts stamped after now still count: another worker's clock,
		// or a decision that took the lock just before this one, may be a
		// little ahead.
		var last time.Time
		for _, c := range window {
			if c.Key != req.Key {
				last = c.At
				break
			}
		}
		if !last.IsZero() && at.Sub(last) < r.MinGap {
			raise(last.Add(r.MinGap), ReasonMinGap)
			det.LastContact, det.MinGap = last, FormatDuration(r.MinGap)
		}
	}
	for i := range r.Caps {
		c := r.Caps[i]
		if shift > 0 {
			// The cap that applies is the lowered one.
			c.Max = r.effectiveMax(c, shift)
		}
		if until, n, full := capFull(c, window, req.Key, ch, at, r.CriticalOutsideCaps); full {
			if until.After(h.until) {
				f.capHit, det.Count = i, n
			}
			raise(until, ReasonCap)
		}
	}
	if w, ok := r.outranked(waiting, req, first, at); ok {
		raise(w.Due.Add(priorityGrace), ReasonPriority)
		det.BlockedBy = w.Key
	}
	return h
}

// capFull reports whether cap c has no room at time at for a message on
// channel ch, and if so when the contact that keeps it full leaves the
// window. window is sorted newest first.
func capFull(c Cap, window []Contact, key, ch string, at time.Time, skipCritical bool) (until time.Time, n int, full bool) {
	if c.Channel != "" && c.Channel != ch {
		return time.Time{}, 0, false
	}
	from := at.Add(-c.Window)
	for _, w := range window {
		// Contacts after at count too (see holdAt).
		if w.Key == key || (c.Channel != "" && w.Channel != c.Channel) || (skipCritical && w.Critical) {
			continue
		}
		if !w.At.After(from) {
			break
		}
		n++
		if n == c.Max {
			// The Max-th newest contact is the one that must leave the
			// window before there is room again.
			return w.At.Add(c.Window), n, true
		}
	}
	return time.Time{}, n, false
}

// outranked finds a waiting message that should take the next slot before
// req: one that ranks higher (priority plus aging, then age) and is due
// before req could send again without crowding it out.
func (r Rules) outranked(waiting []Waiting, req Request, first, at time.Time) (Waiting, bool) {
	horizon := max(r.MinGap, priorityGrace)
	mine := r.effective(req.Priority, first, at)
	var best Waiting
	found := false
	for _, w := range waiting {
		// A message paused by an open conversation cannot take the slot
		// while it is open; one the conversation lets through must not
		// wait behind it.
		if w.Key == req.Key || w.Priority == Critical || w.Reason == ReasonConversationOpen {
			continue
		}
		if w.Due.Before(at.Add(-abandonedAfter)) || w.Due.After(at.Add(horizon)) {
			continue
		}
		theirs := r.effective(w.Priority, w.Since, at)
		if theirs < mine || (theirs == mine && !w.Since.Before(first)) {
			continue
		}
		if !found || w.Due.Before(best.Due) {
			best, found = w, true
		}
	}
	return best, found
}

// effective is a priority raised by one level per AgingStep waited, never to
// Critical: aging makes waiting fair without letting anything skip consent
// or quiet hours.
func (r Rules) effective(p Priority, since, at time.Time) Priority {
	p = p.orNormal()
	if p >= Critical {
		return p
	}
	if waited := at.Sub(since); waited > 0 {
		p += Priority(waited / r.agingStep())
	}
	return min(p, High)
}

type basisFact struct {
	basis Basis
	fact  string
}

// channelFacts holds the basis found on each usable channel, and for a
// message with none, why.
type channelFacts struct {
	by   map[string]basisFact
	none string
}

// usableChannels returns the channels a request may go out on, in the
// order to try them: Channel then Fallback, or for Preferred the
// customer's preferred channel then the other. Channels the customer
// cannot receive, or has given no basis to use, are left out and listed
// in skipped, with the first reason.
func (r Rules) usableChannels(rel Relationship, entries []ConsentEntry, req Request) ([]string, []string, Reason, channelFacts) {
	candidates := append([]string{req.Channel}, req.Fallback...)
	if req.Channel == Preferred {
		candidates = []string{Email, Push}
		if rel.Preferred == Push {
			candidates = []string{Push, Email}
		}
	}
	var out, skipped []string
	var first Reason
	facts := channelFacts{by: map[string]basisFact{}}
	for _, ch := range candidates {
		basis, fact, why := r.basis(entries, req, ch)
		if why == "" {
			why = usable(rel.Channels[ch])
		} else if facts.none == "" {
			facts.none = fact
		}
		if why == "" {
			out = append(out, ch)
			facts.by[ch] = basisFact{basis, fact}
			continue
		}
		if first == "" {
			first = why
		}
		skipped = append(skipped, ch+": "+string(why))
	}
	return out, skipped, first, facts
}

// usable says why a channel cannot reach the customer, whatever they
// agreed to.
func usable(s ChannelState) Reason {
	switch {
	case s.Suppressed != "":
		return s.Suppressed
	case !s.Address:
		return ReasonNoAddress
	}
	return ""
}
