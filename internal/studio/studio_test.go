package studio

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyJourneys copies the shipped journeys to a directory of the test's.
func copyJourneys(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "journeys")
	if err := os.CopyFS(dir, os.DirFS("../../journeys")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func edit(t *testing.T, file, from, to string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		t.Fatalf("%s lacks %q", file, from)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.Host = "127.0.0.1:7070"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func newStudio(t *testing.T, dir string) *Studio {
	t.Helper()
	s, err := New(Options{Dir: dir, Now: func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProblemsAreShownOnTheirStep: a mistake in a journey is drawn on the
// step it is in, and a template's mistake on the steps that send it; the
// rest of the directory is still shown.
func TestProblemsAreShownOnTheirStep(t *testing.T) {
	t.Parallel()
	dir := copyJourneys(t)
	edit(t, filepath.Join(dir, "renewal-reminder.yaml"), "wait_for: { event: policy.renewed, timeout: 7d", "wait_for: { event: policy.renewd, timeout: 7d")
	edit(t, filepath.Join(dir, "templates", "checkin", "en.yaml"), "{{ .Customer.first_name }}, what", "{{ .Customer.frist_name }}, what")
	s := newStudio(t, dir)
	code, page := get(t, s.Handler(), "/")
	if code != 200 {
		t.Fatalf("%d\n%s", code, page)
	}
	renewal := section(page, "renewal-reminder")
	for _, want := range []string{
		`data-step="wait-for-renewal"><title>`,
		`⚠ line 23: wait_for event &#34;policy.renewd&#34; is not`,
		`stroke="#dc2626"`,
	} {
		if !strings.Contains(renewal, want) {
			t.Errorf("renewal-reminder's diagram lacks %q", want)
		}
	}
	if checkin := section(page, "checkin"); !strings.Contains(checkin, "frist_name") || !strings.Contains(checkin, "step ask: checkin/en.yaml:1:") {
		t.Errorf("the template's problem is not on the step that sends it:\n%s", checkin)
	}
	// The other journeys are drawn as before.
	if !strings.Contains(section(page, "loyalty-benefit"), `class="node send" data-step="tell"`) {
		t.Error("a valid journey is not drawn")
	}
	code, svg := get(t, s.Handler(), "/diagram/checkin.svg")
	if code != 200 || !strings.HasPrefix(svg, "<svg") {
		t.Errorf("diagram: %d %.80s", code, svg)
	}
}

// section returns the part of the journeys page about one journey.
func section(page, id string) string {
	i := strings.Index(page, `id="j-`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	if j := strings.Index(rest, "</section>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func TestTemplatesInEveryLocale(t *testing.T) {
	t.Parallel()
	s := newStudio(t, copyJourneys(t))
	_, page := get(t, s.Handler(), "/templates")
	for _, want := range []string{
		`data-template="renewal-reminder" data-locale="nb"`, `data-template="renewal-reminder" data-locale="sv"`,
		`data-template="renewal-reminder" data-locale="da"`, `data-template="renewal-reminder" data-locale="en"`,
		"Subject: Innboforsikringen din fornyes 11. mars", "Subject: Din innboförsäkring förnyas den 11 mars",
		`<div class="title">Er hele familien fortsatt dekket?</div>`,
		"Endre hva vi sender deg: http://preview.invalid/p/example",
		`sandbox srcdoc="&lt;p&gt;Hei Kari,&lt;/p&gt;`,
		// checkin-thanks reads .Received.survey_answered: made from the
		// schema when the sample has no such event.
		"data-template=\"checkin-thanks\" data-locale=\"en\"", "You answered: &#34;example&#34;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("messages page lacks %q", want)
		}
	}
	if strings.Contains(page, `class="error"`) {
		t.Errorf("a message failed to render:\n%s", page)
	}
}

func TestSampleIsEditedInThePage(t *testing.T) {
	t.Parallel()
	s := newStudio(t, copyJourneys(t))
	h := s.Handler()
	form := url.Values{"pick": {"c-1003"}, "back": {"/templates"}}
	r := httptest.NewRequest("POST", "/sample", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Host = "127.0.0.1:7070"
	r.Header.Set("Origin", "http://127.0.0.1:7070")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/templates" {
		t.Fatalf("post: %d %s", w.Code, w.Header().Get("Location"))
	}
	if _, page := get(t, h, "/templates"); !strings.Contains(page, "Hej Astrid,") {
		t.Error("the picked customer is not the one shown")
	}
	// Another site cannot change it through the user's browser.
	r = httptest.NewRequest("POST", "/sample", strings.NewReader(url.Values{"customer": {"{}"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Host = "127.0.0.1:7070"
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-site post: %d", w.Code)
	}
}

func TestSimulatePageShowsEveryJourneyAndTheAudience(t *testing.T) {
	t.Parallel()
	s := newStudio(t, copyJourneys(t))
	_, page := get(t, s.Handler(), "/simulate")
	for _, want := range []string{
		"What Kari Nordmann (c-1001) gets, in Europe/Oslo (CET)",
		`<tr class="allow"><td>Sun 01 Mar 11:00 CET</td><td>renewal-reminder</td>`,
		`<tr class="defer"><td>Sun 01 Mar 11:00 CET</td><td>segment-onboarding</td>`,
		"too soon after the last message (min_gap)",
		"deferred until Mon 02 Mar 11:00 CET",
		"<td>loyalty-benefit</td><td><code>has(customer.loyalty_points) &amp;&amp; customer.loyalty_points &gt;= 1000</code></td><td>1 of 14</td><td>Kari Nordmann (c-1001)</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("simulate page lacks %q", want)
		}
	}
}

func TestDiffPage(t *testing.T) {
	t.Parallel()
	old, nw := copyJourneys(t), copyJourneys(t)
	edit(t, filepath.Join(nw, "checkin.yaml"), "priority: low", "priority: critical")
	edit(t, filepath.Join(nw, "templates", "checkin", "sv.yaml"), "Svara bara på det här mejlet.", "Svara gärna på det här mejlet.")
	s := newStudio(t, nw)
	_, page := get(t, s.Handler(), "/diff?old="+url.QueryEscape(old)+"&new="+url.QueryEscape(nw))
	for _, want := range []string{
		`<tr class="pressure"><td>journey</td><td>priority</td><td class="old">low</td><td class="new">critical</td>`,
		"raised to critical: skips caps, the minimum gap and quiet hours",
		`template checkin/sv text <span class="tag inflight">in flight</span>`,
		`<pre class="diffline old">- Du har varit kund`, `<pre class="diffline new">&#43; Du har varit kund`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("diff page lacks %q", want)
		}
	}
	if _, page := get(t, s.Handler(), "/diff?old=/no/such/dir&new="+url.QueryEscape(nw)); !strings.Contains(page, "not a directory, nor REV:DIR") {
		t.Error("a bad side is not explained")
	}
}

// TestReloadsWhenFilesChange: the version pages poll changes when a file
// does, and the page then shows the new content.
func TestReloadsWhenFilesChange(t *testing.T) {
	t.Parallel()
	dir := copyJourneys(t)
	s := newStudio(t, dir)
	_, v1 := get(t, s.Handler(), "/version")
	edit(t, filepath.Join(dir, "checkin.yaml"), "name: How can we help? What would you miss?", "name: Quarterly check-in")
	// Modification times may not move within the same clock tick.
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(filepath.Join(dir, "checkin.yaml"), future, future)
	if changed, err := s.reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	_, v2 := get(t, s.Handler(), "/version")
	if v1 == v2 {
		t.Error("the version did not change")
	}
	if _, page := get(t, s.Handler(), "/"); !strings.Contains(page, "Quarterly check-in") {
		t.Error("the page shows the old name")
	}
}

func TestOnlyLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{"127.0.0.1:7070": true, "localhost:0": true, "[::1]:7070": true, ":7070": false, "0.0.0.0:7070": false, "192.0.2.1:80": false} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%s) = %v", addr, err)
		}
	}
	s := newStudio(t, copyJourneys(t))
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "attacker.example:7070"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Errorf("a rebound host name: %d", w.Code)
	}
}

// TestOtherSitesCannotDriveTheStudio: a page elsewhere can make the
// user's browser send any GET to the studio (an <img>); /diff runs git
// on what the query names. Only the studio's own pages, and the user
// (typed, bookmarked), reach anything but the front page, which a link
// from elsewhere may still open.
func TestOtherSitesCannotDriveTheStudio(t *testing.T) {
	t.Parallel()
	s := newStudio(t, copyJourneys(t))
	h := s.Handler()
	for _, c := range []struct {
		path, site string
		want       int
	}{
		{"/diff?old=HEAD:journeys", "cross-site", http.StatusForbidden},
		{"/diff?old=HEAD:journeys", "same-site", http.StatusForbidden},
		{"/simulate", "cross-site", http.StatusForbidden},
		{"/", "cross-site", http.StatusOK},
		{"/simulate", "same-origin", http.StatusOK},
		{"/simulate", "none", http.StatusOK},
		{"/simulate", "", http.StatusOK},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		r.Host = "127.0.0.1:7070"
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("GET %s from %q: %d, want %d", c.path, c.site, w.Code, c.want)
		}
	}
}
