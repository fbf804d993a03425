package api_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lojal/lojal/internal/links"
)

// TestPreferenceCentreShowsConsentInChromium: the preference centre shows
// a Swedish customer, in Swedish, what they agreed to and when; unticking
// a channel there is recorded in the consent ledger as the customer's
// withdrawal, in the words they saw, and the page then says when they
// said no.
func TestPreferenceCentreShowsConsentInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make tools (apt-get install chromium)")
	}
	f := setup(t)
	sv := strings.Replace(strings.Replace(kari, `"locale": "nb"`, `"locale": "sv"`, 1), `"consent": {"email": true, "push": false}`, `"consent": {}`, 1)
	f.do(t, "PUT", "/v1/customers/c-1", sv)
	if r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [
		{"channel": "email", "action": "grant", "basis": "consent", "wording": "Ja, skicka erbjudanden", "wording_version": "web-v1", "at": "2026-01-05T09:00:00Z"},
		{"channel": "*", "topic": "feedback", "action": "withdraw", "basis": "consent", "at": "2026-02-10T09:00:00Z"}]}`); r.Status != 201 {
		t.Fatalf("record: %d %s", r.Status, r.Body)
	}
	link := f.srv.URL + f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	var emailSince, topicSince, emailLabel, afterSince string
	text := func(sel string, into *string) func() error {
		return func() (err error) { *into, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))); return err }
	}
	steps := []func() error{
		func() error { return chromedp.Do(ctx, chromedp.Navigate(link)) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("form"))) },
		text(`p.since[data-channel="email"]`, &emailSince),
		text(`p.since[data-topic="feedback"]`, &topicSince),
		text(`label:has(input[name="channel"][value="email"])`, &emailLabel),
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name="channel"][value="email"]`)))
		},
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="save"]`))) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#note"))) },
		text(`p.since[data-channel="email"]`, &afterSince),
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d: %v", i, err)
		}
	}
	if emailSince != "Du samtyckte 5 januari 2026." {
		t.Errorf("email consent shown as %q", emailSince)
	}
	if topicSince != "Du avregistrerade dig 10 februari 2026." {
		t.Errorf("topic opt-out shown as %q", topicSince)
	}
	if emailLabel != "Skicka nyheter och erbjudanden till mig via e-post" {
		t.Errorf("email choice reads %q", emailLabel)
	}
	today := time.Now().In(mustZone(t, "Europe/Oslo"))
	if want := "Du sa nej " + swedishDate(today) + "."; afterSince != want {
		t.Errorf("after unticking email the page says %q, want %q", afterSince, want)
	}
	ev := f.do(t, "GET", "/v1/customers/c-1/consent", "").json(t)
	entries := list(ev["entries"])
	last := entries[len(entries)-1].(map[string]any)
	if last["action"] != "withdraw" || last["channel"] != "email" || last["topic"] != "*" || last["source"] != "preference_centre" ||
		last["actor"] != "customer" || last["locale"] != "sv" || last["wording"] != "Skicka nyheter och erbjudanden till mig via e-post" ||
		!strings.HasPrefix(last["wording_version"].(string), "preference-centre/sv/consent_email/") {
		t.Fatalf("withdrawal recorded as %v", last)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["email"] != false {
		t.Fatalf("customer after the withdrawal: %v", c)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func swedishDate(t time.Time) string {
	months := []string{"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"}
	return strings.Join([]string{strconv.Itoa(t.Day()), months[t.Month()-1], strconv.Itoa(t.Year())}, " ")
}
