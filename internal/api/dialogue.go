package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/store"
)

// One-click answers (/a/{token}) and marking conversations answered
// (/c/{token} and POST /v1/conversations/{id}/answered). Pages work
// without JavaScript; a forged, tampered or expired link gets the same
// page as any invalid link and changes nothing.

var answerText = map[string]map[string]string{
	"en": {"title": "Thank you", "thanks": "Thank you, %s. We have your answer.", "more": "Anything you want to add? A person reads it.",
		"send": "Send", "sent": "Thank you. We will get back to you.", "changed": "We had your first answer already; we have noted the change.",
		"invalid": "This link is not valid. Use the link in your most recent message from us.",
		"expired": "This link has expired. Use the link in your most recent message from us."},
	"nb": {"title": "Takk", "thanks": "Takk, %s. Vi har fått svaret ditt.", "more": "Vil du legge til noe? Et menneske leser det.",
		"send": "Send", "sent": "Takk. Vi tar kontakt med deg.", "changed": "Vi hadde allerede det første svaret ditt; vi har notert endringen.",
		"invalid": "Denne lenken er ikke gyldig. Bruk lenken i den siste meldingen fra oss.",
		"expired": "Denne lenken er utløpt. Bruk lenken i den siste meldingen fra oss."},
	"sv": {"title": "Tack", "thanks": "Tack, %s. Vi har fått ditt svar.", "more": "Vill du lägga till något? En människa läser det.",
		"send": "Skicka", "sent": "Tack. Vi återkommer till dig.", "changed": "Vi hade redan ditt första svar; vi har noterat ändringen.",
		"invalid": "Den här länken är inte giltig. Använd länken i vårt senaste meddelande.",
		"expired": "Den här länken har gått ut. Använd länken i vårt senaste meddelande."},
	"da": {"title": "Tak", "thanks": "Tak, %s. Vi har fået dit svar.", "more": "Vil du tilføje noget? Et menneske læser det.",
		"send": "Send", "sent": "Tak. Vi vender tilbage til dig.", "changed": "Vi havde allerede dit første svar; vi har noteret ændringen.",
		"invalid": "Dette link er ikke gyldigt. Brug linket i den seneste besked fra os.",
		"expired": "Dette link er udløbet. Brug linket i den seneste besked fra os."},
}

func atr(locale, key string) string {
	if s, ok := answerText[locale][key]; ok {
		return s
	}
	return answerText["en"][key]
}

var answerPage = template.Must(template.New("answer").Funcs(template.FuncMap{"tr": atr, "printf": fmt.Sprintf}).Parse(`<!doctype html>
<html lang="{{ .Locale }}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ tr .Locale "title" }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1d2733; background: #f6f7f9; }
main { background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
textarea { width: 100%; min-height: 7rem; font: inherit; box-sizing: border-box; }
button { font: inherit; padding: .6rem 1rem; border-radius: 8px; border: 1px solid #2f6fb3; background: #2f6fb3; color: #fff; margin-top: .75rem; }
p.note { padding: .8rem 1rem; background: #eef5ee; border-radius: 8px; }
p.problem { padding: .8rem 1rem; background: #fbeeee; border-radius: 8px; }
</style></head>
<body><main>
{{ if .Problem }}<p class="problem" id="problem">{{ tr .Locale .Problem }}</p>
{{ else }}<h1>{{ tr .Locale "title" }}</h1>
<p id="thanks">{{ printf (tr .Locale "thanks") .Name }}</p>
{{ if .Changed }}<p class="note" id="changed">{{ tr .Locale "changed" }}</p>{{ end }}
{{ if .Sent }}<p class="note" id="sent">{{ tr .Locale "sent" }}</p>
{{ else if .Form }}<form method="post"><label for="text">{{ tr .Locale "more" }}</label>
<textarea id="text" name="text" maxlength="4000"></textarea>
<button type="submit">{{ tr .Locale "send" }}</button></form>{{ end }}
{{ end }}
</main></body></html>
`))

type answerView struct {
	Locale, Problem, Name string
	Changed, Sent, Form   bool
}

func (s *Server) renderAnswer(w http.ResponseWriter, status int, v answerView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := answerPage.Execute(w, v); err != nil {
		s.Log.Error("answer page", "err", err)
	}
}

