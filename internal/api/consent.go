package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/evidence"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// ConfirmTTL is how long a double opt-in confirmation link works.
const ConfirmTTL = 7 * 24 * time.Hour

func (s *Server) retention() store.Retention {
	return s.Retention.WithDefaults()
}

// consentEntryBody is one entry a client records: a consent the customer
// gave (with the wording they saw), a withdrawal, or a soft opt-in from a
// sale.
type consentEntryBody struct {
	Channel        string    `json:"channel"`
	Topic          string    `json:"topic"`
	Action         string    `json:"action"`
	Basis          string    `json:"basis"`
	Wording        string    `json:"wording"`
	WordingVersion string    `json:"wording_version"`
	Locale         string    `json:"locale"`
	At             time.Time `json:"at"`
	Source         string    `json:"source"`
	Evidence       string    `json:"evidence"`
	SaleID         string    `json:"sale_id"`
	SaleAt         time.Time `json:"sale_at"`
	ProductGroup   string    `json:"product_group"`
}

type consentBodies struct {
	Entries []consentEntryBody `json:"entries"`
}

// postConsent appends entries to the customer's consent ledger. The time
// defaults to now; the source to api (import for a back-fill); the actor
// is always the API token's name.
func (s *Server) postConsent(w http.ResponseWriter, r *http.Request) {
	var b consentBodies
	if !decode(w, r, maxBody, &b) {
		return
	}
	if len(b.Entries) == 0 || len(b.Entries) > 100 {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid consent", "send 1 to 100 entries", FieldError{Pointer: "/entries", Detail: "1 to 100 entries"})
		return
	}
	now := s.now()
	var entries []policy.ConsentEntry
	var errs []FieldError
	for i, e := range b.Entries {
		ce := policy.ConsentEntry{Channel: e.Channel, Topic: e.Topic, Action: policy.ConsentAction(e.Action), Basis: policy.Basis(e.Basis),
			Wording: e.Wording, WordingVersion: e.WordingVersion, Locale: e.Locale, At: e.At, Source: e.Source, Actor: client(r),
			Evidence: e.Evidence, SaleID: e.SaleID, SaleAt: e.SaleAt, ProductGroup: e.ProductGroup}
		if ce.At.IsZero() {
			ce.At = now
		}
		if ce.Topic == "" {
			ce.Topic = policy.AllTopics
		}
		if ce.Source == "" {
			ce.Source = policy.SourceAPI
		}
		if ce.Source != policy.SourceAPI && ce.Source != policy.SourceImport {
			errs = append(errs, FieldError{Pointer: fmt.Sprintf("/entries/%d/source", i), Detail: "api or import; the preference centre and double opt-in record their own"})
		}
		if ce.At.After(now.Add(5 * time.Minute)) {
			errs = append(errs, FieldError{Pointer: fmt.Sprintf("/entries/%d/at", i), Detail: "is in the future"})
		}
		if ce.WordingVersion == store.CreatedAgain {
			errs = append(errs, FieldError{Pointer: fmt.Sprintf("/entries/%d/wording_version", i), Detail: "is reserved for lojal's own entries"})
		}
		if err := ce.Validate(); err != nil {
			for _, msg := range strings.Split(err.Error(), "\n") {
				errs = append(errs, FieldError{Pointer: fmt.Sprintf("/entries/%d", i), Detail: msg})
			}
		}
		entries = append(entries, ce)
	}
	if len(errs) > 0 {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid consent", "the entries were not recorded; fix the fields listed", errs...)
		return
	}
	// A client's clock a little ahead: the ledger is read in time order,
	// and an entry stamped ahead would outrank what the customer does
	// meanwhile (an unsubscribe) for good. It is recorded at now, after the
	// batch is put in the order its times give, which the ids then keep.
	slices.SortStableFunc(entries, func(a, b policy.ConsentEntry) int { return a.At.Compare(b.At) })
	for i := range entries {
		if entries[i].At.After(now) {
			entries[i].At = now
		}
	}
	stored, err := s.Store.RecordConsent(r.Context(), r.PathValue("id"), entries)
	if errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"customer": r.PathValue("id"), "entries": stored})
}

