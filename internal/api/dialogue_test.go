package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
)

// dialogueJourneys is the shipped journeys with a second helper,
// "advisors", named by the renewal reminder; the check-in keeps
// customer-service.
func dialogueJourneys(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "journeys")
	if err := os.CopyFS(dir, os.DirFS("../../journeys")); err != nil {
		t.Fatal(err)
	}
	edit := func(name, old, new string) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s lacks %q", name, old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("policy.yaml", "  helpers:\n", "  helpers:\n    advisors:\n      name: Rådgiverne\n      email: radgivere@lojal.example\n")
	edit("renewal-reminder.yaml", "topic: service\n", "topic: service\nhelper: advisors\n")
	return dir
}

// dialogueSetup is setup with the reply intake behind the answer pages
// (free text goes to the helper) and the journeys of dialogueJourneys.
func dialogueSetup(t *testing.T) *fixture {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Journeys: dialogueJourneys(t), NoWorker: true})
	f := &fixture{Stack: s, token: "lj_test-token", now: time.Now()}
	if _, err := s.Store.CreateToken(context.Background(), "tests", f.token); err != nil {
		t.Fatal(err)
	}
	replies := &dialogue.Intake{Store: s.Store, Catalog: s.Catalog, Log: s.Log,
		Ingest: func(ctx context.Context, e journey.Event) error {
			_, err := s.Dispatcher.Event(ctx, e)
			return err
		}}
	srv := &api.Server{Store: s.Store, Dispatcher: s.Dispatcher, Catalog: s.Catalog, Links: s.Links, Metrics: metrics.New(),
		Log: s.Log, Bounces: &bounce.Intake{Store: s.Store, Log: s.Log}, PushEgress: &channel.Egress{Resolver: stubDNS}, Replies: replies}
	f.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) answerLink(journeyID, customer, survey, answer string, expires time.Time) string {
	return "/a/" + f.Links.AnswerToken(links.AnswerClaims{CustomerID: customer, Survey: survey, Answer: answer, Journey: journeyID, Expires: expires})
}

