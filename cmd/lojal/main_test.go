package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// The Temporal SDK's goroutines (an activity failing its last
	// heartbeat as lojal dev stops) may still log after run returns: the
	// SDK does not wait for them.
	var out, errOut syncBuffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func exitCode(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestValidateShippedJourneys(t *testing.T) {
	t.Parallel()
	out, err := runCLI(t, "journeys", "validate", "../../journeys")
	if err != nil || !strings.HasPrefix(out, "ok: 5 journeys valid") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	out, err = runCLI(t, "journeys", "validate", "../../journeys/renewal-reminder.yaml", "../../journeys/checkin.yaml")
	if err != nil || !strings.HasPrefix(out, "ok: 2 journeys valid") {
		t.Fatalf("validate files: %v\n%s", err, out)
	}
}

func TestValidateReportsEveryErrorWithPosition(t *testing.T) {
	t.Parallel()
	out, err := runCLI(t, "journeys", "validate", "testdata/bad")
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1\n%s", exitCode(err), out)
	}
	want := []string{
		`testdata/bad/broken.yaml:4:19: trigger event "order.placd" is not declared in testdata/bad/schema.yaml (did you mean "order.placed"?)`,
		`testdata/bad/broken.yaml:7:22: channel "sms": want email, push or preferred`,
		`testdata/bad/broken.yaml:9:23: wait duration: duration "3days"`,
		`testdata/bad/broken.yaml:10:11: step "later": goto "nowhere" names no step`,
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	pos := regexp.MustCompile(`^testdata/bad/[a-z-]+\.yaml:\d+:\d+: `)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !pos.MatchString(line) {
			t.Errorf("line without file:line:col: %q", line)
		}
	}
	if _, err := runCLI(t, "journeys", "validate", "no/such/dir"); exitCode(err) != 1 {
		t.Errorf("missing path: exit %d", exitCode(err))
	}
	if _, err := runCLI(t, "journeys", "validate"); exitCode(err) != 2 {
		t.Errorf("no path: exit %d", exitCode(err))
	}
}

func TestSimulateJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cust := filepath.Join(dir, "c.json")
	events := filepath.Join(dir, "e.jsonl")
	writeFile(t, cust, `{"id": "c-1", "email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Kari", "plan": "car", "segment": "single"}}`)
	writeFile(t, events, `{"id": "e-1", "type": "policy.renewal_scheduled", "customer_id": "c-1", "at": "2026-03-01T10:00:00Z", "data": {"policy_id": "p-1", "product": "bil", "renews_at": "2026-04-01T00:00:00Z"}}
{"id": "e-2", "type": "policy.renewed", "customer_id": "c-1", "at": "2026-03-19T10:00:00Z", "data": {"policy_id": "p-1"}}`)
	out, err := runCLI(t, "journeys", "simulate", "--journey", "../../journeys/renewal-reminder.yaml", "--customer", cust, "--events", events, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var sends, lines int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		lines++
		for _, k := range []string{"at", "step", "kind"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line lacks %s: %s", k, line)
			}
		}
		if l["kind"] == "send" {
			sends++
			if l["channel"] != "email" || l["decision"] != "allow" || l["reason"] != "ok" || l["at"] != "2026-03-18T08:00:00Z" {
				t.Errorf("send line: %s", line)
			}
		}
	}
	if sends != 1 || lines < 4 {
		t.Fatalf("%d sends in %d lines:\n%s", sends, lines, out)
	}
}

func TestDiffShowsBreakingSteps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stacktest.CopyDir(t, "../../journeys", dir)
	old := readFile(t, filepath.Join(dir, "renewal-reminder.yaml"))
	v2 := strings.Replace(old, "timeout: 7d", "timeout: 10d", 1)
	v2 = v2[:strings.Index(v2, "  - id: nudge")] + "  - id: nudge-everyone\n    send: { channel: push, template: renewal-nudge }\n"
	v2 = strings.Replace(v2, "on_timeout: nudge", "on_timeout: nudge-everyone", 1)
	writeFile(t, filepath.Join(dir, "renewal-v2.yaml"), v2)
	out, err := runCLI(t, "journeys", "diff", filepath.Join(dir, "renewal-reminder.yaml"), filepath.Join(dir, "renewal-v2.yaml"))
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1 (changes), like diff(1): %v\n%s", exitCode(err), err, out)
	}
	for _, w := range []string{"step wait-for-renewal: wait_for.timeout: 7d → 10d", "step wait-for-renewal: wait_for.on_timeout: nudge → nudge-everyone",
		"! step nudge removed (branch, 2 cases)", "! step family-nudge removed", "step nudge-everyone added (send push renewal-nudge) [pressure: one more message]",
		"--map OLD-STEP=NEW-STEP"} {
		if !strings.Contains(out, w) {
			t.Errorf("diff lacks %q:\n%s", w, out)
		}
	}
	if out, err := runCLI(t, "journeys", "diff", filepath.Join(dir, "renewal-reminder.yaml"), filepath.Join(dir, "renewal-reminder.yaml")); err != nil || !strings.Contains(out, "no changes") {
		t.Errorf("a file against itself: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "journeys", "diff", filepath.Join(dir, "nope.yaml"), dir); exitCode(err) != 2 {
		t.Errorf("a missing side: exit %d, want 2", exitCode(err))
	}
}

