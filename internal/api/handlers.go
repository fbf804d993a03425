package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func (s *Server) putCustomer(w http.ResponseWriter, r *http.Request) {
	var c journey.Customer
	if !decode(w, r, maxBody, &c) {
		return
	}
	id := r.PathValue("id")
	if c.ID == "" {
		c.ID = id
	}
	if c.ID != id {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid customer", "the id in the body differs from the id in the path",
			FieldError{Pointer: "/id", Detail: "must be " + id})
		return
	}
	res, err := s.Dispatcher.Customer(r.Context(), c)
	if errors.Is(err, ingest.ErrInvalid) {
		invalidInput(w, r, "Invalid customer", err)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"id": c.ID, "created": res.Created, "journeys": res.Journeys})
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := s.Store.Customer(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

type consentBody struct {
	Granted *bool  `json:"granted"`
	Source  string `json:"source"`
}

func (s *Server) putConsent(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	if ch != "email" && ch != "push" {
		problem(w, r, http.StatusNotFound, "not-found", "No such channel", "channels are email and push")
		return
	}
	var b consentBody
	if !decode(w, r, maxBody, &b) {
		return
	}
	if b.Granted == nil {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid consent", "granted is required", FieldError{Pointer: "/granted", Detail: "required"})
		return
	}
	// The source travels as evidence; the actor is the API token.
	evidence := ""
	if b.Source != "" {
		evidence = "source given by the client: " + b.Source
	}
	err := s.Store.SetConsent(r.Context(), r.PathValue("id"), ch, *b.Granted, store.Capture{Source: policy.SourceAPI, Actor: client(r), At: s.now(),
		Wording: func(policy.ConsentEntry) (string, string) { return "", "" }, Evidence: evidence})
	if errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	}
	if errors.Is(err, store.ErrCustomersOwnWithdrawal) {
		problem(w, r, http.StatusConflict, "withdrawn-by-customer", "The customer withdrew consent themselves",
			"this route carries no wording, so it cannot grant again what the customer withdrew (unsubscribe, preference centre); "+
				"the customer can, through the preference centre, or record the consent they gave with its wording: POST /v1/customers/{id}/consent")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": r.PathValue("id"), "channel": ch, "granted": *b.Granted})
}

type pushBody struct {
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

func (s *Server) postPushSubscription(w http.ResponseWriter, r *http.Request) {
	var b pushBody
	if !decode(w, r, maxBody, &b) {
		return
	}
	if b.Kind == "" {
		b.Kind = "webpush"
	}
	var errs []FieldError
	switch b.Kind {
	case "webpush":
		if u, err := url.Parse(b.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, FieldError{Pointer: "/endpoint", Detail: "a Web Push endpoint is an https URL"})
		}
		if k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b.Keys.P256dh, "=")); err != nil || len(k) != 65 {
			errs = append(errs, FieldError{Pointer: "/keys/p256dh", Detail: "want the subscription's P-256 key, base64url (65 bytes)"})
		}
		if k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b.Keys.Auth, "=")); err != nil || len(k) != 16 {
			errs = append(errs, FieldError{Pointer: "/keys/auth", Detail: "want the subscription's auth secret, base64url (16 bytes)"})
		}
	case "http":
		if b.Endpoint == "" || len(b.Endpoint) > 4096 {
			errs = append(errs, FieldError{Pointer: "/endpoint", Detail: "the device token for the push provider"})
		}
	default:
		errs = append(errs, FieldError{Pointer: "/kind", Detail: "webpush or http"})
	}
	if len(errs) > 0 {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid push subscription", "", errs...)
		return
	}
	if b.Kind == "webpush" {
		egress := s.PushEgress
		if egress == nil {
			egress = &channel.Egress{}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := egress.CheckURL(ctx, b.Endpoint)
		cancel()
		switch {
		case errors.Is(err, channel.ErrForbiddenAddress):
			why := err.Error()
			if p, ok := channel.IsPermanent(err); ok {
				why = p.Err.Error()
			}
			problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid push subscription", why,
				FieldError{Pointer: "/endpoint", Detail: "not a push service lojal may contact: " + why})
			return
		case err != nil:
			s.Log.Warn("push endpoint lookup", "err", err)
			problem(w, r, http.StatusServiceUnavailable, "unavailable", "Cannot check the endpoint now", "looking up the endpoint's host failed; try again")
			return
		}
	}
	id, err := s.Store.AddPushSubscription(r.Context(), r.PathValue("id"), store.PushSubscription{Kind: b.Kind, Endpoint: b.Endpoint,
		P256dh: b.Keys.P256dh, Auth: b.Keys.Auth})
	if errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": id})
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Customer(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		unknownCustomer(w, r)
		return
	} else if err != nil {
		s.internal(w, r, err)
		return
	}
	hist, err := s.Store.History(r.Context(), id)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if hist == nil {
		hist = []store.LedgerEntry{}
	}
	dlg, err := s.Store.Dialogue(r.Context(), id)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": id, "history": hist, "replies": dlg.Replies,
		"conversations": dlg.Conversations, "answers": dlg.Answers})
}

