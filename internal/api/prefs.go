package api

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/store"
)

// The preference centre: every message links to it with a signed,
// expiring token that names one customer. Pages speak the customer's
// language; a bad or expired link gets a clear page and reveals nothing.

var text = map[string]map[string]string{
	"en": {
		"consent_email": "Email me news and offers", "consent_push": "Send me news and offers as push notifications",
		"agreed_on": "You agreed on %s.", "withdrawn_on": "You said no on %s.", "opted_out_on": "You opted out on %s.",
		"soft_from":       "You bought from us on %s (order %s), so we may tell you about similar products until you say no.",
		"confirm_consent": "Please confirm that you agree:", "confirm_button": "Yes, I agree", "confirmed": "Thank you. We have recorded that you agree.",
		"title": "What we send you", "hello": "Hi %s, choose what you want to hear from us.", "topics": "Topics", "channels": "Channels",
		"email": "Email", "push": "Push notifications", "save": "Save my choices", "all": "Unsubscribe from everything",
		"saved": "Saved. We will only send you what you chose.", "unsubscribed": "You are unsubscribed. We will not send you these messages again.",
		"unsubscribed_all": "You are unsubscribed from everything. We will not contact you again unless you opt back in.",
		"confirm":          "Unsubscribe from %s?", "confirm_all": "Unsubscribe from all messages?", "yes": "Unsubscribe",
		"invalid": "This link is not valid. Use the link in your most recent message from us.",
		"expired": "This link has expired. Use the link in your most recent message from us.",
		"service": "Service messages about your policies", "onboarding": "Getting started", "feedback": "Questions about how we are doing",
		"loyalty": "Benefits and thank-yous",
	},
	"nb": {
		"consent_email": "Send meg nyheter og tilbud på e-post", "consent_push": "Send meg nyheter og tilbud som push-varsler",
		"agreed_on": "Du samtykket %s.", "withdrawn_on": "Du sa nei %s.", "opted_out_on": "Du meldte deg av %s.",
		"soft_from":       "Du handlet hos oss %s (ordre %s), så vi kan fortelle deg om lignende produkter til du sier nei.",
		"confirm_consent": "Bekreft at du samtykker:", "confirm_button": "Ja, jeg samtykker", "confirmed": "Takk. Vi har registrert samtykket ditt.",
		"title": "Hva vi sender deg", "hello": "Hei %s, velg hva du vil høre fra oss om.", "topics": "Emner", "channels": "Kanaler",
		"email": "E-post", "push": "Push-varsler", "save": "Lagre valgene mine", "all": "Meld meg av alt",
		"saved": "Lagret. Vi sender deg bare det du har valgt.", "unsubscribed": "Du er meldt av. Vi sender deg ikke disse meldingene igjen.",
		"unsubscribed_all": "Du er meldt av alt. Vi kontakter deg ikke igjen før du melder deg på.",
		"confirm":          "Melde deg av %s?", "confirm_all": "Melde deg av alle meldinger?", "yes": "Meld meg av",
		"invalid": "Denne lenken er ikke gyldig. Bruk lenken i den siste meldingen fra oss.",
		"expired": "Denne lenken er utløpt. Bruk lenken i den siste meldingen fra oss.",
		"service": "Servicemeldinger om avtalene dine", "onboarding": "Kom i gang", "feedback": "Spørsmål om hvordan vi gjør det",
		"loyalty": "Fordeler og takk",
	},
	"sv": {
		"consent_email": "Skicka nyheter och erbjudanden till mig via e-post", "consent_push": "Skicka nyheter och erbjudanden till mig som pushnotiser",
		"agreed_on": "Du samtyckte %s.", "withdrawn_on": "Du sa nej %s.", "opted_out_on": "Du avregistrerade dig %s.",
		"soft_from":       "Du handlade hos oss %s (order %s), så vi får berätta om liknande produkter tills du säger nej.",
		"confirm_consent": "Bekräfta att du samtycker:", "confirm_button": "Ja, jag samtycker", "confirmed": "Tack. Vi har registrerat ditt samtycke.",
		"title": "Vad vi skickar till dig", "hello": "Hej %s, välj vad du vill höra från oss om.", "topics": "Ämnen", "channels": "Kanaler",
		"email": "E-post", "push": "Pushnotiser", "save": "Spara mina val", "all": "Avsluta allt",
		"saved": "Sparat. Vi skickar bara det du har valt.", "unsubscribed": "Du är avregistrerad. Vi skickar inte dessa meddelanden igen.",
		"unsubscribed_all": "Du är avregistrerad från allt. Vi kontaktar dig inte igen förrän du anmäler dig.",
		"confirm":          "Avregistrera dig från %s?", "confirm_all": "Avregistrera dig från alla meddelanden?", "yes": "Avregistrera",
		"invalid": "Den här länken är inte giltig. Använd länken i vårt senaste meddelande.",
		"expired": "Den här länken har gått ut. Använd länken i vårt senaste meddelande.",
		"service": "Servicemeddelanden om dina avtal", "onboarding": "Kom igång", "feedback": "Frågor om hur vi sköter oss",
		"loyalty": "Förmåner och tack",
	},
	"da": {
		"consent_email": "Send mig nyheder og tilbud på e-mail", "consent_push": "Send mig nyheder og tilbud som push-beskeder",
		"agreed_on": "Du gav samtykke %s.", "withdrawn_on": "Du sagde nej %s.", "opted_out_on": "Du afmeldte dig %s.",
		"soft_from":       "Du handlede hos os %s (ordre %s), så vi må fortælle dig om lignende produkter, indtil du siger nej.",
		"confirm_consent": "Bekræft, at du giver samtykke:", "confirm_button": "Ja, jeg giver samtykke", "confirmed": "Tak. Vi har registreret dit samtykke.",
		"title": "Hvad vi sender dig", "hello": "Hej %s, vælg hvad du vil høre fra os om.", "topics": "Emner", "channels": "Kanaler",
		"email": "E-mail", "push": "Push-beskeder", "save": "Gem mine valg", "all": "Afmeld alt",
		"saved": "Gemt. Vi sender dig kun det, du har valgt.", "unsubscribed": "Du er afmeldt. Vi sender dig ikke disse beskeder igen.",
		"unsubscribed_all": "Du er afmeldt alt. Vi kontakter dig ikke igen, før du tilmelder dig.",
		"confirm":          "Afmelde %s?", "confirm_all": "Afmelde alle beskeder?", "yes": "Afmeld",
		"invalid": "Dette link er ikke gyldigt. Brug linket i den seneste besked fra os.",
		"expired": "Dette link er udløbet. Brug linket i den seneste besked fra os.",
		"service": "Servicebeskeder om dine aftaler", "onboarding": "Kom i gang", "feedback": "Spørgsmål om hvordan vi klarer os",
		"loyalty": "Fordele og tak",
	},
}