// answerClaims verifies an answer link and loads its customer.
func (s *Server) answerClaims(w http.ResponseWriter, r *http.Request) (links.AnswerClaims, journey.Customer, bool) {
	locale := uiLocale(r.Header.Get("Accept-Language"))
	c, err := s.Links.VerifyAnswer(r.PathValue("token"), s.now())
	switch {
	case errors.Is(err, links.ErrExpired):
		s.renderAnswer(w, http.StatusGone, answerView{Locale: locale, Problem: "expired"})
		return c, journey.Customer{}, false
	case err != nil:
		s.renderAnswer(w, http.StatusBadRequest, answerView{Locale: locale, Problem: "invalid"})
		return c, journey.Customer{}, false
	}
	cust, err := s.Store.Customer(r.Context(), c.CustomerID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.Log.Error("answer", "err", err)
		}
		s.renderAnswer(w, http.StatusBadRequest, answerView{Locale: locale, Problem: "invalid"})
		return c, cust, false
	}
	return c, cust, true
}

// AnswerAttribute is the customer attribute an answer sets when the
// schema declares it: <question>_answer (checkin_answer).
func AnswerAttribute(survey string) string { return strings.ReplaceAll(survey, "-", "_") + "_answer" }

// answerEventID names the survey.answered event of a customer's answer to
// a question, one per customer and question, within the 128 characters an
// event id may have: a customer id too long for it is named by its hash.
func answerEventID(survey, customer string) string {
	if id := "survey:" + survey + ":" + customer; len(id) <= 128 {
		return id
	}
	sum := sha256.Sum256([]byte(survey + "\x00" + customer))
	return "survey-hash:" + hex.EncodeToString(sum[:])
}

// answer records a one-click answer. The first answer counts: it is a
// survey.answered event and sets the declared attribute; opening the
// same link again changes nothing; a different later answer is recorded
// as a change only.
func (s *Server) answer(w http.ResponseWriter, r *http.Request) {
	claims, c, ok := s.answerClaims(w, r)
	if !ok {
		return
	}
	v := answerView{Locale: uiLocale(c.Locale), Form: true}
	v.Name, _ = c.Attributes["first_name"].(string)
	if r.Method == http.MethodHead {
		// A link checker or a mail scanner probing the link: no one
		// answered (the mux routes HEAD to this GET route).
		s.renderAnswer(w, http.StatusOK, v)
		return
	}
	now := s.now()
	eventID := answerEventID(claims.Survey, c.ID)
	rec, err := s.Store.RecordAnswer(r.Context(), c.ID, claims.Survey, claims.Answer, eventID, now)
	if err != nil {
		s.Log.Error("record answer", "err", err)
		s.renderAnswer(w, http.StatusInternalServerError, answerView{Locale: v.Locale, Problem: "invalid"})
		return
	}
	v.Changed = rec.Changed
	cat := s.Catalog.Current()
	if rec.Noted {
		s.Metrics.Dialog("survey_change", claims.Survey)
	}
	// The event is routed again on every open of the first answer's link
	// until it was stored: ingest is idempotent by id, so a failure half
	// way is repaired by the next click rather than lost.
	if rec.Answer == claims.Answer && !rec.Changed {
		if rec.First {
			s.Metrics.Dialog("survey_answer", claims.Survey)
		}
		e := journey.Event{ID: eventID, Type: dialogue.AnsweredEvent, CustomerID: c.ID, At: now,
			Data: map[string]any{"survey": claims.Survey, "answer": claims.Answer}}
		if _, declared := cat.Schema.Events[dialogue.AnsweredEvent]; !declared {
			s.Log.Warn("answer recorded, but no journey sees it: declare survey.answered in schema.yaml", "customer", c.ID, "survey", claims.Survey)
		} else if _, err := s.Dispatcher.Event(r.Context(), e); err != nil && !errors.Is(err, ingest.ErrConflict) {
			s.Log.Error("answer event", "err", err)
		}
		if attr := AnswerAttribute(claims.Survey); rec.First && cat.Schema.Customer[attr] != "" {
			if c.Attributes == nil {
				c.Attributes = map[string]any{}
			}
			if c.Attributes[attr] != claims.Answer {
				c.Attributes[attr] = claims.Answer
				// Only the attribute: consent and opt-outs left out are
				// kept as stored. Written back as read, a soft opt-in
				// (which reads as consent false) became a withdrawal.
				c.Consent, c.TopicsOptedOut = nil, nil
				if _, err := s.Dispatcher.Customer(r.Context(), c); err != nil {
					s.Log.Error("answer attribute", "attribute", attr, "err", err)
				}
			}
		}
	}
	s.renderAnswer(w, http.StatusOK, v)
}

