package render

import (
	"net/url"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/links"
)

// fakeTrack stands in for the signer: the tracked link names its
// destination readably so tests can see which link went where.
func fakeTrack(dest string) (string, error) {
	if err := links.CheckDestination(dest); err != nil {
		return "", err
	}
	return "https://lojal.test/k/" + url.QueryEscape(dest), nil
}

func tracked(dest string) string { return "https://lojal.test/k/" + url.QueryEscape(dest) }

const plainLinks = "subject: Hi\n" +
	"text: |\n  Shop: https://shop.example/offer?a=1&b=2. Write to mailto:help@shop.example\n" +
	"html: |\n  <p><a href=\"https://shop.example/offer?a=1&amp;b=2\">Shop</a> <img src=\"https://shop.example/logo.png\" alt=\"\"></p>\n"

// TestLinksAreRewrittenOnlyWhenAskedFor: a template that does not opt in
// renders exactly the same with and without a tracker; one that uses
// track gets that link, and only that link, tracked.
func TestLinksAreRewrittenOnlyWhenAskedFor(t *testing.T) {
	t.Parallel()
	plain, err := Parse("plain/en.yaml", "plain", "en", []byte(plainLinks))
	if err != nil {
		t.Fatal(err)
	}
	untracked, err := plain.Render("email", Data{Customer: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	withTracker, err := plain.Render("email", Data{Customer: map[string]any{}, Links: Links{Track: fakeTrack}})
	if err != nil {
		t.Fatal(err)
	}
	if withTracker != untracked || strings.Contains(withTracker.Text+withTracker.HTML, "/k/") {
		t.Fatalf("a template that did not opt in was rewritten:\n%+v\n%+v", withTracker, untracked)
	}

	src := "subject: Hi\n" +
		"text: |\n  Offer: {{ track \"https://shop.example/offer?a=1&b=2\" }}\n  Plain: https://shop.example/plain\n  Yours: {{ track .Customer.page }}\n" +
		"html: |\n  <a href=\"{{ track \"https://shop.example/offer?a=1&b=2\" }}\">Offer</a> <a href=\"https://shop.example/plain\">Plain</a>\n"
	tm, err := Parse("offer/en.yaml", "offer", "en", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	data := Data{Customer: map[string]any{"page": "https://shop.example/kari"}, Links: Links{Track: fakeTrack}}
	m, err := tm.Render("email", data)
	if err != nil {
		t.Fatal(err)
	}
	offer := tracked("https://shop.example/offer?a=1&b=2")
	for _, want := range []string{"Offer: " + offer, "Plain: https://shop.example/plain", "Yours: " + tracked("https://shop.example/kari")} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{`<a href="` + offer + `">Offer</a>`, `<a href="https://shop.example/plain">Plain</a>`} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, m.HTML)
		}
	}
	// A preview (no signer) shows the destination as written.
	p, err := tm.Render("email", Data{Customer: data.Customer})
	if err != nil || !strings.Contains(p.Text, "Offer: https://shop.example/offer?a=1&b=2") {
		t.Errorf("preview: %q %v", p.Text, err)
	}
}

