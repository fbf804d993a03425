package api_test

import (
	"context"
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