// answerText takes the free text written on the thank-you page: it is
// kept with the answer and goes to the helper like a reply.
func (s *Server) answerMore(w http.ResponseWriter, r *http.Request) {
	claims, c, ok := s.answerClaims(w, r)
	if !ok {
		return
	}
	v := answerView{Locale: uiLocale(c.Locale), Sent: true}
	v.Name, _ = c.Attributes["first_name"].(string)
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderAnswer(w, http.StatusBadRequest, answerView{Locale: v.Locale, Problem: "invalid"})
		return
	}
	// Postgres stores no NUL: drop it rather than lose the text.
	text := strings.TrimSpace(strings.ToValidUTF8(strings.ReplaceAll(r.PostForm.Get("text"), "\x00", ""), "\uFFFD"))
	if utf8.RuneCountInString(text) > 4000 {
		text = string([]rune(text)[:4000])
	}
	if text == "" {
		v.Sent, v.Form = false, true
		s.renderAnswer(w, http.StatusOK, v)
		return
	}
	// Only the customer's own first answer takes text: a link opened for
	// another answer, later, cannot write over it.
	rec, err := s.Store.RecordAnswer(r.Context(), c.ID, claims.Survey, claims.Answer, answerEventID(claims.Survey, c.ID), s.now())
	if err != nil {
		s.Log.Error("record answer", "err", err)
		s.renderAnswer(w, http.StatusInternalServerError, answerView{Locale: v.Locale, Problem: "invalid"})
		return
	}
	if rec.Answer == claims.Answer {
		if err := s.Store.SetAnswerText(r.Context(), c.ID, claims.Survey, text); err != nil {
			s.Log.Error("answer text", "err", err)
		}
	}
	if s.Replies != nil {
		if err := s.Replies.TakeText(r.Context(), c, claims.Survey, claims.Journey, claims.Expires.UTC().Format(time.RFC3339Nano), text); err != nil {
			s.Log.Error("answer text to helper", "err", err)
		}
	}
	s.renderAnswer(w, http.StatusOK, v)
}

var answeredPage = template.Must(template.New("answered").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Conversation</title></head>
<body><main>
{{ if .Problem }}<p id="problem">{{ .Problem }}</p>
{{ else if .Done }}<p id="done">{{ .Done }}</p>
{{ else }}<p>{{ .Who }} wrote to us. Mark the conversation answered once you have answered: marketing to them waits until then.</p>
<form method="post"><button type="submit">Mark as answered</button></form>{{ end }}
</main></body></html>
`))

// answeredLink serves the signed link in a forwarded reply: GET shows a
// button (mail scanners that open links mark nothing), POST marks.
func (s *Server) answeredLink(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	claims, err := s.Links.Verify(links.Answered, r.PathValue("token"), s.now())
	v := struct{ Problem, Done, Who string }{}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		v.Problem = "This link is not valid or has expired."
		_ = answeredPage.Execute(w, v)
		return
	}
	conv, err := s.Store.Conversation(r.Context(), claims.CustomerID)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		v.Problem = "This link is not valid or has expired."
		_ = answeredPage.Execute(w, v)
		return
	}
	if r.Method == http.MethodPost {
		if _, err := s.answerConversation(r, conv.ID, "link"); err != nil {
			s.Log.Error("mark answered", "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			v.Problem = "Could not mark it answered; try again."
			_ = answeredPage.Execute(w, v)
			return
		}
		v.Done = "Marked as answered. Thank you."
	} else if conv.AnsweredAt != nil {
		v.Done = "This conversation is answered."
	}
	v.Who = "The customer"
	_ = answeredPage.Execute(w, v)
}

func (s *Server) answerConversation(r *http.Request, id, by string) (bool, error) {
	answered, err := s.Store.AnswerConversation(r.Context(), id, by, s.now())
	if err == nil && answered {
		s.Metrics.Dialog("answered", "")
	}
	return answered, err
}

// postAnswered marks a conversation answered (a helpdesk calls it).
func (s *Server) postAnswered(w http.ResponseWriter, r *http.Request) {
	var body struct {
		By string `json:"by"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		problem(w, r, http.StatusBadRequest, "malformed", "Malformed JSON", "the body must be empty or {\"by\": \"name\"}: "+err.Error())
		return
	}
	by := strings.TrimSpace(body.By)
	if by == "" {
		by = "api"
	}
	id := r.PathValue("id")
	answered, err := s.answerConversation(r, id, by)
	if errors.Is(err, store.ErrNotFound) {
		problem(w, r, http.StatusNotFound, "not-found", "No such conversation", "no conversation "+id)
		return
	}
	if err != nil {
		s.Log.Error("mark answered", "err", err)
		problem(w, r, http.StatusInternalServerError, "internal", "Internal error", "could not mark the conversation answered")
		return
	}
	conv, err := s.Store.Conversation(r.Context(), id)
	if err != nil {
		problem(w, r, http.StatusInternalServerError, "internal", "Internal error", "could not read the conversation")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation": conv, "answered_now": answered})
}