func (f *fixture) dialogue(t *testing.T, customer string) store.Dialogue {
	t.Helper()
	d, err := f.Store.Dialogue(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func form(text string) string { return url.Values{"text": {text}}.Encode() }

const formType = "application/x-www-form-urlencoded"

// TestFreeTextGoesToTheHelperOfTheJourneyThatAsked: the renewal reminder
// (helper: advisors) asks the question "checkin"; what the customer
// writes with the answer goes to the advisors, not to the helper of the
// journey that happens to be called checkin (customer-service).
func TestFreeTextGoesToTheHelperOfTheJourneyThatAsked(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	link := f.answerLink("renewal-reminder", "c-1", "checkin", "more-help", time.Now().Add(time.Hour))
	if r := f.do(t, "GET", link, "", "Authorization", ""); r.Status != 200 {
		t.Fatalf("answer %d: %s", r.Status, r.Body)
	}
	r := f.do(t, "POST", link, form("Kan noen ringe meg om bilforsikringen?"), "Authorization", "", "Content-Type", formType)
	if r.Status != 200 || !strings.Contains(r.Body, `id="sent"`) {
		t.Fatalf("text %d: %s", r.Status, r.Body)
	}
	d := f.dialogue(t, "c-1")
	if len(d.Conversations) != 1 || d.Conversations[0].Helper != "advisors" || d.Conversations[0].JourneyID != "renewal-reminder" {
		t.Fatalf("conversations %+v, want one with the advisors for renewal-reminder", d.Conversations)
	}
	// A link mailed before links named their journey goes to the
	// customer's own helper or the default one.
	f.do(t, "PUT", "/v1/customers/c-2", strings.ReplaceAll(kari, "c-1", "c-2"))
	old := "/a/" + f.Links.AnswerToken(links.AnswerClaims{CustomerID: "c-2", Survey: "checkin", Answer: "all-good", Expires: time.Now().Add(time.Hour)})
	f.do(t, "POST", old, form("Alt vel"), "Authorization", "", "Content-Type", formType)
	if d := f.dialogue(t, "c-2"); len(d.Conversations) != 1 || d.Conversations[0].Helper != "customer-service" {
		t.Fatalf("conversations %+v, want the default helper", d.Conversations)
	}
}

// TestOneClickAnswer: opening the link records the answer and its event
// once, in the customer's language; opening it again changes nothing; a
// different answer later is a change, recorded once however often its
// link is opened; free text needs no JavaScript (a plain form POST).
func TestOneClickAnswer(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"locale": "nb"`, `"locale": "sv"`, 1))
	exp := time.Now().Add(time.Hour)
	link := f.answerLink("checkin", "c-1", "checkin", "more-help", exp)
	for i := range 3 {
		r := f.do(t, "GET", link, "", "Authorization", "", "Accept-Language", "en")
		if r.Status != 200 || !strings.Contains(r.Body, `<html lang="sv">`) || !strings.Contains(r.Body, "Tack, Kari. Vi har fått ditt svar.") ||
			!strings.Contains(r.Body, `<form method="post">`) || strings.Contains(r.Body, "<script") || strings.Contains(r.Body, `id="changed"`) {
			t.Fatalf("open %d: %d\n%s", i, r.Status, r.Body)
		}
	}
	ev := f.do(t, "GET", "/v1/events/survey:checkin:c-1", "")
	if ev.Status != 200 || !strings.Contains(ev.Body, `"more-help"`) || !strings.Contains(ev.Body, "survey.answered") {
		t.Fatalf("event %d: %s", ev.Status, ev.Body)
	}
	d := f.dialogue(t, "c-1")
	if len(d.Answers) != 1 || d.Answers[0].Answer != "more-help" || len(d.Answers[0].Changes) != 0 {
		t.Fatalf("answers %+v", d.Answers)
	}
	c := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if c["attributes"].(map[string]any)["checkin_answer"] != "more-help" {
		t.Errorf("checkin_answer not set: %v", c["attributes"])
	}

	// A later different answer: noted as a change, once.
	other := f.answerLink("checkin", "c-1", "checkin", "would-leave", exp)
	for range 3 {
		if r := f.do(t, "GET", other, "", "Authorization", ""); r.Status != 200 || !strings.Contains(r.Body, `id="changed"`) {
			t.Fatalf("change %d:\n%s", r.Status, r.Body)
		}
	}
	d = f.dialogue(t, "c-1")
	if len(d.Answers) != 1 || d.Answers[0].Answer != "more-help" || fmt.Sprint(d.Answers[0].Changes) != "[would-leave]" {
		t.Fatalf("after the change link was opened three times: %+v", d.Answers)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["attributes"].(map[string]any)["checkin_answer"] != "more-help" {
		t.Errorf("a change moved checkin_answer: %v", c["attributes"])
	}

	// Free text: an empty form shows the form again; text is kept and
	// sent once however often it is posted.
	if r := f.do(t, "POST", link, form("  "), "Authorization", "", "Content-Type", formType); r.Status != 200 || !strings.Contains(r.Body, "<textarea") {
		t.Fatalf("empty text %d:\n%s", r.Status, r.Body)
	}
	for range 2 {
		r := f.do(t, "POST", link, form("Jag saknar er redan"), "Authorization", "", "Content-Type", formType)
		if r.Status != 200 || !strings.Contains(r.Body, "Tack. Vi återkommer till dig.") || strings.Contains(r.Body, "<textarea") {
			t.Fatalf("text %d:\n%s", r.Status, r.Body)
		}
	}
	d = f.dialogue(t, "c-1")
	if d.Answers[0].FreeText != "Jag saknar er redan" || len(d.Replies) != 1 || d.Replies[0].Body != "Jag saknar er redan" || len(d.Conversations) != 1 {
		t.Fatalf("after the text: %+v", d)
	}
	// Text sent through the later answer's link goes to the helper but
	// does not write over what came with the answer that counts.
	f.do(t, "POST", other, form("Nej, jag stannar"), "Authorization", "", "Content-Type", formType)
	if d := f.dialogue(t, "c-1"); d.Answers[0].FreeText != "Jag saknar er redan" || len(d.Replies) != 2 {
		t.Fatalf("after text with the changed answer: %+v", d)
	}
}

// TestTheSameWordsAgainReachTheHelper: the customer writes the same words
// with the check-in question of a later quarter (a new message, its own
// link). The text was named by customer, question and words only, so it
// was taken for the first one again: no conversation, nothing to the
// helper, marketing not paused. The same link posted twice is still one.
func TestTheSameWordsAgainReachTheHelper(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	first := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(90*24*time.Hour))
	later := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(180*24*time.Hour))
	for _, link := range []string{first, first, later} {
		f.do(t, "GET", link, "", "Authorization", "")
		if r := f.do(t, "POST", link, form("Ring meg"), "Authorization", "", "Content-Type", formType); r.Status != 200 {
			t.Fatalf("text %d: %s", r.Status, r.Body)
		}
	}
	if d := f.dialogue(t, "c-1"); len(d.Replies) != 2 {
		t.Fatalf("replies %+v: want one per message the customer answered", d.Replies)
	}
}

// TestAnsweringLeavesConsentAlone: an answer sets the customer's declared
// answer attribute, and nothing else of theirs. It used to write the whole
// customer back as read, and a customer whose email rests on a soft
// opt-in reads back with email consent false: the write recorded a
// withdrawal the customer never made (actor api), which ends every soft
// opt-in for good and stands in the consent evidence.
func TestAnsweringLeavesConsentAlone(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"consent": {"email": true, "push": false}`, `"consent": {}`, 1))
	if r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "grant", "basis": "soft_opt_in",
		"sale_id": "o-123", "sale_at": "2026-02-01T10:00:00Z", "product_group": "home", "at": "2026-02-01T10:00:00Z"}]}`); r.Status != 201 {
		t.Fatalf("soft opt-in: %d %s", r.Status, r.Body)
	}
	before := f.do(t, "GET", "/v1/customers/c-1/consent", "").json(t)
	link := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(time.Hour))
	if r := f.do(t, "GET", link, "", "Authorization", ""); r.Status != 200 {
		t.Fatalf("answer %d: %s", r.Status, r.Body)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["attributes"].(map[string]any)["checkin_answer"] != "more-help" {
		t.Fatalf("checkin_answer not set: %v", c["attributes"])
	}
	after := f.do(t, "GET", "/v1/customers/c-1/consent", "").json(t)
	if len(list(after["entries"])) != len(list(before["entries"])) {
		t.Fatalf("answering wrote consent entries:\nbefore %v\nafter  %v", before["entries"], after["entries"])
	}
}

// TestAHeadRequestAnswersNothing: link checkers and mail scanners probe
// links with HEAD; like a click link's, an answer link's HEAD must record
// nothing (a GET records, as documented; a HEAD is no one's answer).
func TestAHeadRequestAnswersNothing(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	link := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(time.Hour))
	if r := f.do(t, "HEAD", link, "", "Authorization", ""); r.Status != 200 {
		t.Fatalf("HEAD %d", r.Status)
	}
	if d := f.dialogue(t, "c-1"); len(d.Answers) != 0 {
		t.Fatalf("a HEAD recorded an answer: %+v", d.Answers)
	}
	var n int
	if err := f.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE customer_id = 'c-1' AND type = 'survey.answered'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d survey.answered events after a HEAD (%v)", n, err)
	}
}

// TestAnswerTextWithANul: a NUL in the thank-you page's text (%00) failed
// the insert, and the customer's words were lost with a page that said
// they were sent. The text is kept, without the NUL.
func TestAnswerTextWithANul(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	link := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(time.Hour))
	f.do(t, "GET", link, "", "Authorization", "")
	if r := f.do(t, "POST", link, form("Ring meg\x00 i morgen"), "Authorization", "", "Content-Type", formType); r.Status != 200 {
		t.Fatalf("text %d: %s", r.Status, r.Body)
	}
	if d := f.dialogue(t, "c-1"); len(d.Answers) != 1 || d.Answers[0].FreeText != "Ring meg i morgen" {
		t.Fatalf("answers %+v, want the text kept without the NUL", d.Answers)
	}
}

// TestAnswerOfALongCustomerID: customer ids may have 128 characters, and
// the answer's event was named survey:<question>:<customer id>, which for
// ids over about 113 characters is no valid event id: the answer was
// recorded, the customer thanked, and no journey ever heard of it.
func TestAnswerOfALongCustomerID(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	long := "c-" + strings.Repeat("x", 124)
	f.do(t, "PUT", "/v1/customers/"+long, strings.Replace(kari, `"id": "c-1"`, `"id": "`+long+`"`, 1))
	link := f.answerLink("checkin", long, "checkin", "more-help", time.Now().Add(time.Hour))
	if r := f.do(t, "GET", link, "", "Authorization", ""); r.Status != 200 {
		t.Fatalf("answer %d: %s", r.Status, r.Body)
	}
	var n int
	if err := f.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE customer_id = $1 AND type = 'survey.answered'`, long).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d survey.answered events for a customer with a %d-character id, want 1", n, len(long))
	}
}