// getConsent prints the customer's consent evidence, as JSON or (with
// ?format=html, or a browser's Accept) as a page a person reads.
func (s *Server) getConsent(w http.ResponseWriter, r *http.Request) {
	ev, err := evidence.Build(r.Context(), s.Store, s.Catalog.Current().Rules, r.PathValue("id"), s.retention(), s.now())
	if errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "html" || (r.URL.Query().Get("format") == "" && strings.Contains(r.Header.Get("Accept"), "text/html")) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := ev.HTML(w); err != nil {
			s.Log.Error("consent evidence page", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

type doubleOptInBody struct {
	Wording        string `json:"wording"`
	WordingVersion string `json:"wording_version"`
	Locale         string `json:"locale"`
}

// postDoubleOptIn starts a double opt-in for email: it records the
// request and returns the signed, expiring confirmation link to send to
// the customer's address. The customer's click records the consent.
func (s *Server) postDoubleOptIn(w http.ResponseWriter, r *http.Request) {
	var b doubleOptInBody
	if !decode(w, r, maxBody, &b) {
		return
	}
	var errs []FieldError
	if strings.TrimSpace(b.Wording) == "" {
		errs = append(errs, FieldError{Pointer: "/wording", Detail: "required: the text the customer agreed to, as shown"})
	}
	if strings.TrimSpace(b.WordingVersion) == "" {
		errs = append(errs, FieldError{Pointer: "/wording_version", Detail: "required: the version of that text"})
	}
	if len(errs) > 0 {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid double opt-in", "wording and wording_version are required", errs...)
		return
	}
	now := s.now()
	req, err := s.Store.RequestConsent(r.Context(), store.ConsentRequest{CustomerID: r.PathValue("id"), Wording: b.Wording,
		WordingVersion: b.WordingVersion, Locale: b.Locale, RequestedAt: now, RequestedBy: client(r), ExpiresAt: now.Add(ConfirmTTL)})
	if errors.Is(err, store.ErrNotFound) {
		problem(w, r, http.StatusNotFound, "not-found", "Unknown customer", "no customer with this id and an email address; create it with PUT /v1/customers/{id} first")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	link := s.Links.URL(links.Claims{Kind: links.Confirm, CustomerID: req.CustomerID, Topic: strconv.FormatInt(req.ID, 10), Expires: req.ExpiresAt})
	writeJSON(w, http.StatusCreated, map[string]any{"request": req.ID, "address": req.Address, "confirm_url": link, "expires_at": req.ExpiresAt})
}

// confirmPage shows the wording to confirm, with a button: mail scanners
// that open every link in a message must not confirm for the customer,
// so only the POST records.
func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	c, cust, ok := s.claims(w, r, links.Confirm)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, pageView{Locale: uiLocale(cust.Locale), ConfirmConsent: true, Wording: s.requestWording(r, c)})
}

func (s *Server) requestWording(r *http.Request, c links.Claims) string {
	reqs, err := s.Store.ConsentRequests(r.Context(), c.CustomerID)
	if err != nil {
		return ""
	}
	for _, q := range reqs {
		if strconv.FormatInt(q.ID, 10) == c.Topic {
			return q.Wording
		}
	}
	return ""
}

func (s *Server) confirmConsent(w http.ResponseWriter, r *http.Request) {
	c, cust, ok := s.claims(w, r, links.Confirm)
	if !ok {
		return
	}
	locale := uiLocale(cust.Locale)
	id, err := strconv.ParseInt(c.Topic, 10, 64)
	if err != nil {
		s.render(w, http.StatusBadRequest, pageView{Locale: locale, Problem: "invalid"})
		return
	}
	_, err = s.Store.ConfirmConsent(r.Context(), id, s.now())
	switch {
	case errors.Is(err, store.ErrRequestExpired):
		s.render(w, http.StatusGone, pageView{Locale: locale, Problem: "expired"})
		return
	case errors.Is(err, store.ErrAddressChanged), errors.Is(err, store.ErrNotFound):
		s.render(w, http.StatusConflict, pageView{Locale: locale, Problem: "invalid"})
		return
	case err != nil:
		s.Log.Error("confirm consent", "err", err)
		s.render(w, http.StatusInternalServerError, pageView{Locale: locale, Problem: "invalid"})
		return
	}
	s.render(w, http.StatusOK, pageView{Locale: locale, Note: "confirmed"})
}

// Preference-centre wording: what the customer sees next to each choice
// is what the ledger records they agreed to or withdrew, with a version
// that changes when the words do.
func prefsWording(locale string) func(e policy.ConsentEntry) (string, string) {
	return func(e policy.ConsentEntry) (string, string) {
		var key string
		switch {
		case e.Topic == policy.AllTopics && e.Channel == policy.AllChannels:
			key = "all"
		case e.Topic == policy.AllTopics:
			key = "consent_" + e.Channel
		default:
			key = e.Topic
		}
		text := tr(locale, key)
		sum := sha256.Sum256([]byte(text))
		return text, "preference-centre/" + locale + "/" + key + "/" + hex.EncodeToString(sum[:4])
	}
}

var months = map[string][]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	"nb": {"januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "desember"},
	"sv": {"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"},
	"da": {"januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"},
}

// longDate writes a date as people in locale write it, in the customer's
// zone: 5. januar 2026, 5 januari 2026, 5 January 2026.
func longDate(locale string, t time.Time, tz string) string {
	if loc, err := journey.LoadLocation(tz); err == nil && tz != "" {
		t = t.In(loc)
	}
	m, ok := months[locale]
	if !ok {
		m = months["en"]
	}
	switch locale {
	case "nb", "da":
		return fmt.Sprintf("%d. %s %d", t.Day(), m[t.Month()-1], t.Year())
	}
	return fmt.Sprintf("%d %s %d", t.Day(), m[t.Month()-1], t.Year())
}

// channelStanding says in the customer's words what they agreed to on a
// channel and when.
// channelShown is what the preference centre's box for ch shows: whether
// the customer may be sent marketing there, on consent or on a soft
// opt-in no withdrawal has ended.
func channelShown(entries []policy.ConsentEntry, ch string) bool {
	e, granted := policy.ChannelConsent(entries, ch)
	if granted {
		return true
	}
	return e.Action == "" && slices.ContainsFunc(entries, func(e policy.ConsentEntry) bool { return e.SoftOptInOn(ch) })
}

func channelStanding(locale string, c journey.Customer, entries []policy.ConsentEntry, ch string) string {
	e, granted := policy.ChannelConsent(entries, ch)
	switch {
	case granted && !e.At.IsZero():
		return fmt.Sprintf(tr(locale, "agreed_on"), longDate(locale, e.At, c.Timezone))
	case e.Action == policy.Withdraw:
		return fmt.Sprintf(tr(locale, "withdrawn_on"), longDate(locale, e.At, c.Timezone))
	}
	var sale *policy.ConsentEntry
	for i := range entries {
		if entries[i].SoftOptInOn(ch) {
			sale = &entries[i]
		}
	}
	if sale != nil {
		return fmt.Sprintf(tr(locale, "soft_from"), longDate(locale, sale.SaleAt, c.Timezone), sale.SaleID)
	}
	return ""
}

// topicStanding says when the customer opted out of a topic.
func topicStanding(locale string, c journey.Customer, entries []policy.ConsentEntry, topic string) string {
	if e, out := policy.TopicOptOut(entries, policy.AllChannels, topic); out {
		return fmt.Sprintf(tr(locale, "opted_out_on"), longDate(locale, e.At, c.Timezone))
	}
	return ""
}