// TestTrackRefusesWhatIsNotAWebAddress: a destination other than http(s)
// is an error when the message is rendered, with or without a signer,
// written in the template or coming from data.
func TestTrackRefusesWhatIsNotAWebAddress(t *testing.T) {
	t.Parallel()
	tm, err := Parse("offer/en.yaml", "offer", "en", []byte("subject: Hi\ntext: 'Go: {{ track .Customer.page }}'\nhtml: '<a href=\"{{ track .Customer.page }}\">Go</a>'\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example/", "ftp://files.example/x"} {
		for _, tr := range []func(string) (string, error){fakeTrack, nil} {
			m, err := tm.Render("email", Data{Customer: map[string]any{"page": page}, Links: Links{Track: tr}})
			if err == nil || !strings.Contains(err.Error(), "http or https") || !strings.Contains(err.Error(), "offer/en.yaml") {
				t.Errorf("page %q (tracker %v): %+v %v", page, tr != nil, m, err)
			}
		}
	}
	if _, err := tm.Render("email", Data{Customer: map[string]any{"page": 42}, Links: Links{Track: fakeTrack}}); err == nil {
		t.Error("a number was tracked as an address")
	}
}

// TestTrackAll: policy.yaml track_links rewrites every http(s) link in
// text, HTML hrefs and push urls, except lojal's own links (preferences,
// unsubscribe, answers) and anything that is not an http(s) link; images
// are never rewritten (no tracking pixels).
func TestTrackAll(t *testing.T) {
	t.Parallel()
	src := "subject: Hi https://shop.example/subject\n" +
		"text: |\n  Shop: https://shop.example/offer?a=1&b=2. (See https://shop.example/terms)\n  Yes: {{ answer \"checkin\" \"yes\" }}\n  Prefs: {{ .Links.Preferences }}\n  Mail: mailto:help@shop.example\n" +
		"html: |\n  <a href=\"https://shop.example/offer?a=1&amp;b=2\">Shop</a> <A HREF='http://shop.example/b'>B</A> <a href=\"{{ .Links.Preferences }}\">Prefs</a>\n" +
		"  <a href=\"mailto:help@shop.example\">Mail</a> <img src=\"https://shop.example/logo.png\" alt=\"\"> <a href=\"{{ track \"https://shop.example/t\" }}\">T</a>\n"
	tm, err := Parse("all/en.yaml", "all", "en", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prefs := "https://lojal.test/p/tok"
	data := Data{Customer: map[string]any{}, Links: Links{Track: fakeTrack, TrackAll: true, Preferences: prefs, Unsubscribe: "https://lojal.test/u/tok",
		Answer: func(s, a string) string { return "https://lojal.test/a/" + s + "." + a }}}
	m, err := tm.Render("email", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Shop: " + tracked("https://shop.example/offer?a=1&b=2") + ". (See " + tracked("https://shop.example/terms") + ")",
		"Yes: https://lojal.test/a/checkin.yes", "Prefs: " + prefs, "Mail: mailto:help@shop.example",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{
		`<a href="` + tracked("https://shop.example/offer?a=1&b=2") + `">Shop</a>`, `<a href="` + tracked("http://shop.example/b") + `">B</A>`,
		`<a href="` + prefs + `">Prefs</a>`, `<a href="mailto:help@shop.example">Mail</a>`, `<img src="https://shop.example/logo.png" alt="">`,
		`<a href="` + tracked("https://shop.example/t") + `">T</a>`,
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, m.HTML)
		}
	}
	if m.Subject != "Hi https://shop.example/subject" {
		t.Errorf("subject rewritten: %q", m.Subject)
	}
	// A link that cannot be tracked (too long) is left as written.
	long := "https://shop.example/" + strings.Repeat("a", links.MaxDestination)
	lt, _ := Parse("long/en.yaml", "long", "en", []byte("subject: Hi\ntext: 'See "+long+"'\n"))
	if m, err := lt.Render("email", data); err != nil || !strings.Contains(m.Text, "See "+long) {
		t.Errorf("long link: %v %.80q", err, m.Text)
	}
	// Push: the url is the link.
	pt, _ := Parse("push/en.yaml", "push", "en", []byte("title: Hi\nbody: Offer\nurl: https://shop.example/app\n"))
	if m, err := pt.Render("push", data); err != nil || m.URL != tracked("https://shop.example/app") {
		t.Errorf("push url: %q %v", m.URL, err)
	}
	if m, err := pt.Render("push", Data{Customer: map[string]any{}, Links: Links{Track: fakeTrack}}); err != nil || m.URL != "https://shop.example/app" {
		t.Errorf("push url without track_links: %q %v", m.URL, err)
	}
}

// TestTrackAllLeavesDataAlone: track_links rewrites the links the
// template writes. A link that comes from the customer's or the event's
// data (a sign-up form's name field holding https://evil.example/login)
// became a lojal-signed redirect on the company's own domain, one that
// keeps redirecting after it expires: an open redirect for phishing.
// Data is tracked only where the template says {{ track … }}.
func TestTrackAllLeavesDataAlone(t *testing.T) {
	t.Parallel()
	src := "subject: Hi\n" +
		"text: |\n  Hei {{ .Customer.first_name }}! Shop: https://shop.example/offer\n  Yours: {{ track .Customer.page }}\n" +
		"html: |\n  <p>Hei {{ .Customer.first_name }}</p><a href=\"https://shop.example/offer\">Shop</a> <a href=\"{{ .Customer.page }}\">Page</a>\n"
	tm, err := Parse("all/en.yaml", "all", "en", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	evil := "https://evil.example/login"
	data := Data{Customer: map[string]any{"first_name": evil, "page": "https://shop.example/kari"}, Links: Links{Track: fakeTrack, TrackAll: true}}
	m, err := tm.Render("email", data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text+m.HTML, tracked(evil)) {
		t.Fatalf("a link from the customer's data was signed:\n%s\n%s", m.Text, m.HTML)
	}
	for _, want := range []string{"Hei " + evil + "!", "Shop: " + tracked("https://shop.example/offer"), "Yours: " + tracked("https://shop.example/kari")} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	// A link the template writes is tracked whole, whatever it ends in.
	paren, err := Parse("p/en.yaml", "p", "en", []byte("subject: Hi\ntext: x\nhtml: '<a href=\"https://en.wikipedia.org/wiki/Foo_(bar)\">W</a>'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pm, err := paren.Render("email", data); err != nil || !strings.Contains(pm.HTML, tracked("https://en.wikipedia.org/wiki/Foo_(bar)")) {
		t.Errorf("a written link ending in a bracket is not tracked: %v %s", err, pm.HTML)
	}
	for _, want := range []string{`<a href="` + tracked("https://shop.example/offer") + `">Shop</a>`, `<a href="https://shop.example/kari">Page</a>`} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, m.HTML)
		}
	}
}