// TestForgedAnswerLinksRevealAndChangeNothing: a tampered, forged,
// expired, other kind's or other customer's link gets the same page with
// no name on it, by GET and POST, and records nothing.
func TestForgedAnswerLinksRevealAndChangeNothing(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	exp := time.Now().Add(time.Hour)
	good := f.answerLink("checkin", "c-1", "checkin", "more-help", exp)
	enc, sig, _ := strings.Cut(strings.TrimPrefix(good, "/a/"), ".")
	otherEnc, _, _ := strings.Cut(strings.TrimPrefix(f.answerLink("checkin", "c-1", "checkin", "would-leave", exp), "/a/"), ".")
	nobodyEnc, nobodySig, _ := strings.Cut(strings.TrimPrefix(f.answerLink("checkin", "c-404", "checkin", "more-help", exp), "/a/"), ".")
	expired := f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(-time.Minute))
	pref := f.link(t, links.Preferences, "c-1", "", exp)
	for name, tc := range map[string]struct {
		path   string
		status int
		text   string
	}{
		"tampered signature":        {"/a/" + enc + "." + sig[:len(sig)-2] + "AA", 400, "ikke gyldig"},
		"another answer's payload":  {"/a/" + otherEnc + "." + sig, 400, "ikke gyldig"},
		"a customer who is not one": {"/a/" + nobodyEnc + "." + nobodySig, 400, "ikke gyldig"},
		"a preference token":        {"/a/" + strings.TrimPrefix(pref, "/p/"), 400, "ikke gyldig"},
		"garbage":                   {"/a/not-a-token", 400, "ikke gyldig"},
		"expired":                   {expired, 410, "utløpt"},
	} {
		for _, method := range []string{"GET", "POST"} {
			r := f.do(t, method, tc.path, form("hallo"), "Authorization", "", "Accept-Language", "nb-NO,nb;q=0.9",
				"Content-Type", formType)
			if r.Status != tc.status || !strings.Contains(r.Body, tc.text) || strings.Contains(r.Body, "Kari") ||
				strings.Contains(r.Body, "<form") || strings.Contains(r.Body, "kari@") {
				t.Errorf("%s %s: %d\n%s", name, method, r.Status, r.Body)
			}
		}
	}
	d := f.dialogue(t, "c-1")
	if len(d.Answers)+len(d.Replies)+len(d.Conversations) != 0 {
		t.Fatalf("a bad link changed something: %+v", d)
	}
	if r := f.do(t, "GET", "/v1/events/survey:checkin:c-1", ""); r.Status != 404 {
		t.Fatalf("a bad link made an event: %d %s", r.Status, r.Body)
	}
}