// uiLocale picks the page language from a customer locale or an
// Accept-Language header.
func uiLocale(candidates ...string) string {
	for _, c := range candidates {
		for _, part := range strings.Split(c, ",") {
			tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			for _, l := range render.Chain(tag) {
				if _, ok := text[l]; ok && l != render.FallbackLocale {
					return l
				}
			}
		}
	}
	return render.FallbackLocale
}

func tr(locale, key string) string {
	if s, ok := text[locale][key]; ok {
		return s
	}
	if s, ok := text["en"][key]; ok {
		return s
	}
	return strings.ReplaceAll(key, "_", " ")
}

// The page's text comes from tr and the customer's name from the
// database; html/template escapes both.
var page = template.Must(template.New("page").Funcs(template.FuncMap{"tr": tr, "printf": fmt.Sprintf}).Parse(`<!doctype html>
<html lang="{{ .Locale }}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ tr .Locale "title" }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1d2733; background: #f6f7f9; }
main { background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 1.4rem; margin-top: 0; } h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; color: #4a5563; }
label { display: block; padding: .45rem 0; } input[type=checkbox] { margin-right: .6rem; transform: scale(1.2); }
.buttons { margin-top: 1.5rem; display: flex; gap: .75rem; flex-wrap: wrap; }
button { font: inherit; padding: .6rem 1rem; border-radius: 8px; border: 1px solid #2f6fb3; cursor: pointer; }
button.primary { background: #2f6fb3; color: #fff; } button.secondary { background: #fff; color: #2f6fb3; }
p.note { padding: .8rem 1rem; background: #eef5ee; border-radius: 8px; }
p.problem { padding: .8rem 1rem; background: #fbeeee; border-radius: 8px; }
p.since { margin: -.3rem 0 .4rem 2rem; font-size: .85rem; color: #5a6573; }
blockquote { margin: 1rem 0; padding: .6rem 1rem; border-left: 4px solid #2f6fb3; background: #f6f7f9; }
</style></head>
<body><main>
<h1>{{ tr .Locale "title" }}</h1>
{{ if .Problem }}<p class="problem" id="problem">{{ tr .Locale .Problem }}</p>
{{ else }}
{{ if .Note }}<p class="note" id="note">{{ tr .Locale .Note }}</p>{{ end }}
{{ if .ConfirmConsent }}
<form method="post">
<p>{{ tr .Locale "confirm_consent" }}</p>
<blockquote id="wording">{{ .Wording }}</blockquote>
<div class="buttons"><button class="primary" type="submit">{{ tr .Locale "confirm_button" }}</button></div>
</form>
{{ else if .Confirm }}
<form method="post">
<p>{{ if .Topic }}{{ printf (tr .Locale "confirm") (tr .Locale .Topic) }}{{ else }}{{ tr .Locale "confirm_all" }}{{ end }}</p>
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<div class="buttons"><button class="primary" type="submit">{{ tr .Locale "yes" }}</button></div>
</form>
{{ else if .Form }}
<p>{{ printf (tr .Locale "hello") .Name }}</p>
<form method="post">
<input type="hidden" name="shown" value="form">
{{ range .Topics }}{{ if .On }}<input type="hidden" name="shown" value="topic:{{ .ID }}">
{{ end }}{{ end }}{{ if .Email }}<input type="hidden" name="shown" value="channel:email">
{{ end }}{{ if .Push }}<input type="hidden" name="shown" value="channel:push">
{{ end }}<h2>{{ tr .Locale "topics" }}</h2>
{{ range .Topics }}<label><input type="checkbox" name="topic" value="{{ .ID }}"{{ if .On }} checked{{ end }}>{{ tr $.Locale .ID }}</label>
{{ if .Since }}<p class="since" data-topic="{{ .ID }}">{{ .Since }}</p>{{ end }}
{{ end }}
<h2>{{ tr .Locale "channels" }}</h2>
<label><input type="checkbox" name="channel" value="email"{{ if .Email }} checked{{ end }}>{{ tr .Locale "consent_email" }}</label>
{{ if .EmailSince }}<p class="since" data-channel="email">{{ .EmailSince }}</p>{{ end }}
<label><input type="checkbox" name="channel" value="push"{{ if .Push }} checked{{ end }}>{{ tr .Locale "consent_push" }}</label>
{{ if .PushSince }}<p class="since" data-channel="push">{{ .PushSince }}</p>{{ end }}
<div class="buttons">
<button class="primary" type="submit" name="action" value="save">{{ tr .Locale "save" }}</button>
<button class="secondary" type="submit" name="action" value="unsubscribe_all">{{ tr .Locale "all" }}</button>
</div>
</form>
{{ end }}
{{ end }}
</main></body></html>
`))