func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	var e journey.Event
	if !decode(w, r, maxBody, &e) {
		return
	}
	res, err := s.Dispatcher.Accept(r.Context(), []journey.Event{e})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	a := res[0]
	s.countEvent(a.Status)
	switch a.Status {
	case ingest.StatusAccepted:
		writeJSON(w, http.StatusAccepted, a)
	case ingest.StatusDuplicate:
		writeJSON(w, http.StatusOK, a)
	case ingest.StatusConflict:
		problem(w, r, http.StatusConflict, "conflict", "Event id already used", a.Error, FieldError{Pointer: a.Pointer, Detail: a.Error})
	case ingest.StatusUnknownCustomer:
		problem(w, r, http.StatusUnprocessableEntity, "unknown-customer", "Unknown customer", a.Error, FieldError{Pointer: a.Pointer, Detail: a.Error})
	default:
		var errs []FieldError
		if a.Pointer != "" {
			errs = append(errs, FieldError{Pointer: a.Pointer, Detail: a.Error})
		}
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid event", a.Error, errs...)
	}
}

// batchBody holds the events undecoded: each is decoded on its own, so a
// bad one is that event's result and the others are still stored.
type batchBody struct {
	Events []json.RawMessage `json:"events"`
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r, maxBatchBody)
	if !ok {
		return
	}
	var b batchBody
	if err := strictJSON(raw, &b); err != nil {
		p := jsonProblem(err)
		problem(w, r, p.Status, p.Type, p.Title, p.Detail, p.Errors...)
		return
	}
	if len(b.Events) == 0 || len(b.Events) > maxBatch {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid batch", "send 1 to 1000 events", FieldError{Pointer: "/events", Detail: "1 to 1000 events"})
		return
	}
	res := make([]ingest.Accepted, len(b.Events))
	evs := make([]journey.Event, 0, len(b.Events))
	idx := make([]int, 0, len(b.Events))
	for i, rawEvent := range b.Events {
		e, err := decodeEvent(rawEvent)
		if err != nil {
			res[i] = ingest.Invalid(e.ID, err)
			res[i].Pointer = fmt.Sprintf("/events/%d%s", i, res[i].Pointer)
			continue
		}
		evs, idx = append(evs, e), append(idx, i)
	}
	if len(evs) > 0 {
		accepted, err := s.Dispatcher.Accept(r.Context(), evs)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		for k, a := range accepted {
			if a.Pointer != "" {
				a.Pointer = fmt.Sprintf("/events/%d%s", idx[k], a.Pointer)
			}
			res[idx[k]] = a
		}
	}
	counts := map[string]int{}
	for _, a := range res {
		counts[a.Status]++
		s.countEvent(a.Status)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": res, "counts": counts})
}

// decodeEvent decodes one event of a batch strictly. On failure it
// returns what it could read of the event (its id, for the result).
func decodeEvent(raw json.RawMessage) (journey.Event, error) {
	var e journey.Event
	if i := invalidUTF8(raw); i >= 0 {
		_ = json.Unmarshal(raw, &e)
		return journey.Event{ID: e.ID}, fmt.Errorf("not valid UTF-8 (at byte %d of the event)", i)
	}
	if err := strictJSON(raw, &e); err != nil {
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &id)
		p := jsonProblem(err)
		msg := p.Detail
		if len(p.Errors) > 0 {
			return journey.Event{ID: id.ID}, &journey.InputError{Pointer: p.Errors[0].Pointer, Msg: msg + ": " + p.Errors[0].Detail}
		}
		return journey.Event{ID: id.ID}, errors.New(msg)
	}
	return e, nil
}

func (s *Server) countEvent(status string) {
	if s.Metrics != nil {
		s.Metrics.EventsAccepted.WithLabelValues(status).Inc()
	}
}