// openConversation records a reply from c-1 that opens a conversation.
func (f *fixture) openConversation(t *testing.T) string {
	t.Helper()
	rec, err := f.Store.RecordReply(context.Background(), store.Reply{ID: "r-1", CustomerID: "c-1", From: "kari@example.no", FromCustomer: true,
		Source: "reply", Subject: "Re: hei", Body: "Hei, jeg lurer på noe", At: time.Now()}, "conv-1", "feedback", "customer-service")
	if err != nil || !rec.Opened {
		t.Fatalf("%+v %v", rec, err)
	}
	return rec.ConversationID
}

// TestMarkAsAnswered: the signed link shows a button and marks nothing
// when opened (mail scanners open links); its POST marks, once. A forged
// link, or another kind's token, reveals nothing and marks nothing.
func TestMarkAsAnswered(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	id := f.openConversation(t)
	link := f.link(t, links.Answered, id, "", time.Now().Add(time.Hour))
	tok := strings.TrimPrefix(link, "/c/")
	enc, sig, _ := strings.Cut(tok, ".")
	for name, path := range map[string]string{
		"tampered":                "/c/" + enc + "." + sig[:len(sig)-2] + "AA",
		"an answer token":         "/c/" + strings.TrimPrefix(f.answerLink("checkin", "c-1", "checkin", "more-help", time.Now().Add(time.Hour)), "/a/"),
		"a preference token":      "/c/" + strings.TrimPrefix(f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour)), "/p/"),
		"another conversation":    f.link(t, links.Answered, "conv-404", "", time.Now().Add(time.Hour)),
		"expired":                 f.link(t, links.Answered, id, "", time.Now().Add(-time.Minute)),
		"the link under /a/ path": "/a/" + tok,
	} {
		for _, method := range []string{"GET", "POST"} {
			r := f.do(t, method, path, "", "Authorization", "")
			if r.Status/100 != 4 || strings.Contains(r.Body, "<form") || strings.Contains(r.Body, "Kari") || strings.Contains(r.Body, "kari@") {
				t.Errorf("%s %s: %d\n%s", name, method, r.Status, r.Body)
			}
		}
	}
	if d := f.dialogue(t, "c-1"); d.Conversations[0].AnsweredAt != nil {
		t.Fatalf("a bad link marked it answered: %+v", d.Conversations[0])
	}
	for range 2 {
		if r := f.do(t, "GET", link, "", "Authorization", ""); r.Status != 200 || !strings.Contains(r.Body, `<form method="post">`) {
			t.Fatalf("GET %d:\n%s", r.Status, r.Body)
		}
	}
	if d := f.dialogue(t, "c-1"); d.Conversations[0].AnsweredAt != nil {
		t.Fatal("opening the link marked it answered")
	}
	if r := f.do(t, "POST", link, "", "Authorization", ""); r.Status != 200 || !strings.Contains(r.Body, "Marked as answered") {
		t.Fatalf("POST %d:\n%s", r.Status, r.Body)
	}
	first := f.dialogue(t, "c-1").Conversations[0]
	if first.AnsweredAt == nil || first.AnsweredBy != "link" {
		t.Fatalf("not answered: %+v", first)
	}
	if r := f.do(t, "GET", link, "", "Authorization", ""); !strings.Contains(r.Body, "This conversation is answered.") || strings.Contains(r.Body, "<form") {
		t.Fatalf("GET after answer:\n%s", r.Body)
	}
	// The API: the first answer counts.
	r := f.do(t, "POST", "/v1/conversations/"+id+"/answered", `{"by": "Ingrid"}`).json(t)
	if r["answered_now"] != false || r["conversation"].(map[string]any)["answered_by"] != "link" {
		t.Fatalf("second answer: %v", r)
	}
}