type topicView struct {
	ID string
	On bool
	// Since says when the customer opted out, in their words.
	Since string
}

type pageView struct {
	Locale  string
	Problem string
	Note    string
	Form    bool
	Confirm bool
	Name    string
	Topic   string
	Topics  []topicView
	Email   bool
	Push    bool
	// EmailSince and PushSince say what the customer agreed to on the
	// channel and when.
	EmailSince, PushSince string
	// ConfirmConsent asks to confirm a double opt-in of Wording.
	ConfirmConsent bool
	Wording        string
}

func (s *Server) render(w http.ResponseWriter, status int, v pageView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := page.Execute(w, v); err != nil {
		s.Log.Error("preference page", "err", err)
	}
}

// claims verifies the link as a link of kind (each kind works only on its
// own path); on failure it renders the problem page.
func (s *Server) claims(w http.ResponseWriter, r *http.Request, kind string) (links.Claims, journey.Customer, bool) {
	locale := uiLocale(r.Header.Get("Accept-Language"))
	c, err := s.Links.Verify(kind, r.PathValue("token"), s.now())
	switch {
	case errors.Is(err, links.ErrExpired):
		s.render(w, http.StatusGone, pageView{Locale: locale, Problem: "expired"})
		return c, journey.Customer{}, false
	case err != nil:
		s.render(w, http.StatusBadRequest, pageView{Locale: locale, Problem: "invalid"})
		return c, journey.Customer{}, false
	}
	cust, err := s.Store.Customer(r.Context(), c.CustomerID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.Log.Error("preference centre", "err", err)
		}
		s.render(w, http.StatusNotFound, pageView{Locale: locale, Problem: "invalid"})
		return c, cust, false
	}
	return c, cust, true
}

