package evidence

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var rules = &policy.Rules{Topics: map[string]policy.Topic{
	"renewal": {Kind: policy.TopicService},
	"offers":  {Kind: policy.TopicMarketing, ProductGroups: []string{"home"}},
	"news":    {Kind: policy.TopicMarketing},
}}

var (
	given = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	now   = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
)

// kari is a customer who consented to marketing email on the preference
// centre, then opted out of the news topic.
func kari(t *testing.T, s *store.Store, wording string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo"}, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, "c-1", []policy.ConsentEntry{
		{Channel: policy.Email, Topic: policy.AllTopics, Action: policy.Grant, Basis: policy.BasisConsent, At: given,
			Source: policy.SourcePreferenceCentre, Actor: "customer", Wording: wording, WordingVersion: "v3", Locale: "nb"},
		{Channel: policy.Email, Topic: "news", Action: policy.Withdraw, Basis: policy.BasisConsent, At: given.Add(24 * time.Hour),
			Source: policy.SourcePreferenceCentre, Actor: "customer"},
	}); err != nil {
		t.Fatal(err)
	}
}

// standing finds what a topic on a channel may rely on.
func standing(t *testing.T, ev Evidence, topic, ch string) Standing {
	t.Helper()
	for _, s := range ev.Now {
		if s.Topic == topic && s.Channel == ch {
			return s
		}
	}
	t.Fatalf("no standing for %s on %s in %+v", topic, ch, ev.Now)
	return Standing{}
}

// TestBuildSaysWhatTheLedgerAllows: the evidence lists every entry with
// what it records in words, and what each declared topic may rely on now
// on each channel, derived from all the entries.
func TestBuildSaysWhatTheLedgerAllows(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	kari(t, s, "Ja, send meg tilbud på e-post")
	ev, err := Build(context.Background(), s, rules, "c-1", store.Retention{}.WithDefaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Customer.ID != "c-1" || ev.Customer.Email != "kari@example.no" || ev.Customer.Deleted {
		t.Errorf("customer %+v", ev.Customer)
	}
	if len(ev.Entries) != 2 || !strings.HasPrefix(ev.Entries[0].Fact, "consent given 2026-01-05") ||
		!strings.HasPrefix(ev.Entries[1].Fact, "opted out of news") {
		t.Errorf("entries %+v", ev.Entries)
	}
	if len(ev.Now) != 2*len(rules.Topics) {
		t.Errorf("%d standings for %d topics on two channels", len(ev.Now), len(rules.Topics))
	}
	if got := standing(t, ev, "offers", policy.Email); got.Basis != policy.BasisConsent {
		t.Errorf("offers by email: %+v, want consent", got)
	}
	if got := standing(t, ev, "news", policy.Email); got.Basis != "" || got.Reason == "" {
		t.Errorf("news by email after the opt-out: %+v, want no basis and a reason", got)
	}
	if got := standing(t, ev, "offers", policy.Push); got.Basis != "" {
		t.Errorf("offers by push, never consented: %+v", got)
	}
	if !strings.Contains(ev.Kept, "1825d") || !strings.Contains(ev.Kept, "400d") {
		t.Errorf("retention sentence %q does not name the default periods", ev.Kept)
	}
}

// TestBuildOutlivesTheCustomer: evidence is kept after the customer is
// deleted, and says so; a customer who never had any is not found.
func TestBuildOutlivesTheCustomer(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	kari(t, s, "Ja")
	if _, err := s.Pool().Exec(ctx, "DELETE FROM customers WHERE id = 'c-1'"); err != nil {
		t.Fatal(err)
	}
	ev, err := Build(ctx, s, rules, "c-1", store.Retention{}.WithDefaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Customer.Deleted || len(ev.Entries) != 2 || ev.Customer.Email != "" {
		t.Errorf("deleted customer's evidence: %+v", ev)
	}
	if _, err := Build(ctx, s, rules, "nobody", store.Retention{}.WithDefaults(), now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a customer without evidence: %v, want ErrNotFound", err)
	}
}

// TestHTMLShowsWordingAsText: the wording comes from whoever called the
// API; the page a consumer authority opens must show it, not run it.
func TestHTMLShowsWordingAsText(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	kari(t, s, `<script>alert("x")</script>Ja`)
	ev, err := Build(context.Background(), s, rules, "c-1", store.Retention{}.WithDefaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := ev.HTML(&page); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "<script>") || !strings.Contains(page.String(), "&lt;script&gt;") {
		t.Errorf("the wording is not escaped:\n%s", page.String())
	}
	for _, want := range []string{"Consent evidence for customer c-1", "version v3, nb", "2026-01-05 10:00:00 UTC", "opted out of news"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