// postBounce applies a DSN or ARF report. It changes something only when
// the report is about a message lojal sent to the address it names (a
// VERP Return-Path, or the Message-ID or X-Lojal-Key of a ledger row with
// that recipient); anything else is 422 and changes nothing.
func (s *Server) postBounce(w http.ResponseWriter, r *http.Request) {
	if s.Bounces == nil {
		problem(w, r, http.StatusNotFound, "not-found", "Bounce intake is off", "")
		return
	}
	body := http.MaxBytesReader(w, r.Body, bounce.MaxSize)
	raw, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		problem(w, r, http.StatusRequestEntityTooLarge, "too-large", "Report too large", "the limit is 1 MiB")
		return
	}
	if err != nil {
		problem(w, r, http.StatusBadRequest, "malformed", "Unreadable body", err.Error())
		return
	}
	out, err := s.Bounces.Apply(r.Context(), bytes.NewReader(raw))
	switch {
	case errors.Is(err, bounce.ErrStore):
		s.internal(w, r, err)
		return
	case errors.Is(err, bounce.ErrNoMatch):
		problem(w, r, http.StatusUnprocessableEntity, "no-matching-message", "Report matches no message lojal sent",
			fmt.Sprintf("%v; nothing was changed (%d recipient(s) named)", err, len(out.Results)))
		return
	case errors.Is(err, bounce.ErrTooManyRecipients):
		problem(w, r, http.StatusUnprocessableEntity, "too-many-recipients", "Report names too many recipients",
			fmt.Sprintf("%v; lojal sends each message to one address", err))
		return
	case err != nil:
		problem(w, r, http.StatusUnprocessableEntity, "not-a-report", "Not a bounce or complaint report", err.Error())
		return
	}
	if s.Metrics != nil {
		for _, res := range out.Results {
			if res.Applied && (res.Kind == bounce.HardBounce || res.Kind == bounce.Complaint) {
				s.Metrics.Suppressions.WithLabelValues(string(res.Kind)).Inc()
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out.Results, "message_id": out.Report.MessageID})
}

// getSuppressions lists suppressed addresses, a page at a time
// (?after=channel/address from the previous page's next), or one
// (?address=).
func (s *Server) getSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := store.SuppressionPage{Address: q.Get("address"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid limit", "limit is 1 to 1000")
			return
		}
		page.Limit = n
	}
	if a := q.Get("after"); a != "" {
		ch, addr, ok := strings.Cut(a, "/")
		if !ok {
			problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid cursor", "after is channel/address, as in next")
			return
		}
		page.AfterChannel, page.AfterAddress = ch, addr
	}
	list, err := s.Store.Suppressions(r.Context(), page)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	res := map[string]any{"suppressions": list}
	if list == nil {
		res["suppressions"] = []store.Suppression{}
	}
	if len(list) == page.Limit {
		last := list[len(list)-1]
		res["next"] = last.Channel + "/" + last.Address
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) getLifts(w http.ResponseWriter, r *http.Request) {
	lifts, err := s.Store.Lifts(r.Context(), r.URL.Query().Get("address"), 1000)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if lifts == nil {
		lifts = []store.Lift{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"lifts": lifts})
}

type liftBody struct {
	Reason string `json:"reason"`
}

// deleteSuppression lifts a suppression, recording which API client did
// it and why.
func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	if ch != "email" && ch != "push" {
		problem(w, r, http.StatusNotFound, "not-found", "No such channel", "channels are email and push")
		return
	}
	var b liftBody
	if !decode(w, r, maxBody, &b) {
		return
	}
	if strings.TrimSpace(b.Reason) == "" || len(b.Reason) > 1000 || !plainText(b.Reason) {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Say why", "reason is required (why the address may be written to again): at most 1000 characters of text, no NUL",
			FieldError{Pointer: "/reason", Detail: "required"})
		return
	}
	lift, err := s.Store.LiftSuppression(r.Context(), ch, r.PathValue("address"), client(r), b.Reason)
	if errors.Is(err, store.ErrNotFound) {
		problem(w, r, http.StatusNotFound, "not-suppressed", "Not suppressed", err.Error())
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.Log.Info("suppression lifted", "channel", ch, "address", lift.Address, "was", lift.Reason, "by", lift.LiftedBy, "why", lift.Why)
	writeJSON(w, http.StatusOK, lift)
}

func unknownCustomer(w http.ResponseWriter, r *http.Request) {
	problem(w, r, http.StatusNotFound, "unknown-customer", "Unknown customer", "no customer "+r.PathValue("id"))
}

// eventView is an event with its routing state, as GET /v1/events/{id}
// answers.
type eventView struct {
	store.EventRecord
	Status string `json:"status"`
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	rec, err := s.Store.Event(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		problem(w, r, http.StatusNotFound, "not-found", "No such event", "no event "+r.PathValue("id"))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if rec.Routes == nil {
		rec.Routes = []store.Route{}
	}
	writeJSON(w, http.StatusOK, eventView{EventRecord: rec, Status: rec.Status()})
}