// topics lists the topics of deployed journeys.
func (s *Server) topics() []string { return s.Catalog.Current().Topics() }

// formView shows the customer's choices and, next to each, what they
// agreed to and when, from their consent ledger.
func (s *Server) formView(r *http.Request, c journey.Customer) (pageView, error) {
	entries, err := s.Store.ConsentEntries(r.Context(), c.ID)
	if err != nil {
		return pageView{}, err
	}
	locale := uiLocale(c.Locale)
	v := pageView{Locale: locale, Form: true, Email: channelShown(entries, "email"), Push: channelShown(entries, "push"),
		EmailSince: channelStanding(locale, c, entries, "email"), PushSince: channelStanding(locale, c, entries, "push")}
	v.Name, _ = c.Attributes["first_name"].(string)
	for _, t := range s.topics() {
		v.Topics = append(v.Topics, topicView{ID: t, On: !slices.Contains(c.TopicsOptedOut, t), Since: topicStanding(locale, c, entries, t)})
	}
	return v, nil
}

func (s *Server) preferencesPage(w http.ResponseWriter, r *http.Request) {
	_, c, ok := s.claims(w, r, links.Preferences)
	if !ok {
		return
	}
	v, err := s.formView(r, c)
	if err != nil {
		s.Log.Error("preference centre", "err", err)
		s.render(w, http.StatusInternalServerError, pageView{Locale: uiLocale(c.Locale), Problem: "invalid"})
		return
	}
	s.render(w, http.StatusOK, v)
}

// customerCapture is how the customer's own choices are recorded: by the
// customer, at the moment they chose, in the words they saw.
func (s *Server) customerCapture(c journey.Customer, source string) store.Capture {
	locale := uiLocale(c.Locale)
	return store.Capture{Source: source, Actor: "customer", Locale: locale, At: s.now(), Wording: prefsWording(locale)}
}

