package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The consent API records entries with the wording as shown, refuses
// entries it could not prove (each field named), and prints the evidence
// as JSON and as a page.
func TestConsentEvidenceAPI(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"consent": {"email": true, "push": false}`, `"consent": {}`, 1))
	bad := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "grant", "basis": "soft_opt_in"},
		{"channel": "sms", "action": "grant", "basis": "consent", "wording": "x"}]}`)
	expectProblem(t, bad, 422, "invalid")
	for _, want := range []string{`"/entries/0"`, "rests on a sale", `"/entries/1"`, `channel \"sms\"`} {
		if !strings.Contains(bad.Body, want) {
			t.Errorf("problem lacks %s: %s", want, bad.Body)
		}
	}
	ok := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [
		{"channel": "email", "action": "grant", "basis": "soft_opt_in", "sale_id": "o-123", "sale_at": "2026-02-01T10:00:00Z",
		 "product_group": "home", "at": "2026-02-01T10:00:00Z"},
		{"channel": "push", "action": "grant", "basis": "consent", "wording": "Ja, send meg varsler", "wording_version": "app-v2",
		 "locale": "nb", "at": "2026-01-05T09:00:00Z"}]}`)
	if ok.Status != 201 || !strings.Contains(ok.Body, `"actor":"api:tests"`) {
		t.Fatalf("record: %d %s", ok.Status, ok.Body)
	}
	if r := f.do(t, "POST", "/v1/customers/nobody/consent", `{"entries": [{"channel": "email", "topic": "loyalty", "action": "withdraw", "basis": "consent"}]}`); r.Status != 404 {
		t.Fatalf("unknown customer: %d %s", r.Status, r.Body)
	}
	ev := f.do(t, "GET", "/v1/customers/c-1/consent", "").json(t)
	if n := len(list(ev["entries"])); n != 2 {
		t.Fatalf("entries %d: %v", n, ev)
	}
	var loyaltyEmail, loyaltyPush map[string]any
	for _, s := range list(ev["now"]) {
		m := s.(map[string]any)
		if m["topic"] == "loyalty" && m["channel"] == "email" {
			loyaltyEmail = m
		}
		if m["topic"] == "loyalty" && m["channel"] == "push" {
			loyaltyPush = m
		}
	}
	if loyaltyEmail["basis"] != "soft_opt_in" || loyaltyEmail["fact"] != "soft opt-in from sale o-123, 2026-02-01, product group home" {
		t.Errorf("loyalty on email: %v", loyaltyEmail)
	}
	if loyaltyPush["basis"] != "consent" || !strings.Contains(loyaltyPush["fact"].(string), "consent given 2026-01-05 (api by api:tests, wording app-v2)") {
		t.Errorf("loyalty on push: %v", loyaltyPush)
	}
	page := f.do(t, "GET", "/v1/customers/c-1/consent?format=html", "")
	if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", page.Status, page.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Consent evidence for customer c-1", "“Ja, send meg varsler”", "o-123, 2026-02-01 10:00:00 UTC, product group home", "append-only"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestAConsentStampedAheadDoesNotOutrankTheCustomer: the consent
// endpoint takes an entry's time up to five minutes ahead (a client's
// clock), and the ledger is read in time order, so a grant stamped four
// minutes ahead outranked the unsubscribe the customer made a minute
// later, for good. Nothing is recorded later than it is recorded.
func TestAConsentStampedAheadDoesNotOutrankTheCustomer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"consent": {"email": true, "push": false}`, `"consent": {}`, 1))
	ahead := time.Now().Add(4 * time.Minute).UTC().Format(time.RFC3339)
	if r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "grant", "basis": "consent",
		"wording": "Ja takk", "wording_version": "v1", "locale": "nb", "at": "`+ahead+`"}]}`); r.Status != 201 {
		t.Fatalf("record: %d %s", r.Status, r.Body)
	}
	f.unsubscribeAll(t, "c-1")
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["email"] != false {
		t.Fatalf("after the customer's unsubscribe, consent %v: the grant stamped ahead still wins", c["consent"])
	}
	// A batch stamped ahead keeps the order its times give: a grant a
	// minute ahead, then a withdrawal three minutes ahead, is withdrawn.
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	if r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [
		{"channel": "push", "action": "withdraw", "basis": "consent", "at": "`+at(3*time.Minute)+`"},
		{"channel": "push", "action": "grant", "basis": "consent", "wording": "Ja", "wording_version": "v1", "locale": "nb", "at": "`+at(time.Minute)+`"}]}`); r.Status != 201 {
		t.Fatalf("record: %d %s", r.Status, r.Body)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["push"] != false {
		t.Fatalf("a grant and a later withdrawal, both ahead: consent %v", c["consent"])
	}
	// The erasure's reset is lojal's own: no client may record one.
	r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "withdraw", "basis": "consent",
		"wording_version": "customer created again"}]}`)
	expectProblem(t, r, 422, "invalid")
	if !strings.Contains(r.Body, "/entries/0/wording_version") {
		t.Fatalf("the refusal does not point at the field: %s", r.Body)
	}
}

// Double opt-in: the link shows the wording and records nothing until the
// customer presses the button (a mail scanner opening links confirms
// nothing); the press records consent with the request as evidence.
func TestDoubleOptInByLink(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"consent": {"email": true, "push": false}`, `"consent": {}`, 1))
	expectProblem(t, f.do(t, "POST", "/v1/customers/c-1/consent/email/double-opt-in", `{"wording": ""}`), 422, "invalid")
	r := f.do(t, "POST", "/v1/customers/c-1/consent/email/double-opt-in", `{"wording": "Ja, send meg tilbud på e-post", "wording_version": "signup-v4", "locale": "nb"}`)
	if r.Status != 201 {
		t.Fatalf("double opt-in: %d %s", r.Status, r.Body)
	}
	link, err := url.Parse(r.json(t)["confirm_url"].(string))
	if err != nil || !strings.HasPrefix(link.Path, "/o/") {
		t.Fatalf("confirm_url %v %v", link, err)
	}
	page := f.do(t, "GET", link.Path, "", "Authorization", "")
	if page.Status != 200 || !strings.Contains(page.Body, "Ja, send meg tilbud på e-post") || !strings.Contains(page.Body, "Bekreft at du samtykker") {
		t.Fatalf("confirmation page %d:\n%s", page.Status, page.Body)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["email"] != false {
		t.Fatalf("opening the link recorded consent: %v", c)
	}
	for range 2 {
		done := f.do(t, "POST", link.Path, "", "Authorization", "", "Content-Type", "application/x-www-form-urlencoded")
		if done.Status != 200 || !strings.Contains(done.Body, "Vi har registrert samtykket ditt") {
			t.Fatalf("confirm %d:\n%s", done.Status, done.Body)
		}
	}
	ev := f.do(t, "GET", "/v1/customers/c-1/consent", "").json(t)
	entries := list(ev["entries"])
	if len(entries) != 1 {
		t.Fatalf("entries %v", entries)
	}
	e := entries[0].(map[string]any)
	if e["source"] != "double_opt_in" || e["wording"] != "Ja, send meg tilbud på e-post" || !strings.Contains(e["evidence"].(string), "confirmation sent to kari@example.no") {
		t.Fatalf("entry %v", e)
	}
	if reqs := list(ev["double_opt_in_requests"]); len(reqs) != 1 || reqs[0].(map[string]any)["entry_id"] == nil {
		t.Fatalf("requests %v", reqs)
	}
	// A tampered link confirms nothing.
	if bad := f.do(t, "POST", link.Path+"x", "", "Authorization", ""); bad.Status != 400 {
		t.Fatalf("tampered link: %d", bad.Status)
	}
}