// TestDiffDirectoriesShowsTemplatesPolicyAndPressure: two directories are
// compared whole: a priority raised to critical, a policy cap raised and a
// template's copy, each with old and new values.
func TestDiffDirectoriesShowsTemplatesPolicyAndPressure(t *testing.T) {
	t.Parallel()
	old, nw := t.TempDir(), t.TempDir()
	stacktest.CopyDir(t, "../../journeys", old)
	stacktest.CopyDir(t, "../../journeys", nw)
	edit := func(file, from, to string) {
		t.Helper()
		p := filepath.Join(nw, file)
		s := readFile(t, p)
		if !strings.Contains(s, from) {
			t.Fatalf("%s lacks %q", file, from)
		}
		writeFile(t, p, strings.Replace(s, from, to, 1))
	}
	edit("checkin.yaml", "priority: low", "priority: critical")
	edit("policy.yaml", "{ window: 7d, max: 3 }", "{ window: 7d, max: 5 }")
	edit("templates/checkin/nb.yaml", "Bare svar på denne e-posten.", "Svar gjerne på denne e-posten.")
	edit("policy.yaml", "loyalty:    { kind: marketing, product_groups: [home, car, business] }", "loyalty:    { kind: marketing, product_groups: [home, car, business, pets] }")
	edit("checkin.yaml", "basis: [consent, soft_opt_in]", "basis: consent")
	edit("loyalty-benefit.yaml", "topic: loyalty\nbasis: [consent, soft_opt_in]", "topic: loyalty\nbasis: consent")
	out, err := runCLI(t, "journeys", "diff", old, nw)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d: %v\n%s", exitCode(err), err, out)
	}
	for _, w := range []string{
		"priority: low → critical [pressure: raised to critical: skips caps, the minimum gap and quiet hours]",
		"policy caps[all channels, 7d]: max 3 → max 5 [pressure: a higher cap: more messages may go out]",
		"template checkin/nb text changed (reaches runs in flight at once, sent by checkin):",
		"policy topics.loyalty: marketing [home, car, business] → marketing [home, car, business, pets] [pressure: more product groups: soft opt-ins from more sales reach this topic]",
		"basis: consent, soft_opt_in → consent",
		"- Du har vært kunde", "+ Du har vært kunde",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("diff lacks %q:\n%s", w, out)
		}
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDevReport runs `lojal dev` as `make dev` does (embedded Postgres,
// Temporal dev server and SMTP catcher, demo customers and journeys) and
// checks its report: whatever the time of day, at least three demo
// customers are awake and get a message, and every message in the report
// really reached the SMTP server.
func TestDevReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Postgres and Temporal")
	}
	for _, env := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_URL"} {
		t.Setenv(env, "")
		os.Unsetenv(env)
	}
	mailDir := t.TempDir()
	out, err := runCLI(t, "dev", "--exit-after-report", "--journeys", "../../journeys", "--mail-dir", mailDir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := regexp.MustCompile(`(\d+) customers received a message: (\d+) sent`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line:\n%s", out)
	}
	reached, _ := strconv.Atoi(m[1])
	sent, _ := strconv.Atoi(m[2])
	if reached < 3 {
		t.Fatalf("only %d customers received a message:\n%s", reached, out)
	}
	for _, w := range []string{"Messages sent", "Held back by the relationship policy", "no consent for the channel (no_consent)", "opted out of the topic (topic_opted_out)"} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	if !strings.Contains(out, "every message is kept in "+mailDir+", after lojal dev stops") {
		t.Errorf("no mail directory in:\n%s", out)
	}
	// A lojal why command line that works as printed while dev runs: the
	// embedded database's full URL, with its user.
	if !regexp.MustCompile(`\n  DATABASE_URL='postgres://postgres@127\.0\.0\.1:\d+/lojal\?sslmode=disable' \S*lojal\S* why --customer c-1001\n`).MatchString(out) {
		t.Errorf("no lojal why command line:\n%s", out)
	}
	if !regexp.MustCompile(`\n  studio    http://127\.0\.0\.1:\d+ `).MatchString(out) {
		t.Errorf("no studio address:\n%s", out)
	}
	// Held-back messages are listed under each customer, with the zone.
	if !regexp.MustCompile(`\n  [^\n]+ \(c-\d+\), [A-Z][a-z]+/[A-Za-z_]+ \([^)]+\)\n    [a-z-]+ +(email|push) +(deferred|suppressed)`).MatchString(out) {
		t.Errorf("held-back messages are not grouped by customer:\n%s", out)
	}
	if regexp.MustCompile(`\d\d:\d\d [+-]\d\d`).MatchString(out) {
		t.Errorf("a zone written as digits:\n%s", out)
	}
	// The inbound listener, and a demo reply taken through it: recorded,
	// pausing marketing, routed to the helper and answered.
	if !regexp.MustCompile(`\n  inbound   127\.0\.0\.1:\d+  \(SMTP: bounces, complaints, unsubscribes and replies to reply\+…@lojal\.example\)\n`).MatchString(out) {
		t.Errorf("no inbound address:\n%s", out)
	}
	for _, re := range []string{
		`\nA reply, end to end \(demo customer Nora Berg \(c-reply-\w+\), [A-Za-z_/]+\)\n  \d\d:\d\d:\d\d  lojal sent "[^"]+" \(service-introduction\), Reply-To reply\+\w+@lojal\.example\n`,
		`\n  \d\d:\d\d:\d\d  Nora replied by email to the inbound SMTP listener 127\.0\.0\.1:\d+: "Hei! Vi har fått en datter og flytter i mai\. Må vi endre innboforsikringen\?" \(signature cut\)\n`,
		`\n            a message\.replied event and conversation c-\w+, \d+\.\d s after the SMTP session ended\n`,
		`\n  \d\d:\d\d:\d\d  marketing paused: segment-onboarding/family-welcome deferred until [^:]+:\d\d [^:]+: [^\n]+\(conversation_open\)\n`,
		`\n            routed to Kundeservice <kundeservice@lojal\.example> at \d\d:\d\d:\d\d \(the forwarded email is in the mail directory\), to be answered within 4h\n`,
		`\n  \d\d:\d\d:\d\d  answered by Ingrid Solberg \(POST /v1/conversations/c-\w+/answered\); marketing to Nora waits 2d more\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the reply demo lacks %s:\n%s", re, out)
		}
	}
	emls, _ := filepath.Glob(filepath.Join(mailDir, "*.eml"))
	if len(emls) < sent {
		t.Fatalf("%d .eml files for %d messages reported sent", len(emls), sent)
	}
}

func TestRenderPreview(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cust := filepath.Join(dir, "c.json")
	events := filepath.Join(dir, "e.jsonl")
	writeFile(t, cust, `{"id": "c-1", "email": "nils@example.no", "locale": "nn", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Nils <b>", "last_name": "Haugen", "plan": "car"}}`)
	writeFile(t, events, `{"id": "e-1", "type": "policy.renewal_scheduled", "customer_id": "c-1", "at": "2026-03-01T10:00:00Z", "data": {"policy_id": "p-1", "product": "bil", "renews_at": "2026-04-01T00:00:00Z"}}`)
	out, err := runCLI(t, "journeys", "render", "--dir", "../../journeys", "--template", "renewal-reminder", "--customer", cust, "--event", events)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// By default the message reads as the customer reads it: decoded,
	// text and HTML as written.
	for _, w := range []string{"locale nb (customer locale \"nn\", fallback chain [nn nb en])", "Subject:  Bilforsikringen din fornyes 1. april",
		"To:       Nils <b> Haugen <nils@example.no>", "--- text (nb) ---\nHei Nils <b>,\n\nBilforsikringen din (avtale p-1) fornyes onsdag 1. april.",
		"--- html (nb) ---\n<p>Hei Nils &lt;b&gt;,</p>", "List-Unsubscribe: <http://"} {
		if !strings.Contains(out, w) {
			t.Errorf("preview lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "quoted-printable") || strings.Contains(out, "=C3=") {
		t.Errorf("preview is not decoded:\n%s", out)
	}
	out, err = runCLI(t, "journeys", "render", "--raw", "--dir", "../../journeys", "--template", "renewal-reminder", "--customer", cust, "--event", events)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"List-Unsubscribe-Post: List-Unsubscribe=One-Click", "Content-Type: text/plain; charset=UTF-8",
		"Content-Type: text/html; charset=UTF-8", "Subject: Bilforsikringen din fornyes 1. april"} {
		if !strings.Contains(out, w) {
			t.Errorf("raw preview lacks %q:\n%s", w, out)
		}
	}
	out, err = runCLI(t, "journeys", "render", "--dir", "../../journeys", "--template", "renewal-reminder", "--customer", cust)
	if err == nil || !strings.Contains(err.Error(), `missing value .Event.product`) {
		t.Errorf("render without the event the template needs: %v\n%s", err, out)
	}
	// The answer a wait_for got is what .Received shows.
	answer := filepath.Join(dir, "a.jsonl")
	writeFile(t, answer, `{"id": "e-2", "type": "survey.answered", "customer_id": "c-1", "at": "2026-03-02T10:00:00Z", "data": {"survey": "checkin", "answer": "Raskere svar"}}`)
	out, err = runCLI(t, "journeys", "render", "--dir", "../../journeys", "--template", "checkin-thanks", "--customer", cust, "--received", answer)
	if err != nil || !strings.Contains(out, "Raskere svar") {
		t.Errorf("render with --received: %v\n%s", err, out)
	}
}

// TestSimulateShowsTimelineUntilError: a run that fails prints what
// happened up to the failure and where it stopped, and exits 1.
func TestSimulateShowsTimelineUntilError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../journeys")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "fails.yaml"), "id: fails\nname: Fails\ntopic: service\ntrigger: { event: policy.renewal_scheduled }\nsteps:\n"+
		"  - id: first\n    send: { channel: email, template: renewal-reminder }\n"+
		"  - id: later\n    wait: { duration: 2d }\n"+
		"  - id: check\n    branch:\n      - when: int(event.policy_id) > 3\n        goto: done\n"+
		"  - id: done\n    exit: {}\n")
	cust := filepath.Join(dir, "c.json")
	events := filepath.Join(dir, "e.jsonl")
	writeFile(t, cust, `{"id": "c-1", "email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Kari", "plan": "car", "segment": "single"}}`)
	writeFile(t, events, `{"id": "e-1", "type": "policy.renewal_scheduled", "customer_id": "c-1", "at": "2026-03-02T10:00:00Z", "data": {"policy_id": "p-1", "product": "bil", "renews_at": "2026-04-01T00:00:00Z"}}`)
	out, err := runCLI(t, "journeys", "simulate", "--journey", filepath.Join(dir, "fails.yaml"), "--customer", cust, "--events", events)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v)\n%s", exitCode(err), err, out)
	}
	for _, want := range []string{"send email renewal-reminder: allow", "check", "fails.yaml:12:15: int(event.policy_id) > 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigMasksEverySecret: lojal config shows where things are and
// never a secret, whatever form it is written in; so does every log line.
func TestConfigMasksEverySecret(t *testing.T) {
	secrets := map[string]string{
		"DATABASE_URL":              "host=db user=lojal password=pg-kv-s3cret dbname=lojal",
		"SMTP_URL":                  "smtp://lojal:smtp-s3cret@smtp.example:587?tls=starttls",
		"LOJAL_PUSH_PROVIDER_URL":   "https://push.example/v1/send?api_key=push-api-k3y",
		"LOJAL_PUSH_PROVIDER_TOKEN": "push-bearer-t0ken",
		"LOJAL_LINK_KEY":            "link-key-0123456789abcdef0123456789",
		"LOJAL_VAPID_PRIVATE_KEY":   "vapid-private-k3y",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	check := func(what, out string, values ...string) {
		t.Helper()
		for _, v := range values {
			if strings.Contains(out, v) {
				t.Errorf("%s shows %q:\n%s", what, v, out)
			}
		}
	}
	out, err := runCLI(t, "config")
	if err != nil {
		t.Fatal(err)
	}
	check("lojal config", out, "pg-kv-s3cret", "smtp-s3cret", "push-api-k3y", "push-bearer-t0ken", "link-key-0123456789abcdef0123456789", "vapid-private-k3y")
	for _, w := range []string{"database-url=host=db user=lojal password=xxxxx dbname=lojal", "smtp-url=smtp://lojal:xxxxx@smtp.example:587",
		"push-provider-url=https://push.example/v1/send?api_key=xxxxx"} {
		if !strings.Contains(out, w) {
			t.Errorf("lojal config lacks %q:\n%s", w, out)
		}
	}
	// A password the URL parser cannot read is masked whole.
	t.Setenv("DATABASE_URL", "postgres://lojal:pa ss%zz@db/lojal")
	out, _ = runCLI(t, "config")
	check("lojal config (unparseable)", out, "pa ss", "%zz")

	cfg, _, err := loadConfig("test", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log, err := newLogger(cfg, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Error("smtp connect", "err", fmt.Errorf("dial %s: refused", secrets["SMTP_URL"]))
	log.Warn("push "+secrets["LOJAL_PUSH_PROVIDER_URL"], "token", secrets["LOJAL_PUSH_PROVIDER_TOKEN"])
	log.Info("signing", "key", secrets["LOJAL_LINK_KEY"], "db", cfg.DatabaseURL)
	check("the log", buf.String(), "smtp-s3cret", "push-api-k3y", "push-bearer-t0ken", "link-key-0123456789abcdef0123456789", "pa ss")
}

// TestEveryListenerHasLimits: the API, its metrics, the worker's health
// and metrics, and the dev API all have header, read, write and idle
// timeouts and header and body limits; /metrics is never open on the
// public API port.
func TestEveryListenerHasLimits(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	m := metrics.New()
	// api reads the whole body, as a handler that forgot its own limit
	// would.
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "api")
	})
	hs, ms, err := apiServers(cfg, api, m)
	if err != nil || ms == nil || ms.Addr != ":9090" || hs.Addr != ":8080" {
		t.Fatalf("api servers: %v %v %v", hs, ms, err)
	}
	servers := map[string]*http.Server{"api": hs, "metrics": ms, "dev api": devServer(api)}
	for i, s := range workerServers(cfg, nil, m, func() error { return nil }) {
		servers[fmt.Sprintf("worker %d", i)] = s
	}
	for name, s := range servers {
		if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
			t.Errorf("%s: header %s, read %s, write %s, idle %s, max header %d", name, s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
		}
	}
	for name, s := range map[string]*http.Server{"api": hs, "dev api": devServer(api)} {
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("a", 9<<20))))
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: a 9 MiB body was read to the end (%d)", name, w.Code)
		}
	}
	get := func(h http.Handler, auth string) int {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := get(ms.Handler, ""); code != 200 {
		t.Errorf("metrics listener: %d", code)
	}
	cfg.MetricsAddr = cfg.HTTPAddr
	if _, _, err := apiServers(cfg, api, m); err == nil {
		t.Error("metrics on the public API port without a token")
	}
	cfg.MetricsToken = "metrics-t0ken"
	hs, ms, err = apiServers(cfg, api, m)
	if err != nil || ms != nil {
		t.Fatalf("shared port with a token: %v %v", ms, err)
	}
	if a, b := get(hs.Handler, ""), get(hs.Handler, "metrics-t0ken"); a != 401 || b != 200 {
		t.Errorf("metrics behind a token: %d without, %d with", a, b)
	}
}

// TestTemporalRequestsAreNotGzippedUnlessAsked: gzip cost lojal's API
// about a tenth of its CPU per event (most of it clearing gzip's tables
// for each request of a few KB), and the Temporal server as much again
// to undo it; on a cluster network the bytes it saves are not worth it.
// --temporal-gzip (LOJAL_TEMPORAL_GZIP) turns it on, for a Temporal
// reached over a slow or metered link.
func TestTemporalRequestsAreNotGzippedUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want client.GrpcCompression
	}{
		{nil, &client.GrpcCompressionNone{}},
		{[]string{"--temporal-gzip"}, &client.GrpcCompressionGzip{}},
	} {
		cfg, _, err := loadConfig("worker", tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var got client.Options
		_, err = temporalClient(cfg, slog.New(slog.DiscardHandler), func(o client.Options) (client.Client, error) {
			got = o
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%T", got.ConnectionOptions.GrpcCompression) != fmt.Sprintf("%T", tc.want) {
			t.Errorf("%v: compression %T, want %T", tc.args, got.ConnectionOptions.GrpcCompression, tc.want)
		}
	}
}