func (s *Server) savePreferences(w http.ResponseWriter, r *http.Request) {
	claims, c, ok := s.claims(w, r, links.Preferences)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, pageView{Locale: uiLocale(c.Locale), Problem: "invalid"})
		return
	}
	known := s.topics()
	var optedOut []string
	consent := map[string]bool{}
	note := "saved"
	var err error
	if r.PostForm.Get("action") == "unsubscribe_all" {
		note = "unsubscribed_all"
		err = s.Store.Unsubscribe(r.Context(), claims.CustomerID, "", known, s.customerCapture(c, policy.SourcePreferenceCentre))
	} else {
		// Only a box the customer changed is recorded: one left as the
		// page showed it records nothing, so a tab opened before an
		// unsubscribe cannot undo it, nor a soft opt-in (shown ticked)
		// end. The page says what it showed ("shown"); a form without it
		// is compared with the ledger now.
		keep, shown := r.PostForm["topic"], r.PostForm["shown"]
		stated := slices.Contains(shown, "form")
		var entries []policy.ConsentEntry
		if !stated {
			entries, err = s.Store.ConsentEntries(r.Context(), claims.CustomerID)
		}
		optedOut = slices.Clone(c.TopicsOptedOut)
		for _, t := range known {
			ticked := slices.Contains(keep, t)
			was := !slices.Contains(c.TopicsOptedOut, t)
			if stated {
				was = slices.Contains(shown, "topic:"+t)
			}
			switch {
			case ticked == was:
			case ticked:
				optedOut = slices.DeleteFunc(optedOut, func(o string) bool { return o == t })
			case !slices.Contains(optedOut, t):
				optedOut = append(optedOut, t)
			}
		}
		for _, ch := range []string{"email", "push"} {
			was := channelShown(entries, ch)
			if stated {
				was = slices.Contains(shown, "channel:"+ch)
			}
			if ticked := slices.Contains(r.PostForm["channel"], ch); ticked != was {
				consent[ch] = ticked
			}
		}
	}
	if note == "saved" && err == nil {
		// Opt-outs of topics no longer deployed are kept (optedOut
		// starts from the customer's).
		_, err = s.Store.SetPreferences(r.Context(), claims.CustomerID, store.Preferences{Consent: consent, OptedOut: optedOut},
			s.customerCapture(c, policy.SourcePreferenceCentre))
	}
	if err == nil {
		c, err = s.Store.Customer(r.Context(), claims.CustomerID)
	}
	var v pageView
	if err == nil {
		v, err = s.formView(r, c)
	}
	if err != nil {
		s.Log.Error("save preferences", "err", err)
		s.render(w, http.StatusInternalServerError, pageView{Locale: uiLocale(c.Locale), Problem: "invalid"})
		return
	}
	if s.Metrics != nil {
		s.Metrics.PreferenceCentre.WithLabelValues(note).Inc()
	}
	v.Note = note
	s.render(w, http.StatusOK, v)
}

// unsubscribePage asks to confirm. It links to nothing else: an
// unsubscribe link (which mail providers see in List-Unsubscribe) must not
// lead to the preference centre, nor mint a link that outlives it.
func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	claims, c, ok := s.claims(w, r, links.Unsubscribe)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, pageView{Locale: uiLocale(c.Locale), Confirm: true, Topic: claims.Topic})
}

// unsubscribe handles the RFC 8058 one-click POST (mail clients send
// "List-Unsubscribe=One-Click" with no page) and the confirm button.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	claims, c, ok := s.claims(w, r, links.Unsubscribe)
	if !ok {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
	note := "unsubscribed"
	if claims.Topic == "" {
		note = "unsubscribed_all"
	}
	capture := s.customerCapture(c, policy.SourceUnsubscribe)
	capture.MessageID = claims.Message
	if err := s.Store.Unsubscribe(r.Context(), c.ID, claims.Topic, s.topics(), capture); err != nil {
		s.Log.Error("unsubscribe", "err", err)
		s.render(w, http.StatusInternalServerError, pageView{Locale: uiLocale(c.Locale), Problem: "invalid"})
		return
	}
	if s.Metrics != nil {
		s.Metrics.PreferenceCentre.WithLabelValues(note).Inc()
	}
	s.render(w, http.StatusOK, pageView{Locale: uiLocale(c.Locale), Note: note})
}