func TestPostAnswered(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	id := f.openConversation(t)
	if r := f.do(t, "POST", "/v1/conversations/"+id+"/answered", `{"by": "Ingrid"}`, "Authorization", ""); r.Status != 401 {
		t.Fatalf("without a token: %d %s", r.Status, r.Body)
	}
	expectProblem(t, f.do(t, "POST", "/v1/conversations/"+id+"/answered", `{"by": `), 400, "malformed")
	expectProblem(t, f.do(t, "POST", "/v1/conversations/conv-404/answered", ""), 404, "not-found")
	if d := f.dialogue(t, "c-1"); d.Conversations[0].AnsweredAt != nil {
		t.Fatal("a refused request marked it answered")
	}
	r := f.do(t, "POST", "/v1/conversations/"+id+"/answered", `{"by": "Ingrid"}`)
	if m := r.json(t); r.Status != 200 || m["answered_now"] != true || m["conversation"].(map[string]any)["answered_by"] != "Ingrid" {
		t.Fatalf("answer %d: %s", r.Status, r.Body)
	}
	if m := f.do(t, "POST", "/v1/conversations/"+id+"/answered", "").json(t); m["answered_now"] != false ||
		m["conversation"].(map[string]any)["answered_by"] != "Ingrid" {
		t.Fatalf("again: %v", m)
	}
}
