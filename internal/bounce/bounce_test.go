package bounce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/smtp"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/store"
)

func parseFile(t *testing.T, name string) (Report, error) {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Parse(f)
}

func TestDSN(t *testing.T) {
	t.Parallel()
	rep, err := parseFile(t, "dsn.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 2 {
		t.Fatalf("recipients %+v", rep.Recipients)
	}
	hard, soft := rep.Recipients[0], rep.Recipients[1]
	if hard.Address != "kari@example.no" || hard.Kind != HardBounce || hard.Status != "5.1.1" || !strings.Contains(hard.Diagnostic, "550") {
		t.Errorf("hard: %+v", hard)
	}
	if soft.Address != "ola@example.no" || soft.Kind != SoftBounce {
		t.Errorf("soft: %+v", soft)
	}
	if rep.MessageID != "5975cf1bba432391c94667f5886225f6@lojal.example" || rep.Key != "journey/renewal-reminder/c-1001/p-9@run/remind#1.1" {
		t.Errorf("original: %q %q", rep.MessageID, rep.Key)
	}
}

func TestComplaint(t *testing.T) {
	t.Parallel()
	rep, err := parseFile(t, "arf.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 1 || rep.Recipients[0].Address != "astrid@example.se" || rep.Recipients[0].Kind != Complaint || rep.MessageID != "abc@lojal.example" {
		t.Fatalf("%+v", rep)
	}
}

func TestNotAReport(t *testing.T) {
	t.Parallel()
	if _, err := parseFile(t, "autoreply.eml"); !errors.Is(err, ErrNotAReport) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse(strings.NewReader("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"dsn.eml", "arf.eml", "autoreply.eml"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(b)
	}
	f.Add([]byte(dsnWithoutHeaders("kari@example.no")))
	f.Add([]byte(tooManyRecipients(12)))
	v := testVERP(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Parse(strings.NewReader(string(b)))
		if err == nil && (len(rep.Recipients) == 0 || len(rep.Recipients) > MaxRecipients) {
			t.Fatalf("%d recipients", len(rep.Recipients))
		}
		// Whatever the report says, with an empty ledger and no genuine
		// Return-Path nothing is suppressed.
		l := newLedger()
		in := &Intake{Store: l, VERP: v, Log: slog.New(slog.DiscardHandler)}
		if _, err := in.Apply(context.Background(), strings.NewReader(string(b)), "bounces@lojal.example"); err == nil || len(l.suppressed()) != 0 {
			t.Fatalf("applied a report about nothing lojal sent: %v %v", err, l.suppressed())
		}
	})
}

// ledger is a fake contact ledger: the messages lojal sent, and what was
// suppressed.
type ledger struct {
	mu   sync.Mutex
	sent []sentMsg
	got  map[string]string
	// unsubscribed maps a customer to the topics they were unsubscribed
	// from ("*" for everything).
	unsubscribed map[string][]string
	fail         bool
}

type sentMsg struct {
	to, messageID, key string
	customer, topic    string
	at                 time.Time
}

func newLedger(sent ...sentMsg) *ledger {
	return &ledger{sent: sent, got: map[string]string{}, unsubscribed: map[string][]string{}}
}

func (l *ledger) MessageByID(_ context.Context, messageID string) (store.SentMessage, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return store.SentMessage{}, false, errors.New("database down")
	}
	for i, m := range l.sent {
		if m.messageID == messageID {
			return store.SentMessage{LedgerID: int64(i + 1), CustomerID: m.customer, MessageID: m.messageID, Address: m.to, Topic: m.topic, At: m.at}, true, nil
		}
	}
	return store.SentMessage{}, false, nil
}

func (l *ledger) Unsubscribe(_ context.Context, customerID, topic string, allTopics []string, _ store.Capture) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if topic == "" {
		topic = "*"
	}
	l.unsubscribed[customerID] = append(l.unsubscribed[customerID], topic)
	return nil
}

func (l *ledger) unsubscribes() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.unsubscribed)
}

func (l *ledger) SentTo(_ context.Context, address, messageID, key string) (store.SentMessage, bool, error) {
	for i, m := range l.sent {
		if strings.EqualFold(m.to, address) && ((messageID != "" && m.messageID == messageID) || (key != "" && m.key == key)) {
			return store.SentMessage{LedgerID: int64(i + 1), MessageID: m.messageID}, true, nil
		}
	}
	return store.SentMessage{}, false, nil
}

func (l *ledger) Suppress(_ context.Context, channel, address, reason, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("database down")
	}
	l.got[address] = reason
	return nil
}

func (l *ledger) Complain(ctx context.Context, channel, address, _, detail string) error {
	return l.Suppress(ctx, channel, address, "complaint", detail)
}

func (l *ledger) suppressed() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.got)
}

// kariMessage is the message dsn.eml is about, as the ledger has it.
var kariMessage = sentMsg{to: "kari@example.no", messageID: "5975cf1bba432391c94667f5886225f6@lojal.example",
	key: "journey/renewal-reminder/c-1001/p-9@run/remind#1.1"}

func testVERP(t testing.TB) *VERP {
	t.Helper()
	v, err := NewVERP([]byte("test-link-key-0123456789abcdef0123"), "bounces@lojal.example")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVERP(t *testing.T) {
	t.Parallel()
	v := testVERP(t)
	addr := v.Address("5975cf1bba432391c94667f5886225f6@lojal.example", "Kari@example.no")
	local, domain, _ := strings.Cut(addr, "@")
	if !strings.HasPrefix(addr, "bounces+") || domain != "lojal.example" || len(local) > 64 {
		t.Fatalf("address %q", addr)
	}
	if id, ok := v.Verify(addr, "kari@example.no"); !ok || id != "5975cf1bba432391c94667f5886225f6" {
		t.Fatalf("Verify = %q %v", id, ok)
	}
	if _, ok := v.Verify("<"+strings.ToUpper(addr)+">", "KARI@example.no"); !ok {
		t.Error("case or angle brackets changed the verdict")
	}
	other, _ := NewVERP([]byte("another-key-of-enough-length-0123"), "bounces@lojal.example")
	tok := strings.TrimPrefix(local, "bounces+")
	flipped := []byte(tok)
	flipped[3] ^= 1
	for name, bad := range map[string]struct{ addr, rcpt string }{
		"other recipient": {addr, "ola@example.no"},
		"other domain":    {local + "@evil.example", "kari@example.no"},
		"other mailbox":   {"returns+" + tok + "@lojal.example", "kari@example.no"},
		"tampered":        {"bounces+" + string(flipped) + "@lojal.example", "kari@example.no"},
		"respelled":       {"bounces+" + respell(tok) + "@lojal.example", "kari@example.no"},
		"truncated":       {"bounces+" + tok[:20] + "@lojal.example", "kari@example.no"},
		"plain":           {"bounces@lojal.example", "kari@example.no"},
		"no token":        {"bounces+@lojal.example", "kari@example.no"},
	} {
		if _, ok := v.Verify(bad.addr, bad.rcpt); ok {
			t.Errorf("%s: %q verified for %s", name, bad.addr, bad.rcpt)
		}
	}
	if _, ok := other.Verify(addr, "kari@example.no"); ok {
		t.Error("another key verified the token")
	}
	for _, bad := range []string{"not an address", "a+b@lojal.example", strings.Repeat("b", 22) + "@lojal.example"} {
		if _, err := NewVERP([]byte("test-link-key-0123456789abcdef0123"), bad); err == nil {
			t.Errorf("NewVERP(%q) accepted", bad)
		}
	}
}

// respell changes the padding bits of a base32 token's last character.
func respell(tok string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i^1])
}

// TestForgedReportsChangeNothing: a report is applied only to a recipient
// lojal sent the reported message to; anything else is ErrNoMatch and
// suppresses nothing.
func TestForgedReportsChangeNothing(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	dsn, _ := os.ReadFile("testdata/dsn.eml")
	arf, _ := os.ReadFile("testdata/arf.eml")
	apply := func(l *ledger, v *VERP, report string, envelopeTo ...string) (Outcome, error) {
		in := &Intake{Store: l, VERP: v, Log: log}
		return in.Apply(context.Background(), strings.NewReader(report), envelopeTo...)
	}

	// The genuine report: kari's message bounced; ola is named too, but
	// lojal did not send that message to ola.
	l := newLedger(kariMessage)
	out, err := apply(l, nil, string(dsn))
	if err != nil || !reflect.DeepEqual(l.suppressed(), map[string]string{"kari@example.no": "hard_bounce"}) {
		t.Fatalf("genuine DSN: %v, suppressed %v", err, l.suppressed())
	}
	if len(out.Results) != 2 || !out.Results[0].Applied || out.Results[0].Match != "message-id" || out.Results[1].Applied || out.Results[1].Ignored == "" {
		t.Fatalf("results %+v", out.Results)
	}

	victim := strings.ReplaceAll(string(dsn), "Kari@Example.no", "victim@example.no")
	tooMany := tooManyRecipients(12000)
	for name, tc := range map[string]struct {
		ledger *ledger
		report string
		want   error
	}{
		"lojal never sent it":             {newLedger(), string(dsn), ErrNoMatch},
		"lojal's message, other address":  {newLedger(kariMessage), victim, ErrNoMatch},
		"no message quoted":               {newLedger(kariMessage), dsnWithoutHeaders("kari@example.no"), ErrNoMatch},
		"12,000 recipients":               {newLedger(kariMessage), tooMany, ErrTooManyRecipients},
		"complaint about another message": {newLedger(kariMessage), string(arf), ErrNoMatch},
	} {
		_, err := apply(tc.ledger, nil, tc.report)
		if !errors.Is(err, tc.want) || len(tc.ledger.suppressed()) != 0 {
			t.Errorf("%s: %v, suppressed %v; want %v and nothing suppressed", name, err, tc.ledger.suppressed(), tc.want)
		}
	}

	// A complaint about a message lojal sent to astrid is applied.
	l = newLedger(sentMsg{to: "astrid@example.se", messageID: "abc@lojal.example"})
	if _, err := apply(l, nil, string(arf)); err != nil || l.suppressed()["astrid@example.se"] != "complaint" {
		t.Fatalf("complaint: %v %v", err, l.suppressed())
	}

	// VERP: a report that quotes nothing, delivered to the Return-Path of
	// kari's message, is about kari's message, and only kari's.
	v := testVERP(t)
	rp := v.Address(kariMessage.messageID, "kari@example.no")
	l = newLedger()
	if out, err := apply(l, v, dsnWithoutHeaders("kari@example.no"), rp); err != nil || l.suppressed()["kari@example.no"] != "hard_bounce" || out.Results[0].Match != "verp" {
		t.Fatalf("VERP: %v %+v, suppressed %v", err, out.Results, l.suppressed())
	}
	// The report may carry the Return-Path itself, as the DSN's To.
	l = newLedger()
	if _, err := apply(l, v, "To: "+rp+"\r\n"+dsnWithoutHeaders("kari@example.no")); err != nil || len(l.suppressed()) != 1 {
		t.Fatalf("VERP in To: %v, suppressed %v", err, l.suppressed())
	}
	for name, envelopeTo := range map[string]string{
		"made for kari, names ola": rp,
		"unsigned":                 "bounces+" + strings.Repeat("a", 42) + "@lojal.example",
	} {
		l = newLedger()
		if _, err := apply(l, v, dsnWithoutHeaders("ola@example.no"), envelopeTo); !errors.Is(err, ErrNoMatch) || len(l.suppressed()) != 0 {
			t.Errorf("%s: %v, suppressed %v", name, err, l.suppressed())
		}
	}
}

// dsnWithoutHeaders is a hard bounce for rcpt that quotes nothing of the
// original message.
func dsnWithoutHeaders(rcpt string) string {
	return "From: MAILER-DAEMON@mx.example.no\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
}

// tooManyRecipients is a report of under a megabyte that names n
// addresses and quotes a message lojal did send.
func tooManyRecipients(n int) string {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no\r\n")
	for i := range n {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; c%d@example.no\r\nAction: failed\r\nStatus: 5.1.1\r\n", i)
	}
	b.WriteString("\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <" + kariMessage.messageID + ">\r\n\r\n--B--\r\n")
	return b.String()
}

func TestSMTPIntake(t *testing.T) {
	t.Parallel()
	v := testVERP(t)
	l := newLedger(kariMessage)
	in := &Intake{Store: l, VERP: v, Log: slog.New(slog.DiscardHandler)}
	addr := serve(t, in, SMTPOptions{})
	send := func(to string, msg []byte) error {
		return smtp.SendMail(addr, nil, "mailer-daemon@mx.example.no", []string{to}, msg)
	}
	file := func(name string) []byte {
		b, _ := os.ReadFile("testdata/" + name)
		return b
	}
	// Forged reports and auto-replies are accepted (a forger learns
	// nothing) and change nothing.
	for _, msg := range [][]byte{file("arf.eml"), file("autoreply.eml"), []byte(dsnWithoutHeaders("astrid@example.se")),
		[]byte(strings.ReplaceAll(string(file("dsn.eml")), "Kari@Example.no", "victim@example.no")), []byte(tooManyRecipients(500))} {
		if err := send("bounces@lojal.example", msg); err != nil {
			t.Fatalf("forged report refused at SMTP level: %v", err)
		}
	}
	if got := l.suppressed(); len(got) != 0 {
		t.Fatalf("forged reports suppressed %v", got)
	}
	// The genuine bounce, matched by its VERP Return-Path.
	ola := sentMsg{to: "ola@example.no", messageID: "0123456789abcdef0123456789abcdef@lojal.example"}
	if err := send(v.Address(ola.messageID, ola.to), []byte(dsnWithoutHeaders(ola.to))); err != nil {
		t.Fatal(err)
	}
	if err := send("bounces@lojal.example", file("dsn.eml")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kari@example.no": "hard_bounce", "ola@example.no": "hard_bounce"}
	if got := l.suppressed(); !reflect.DeepEqual(got, want) {
		t.Fatalf("suppressed %v, want %v", got, want)
	}
	l.mu.Lock()
	l.fail = true
	l.mu.Unlock()
	if err := send("bounces@lojal.example", file("dsn.eml")); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("store failure: %v, want a 451 so the sender retries", err)
	}
}

// TestUnsubscribeByMail: mail to the mailto: address in a message's
// List-Unsubscribe unsubscribes its recipient from its topic, as the
// one-click link does; the address is signed per message, so no other
// address (a Return-Path, a tampered or foreign token, one for a message
// lojal never sent or sent too long ago) unsubscribes anyone.
func TestUnsubscribeByMail(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	v := testVERP(t)
	kari := sentMsg{to: "kari@example.no", messageID: "5975cf1bba432391c94667f5886225f6@lojal.example", customer: "c-1001",
		topic: "renewals", at: now.Add(-24 * time.Hour)}
	old := sentMsg{to: "ola@example.no", messageID: "0123456789abcdef0123456789abcdef@lojal.example", customer: "c-1002",
		topic: "renewals", at: now.Add(-100 * 24 * time.Hour)}
	unsub := v.UnsubscribeAddress(kari.messageID)
	if local, domain, _ := strings.Cut(unsub, "@"); domain != "lojal.example" || len(local) > 64 || !strings.HasPrefix(local, "bounces+") {
		t.Fatalf("unsubscribe address %q", unsub)
	}
	if _, ok := v.Verify(unsub, kari.to); ok {
		t.Fatal("an unsubscribe address verifies as a Return-Path")
	}
	if _, ok := v.VerifyUnsubscribe(v.Address(kari.messageID, kari.to)); ok {
		t.Fatal("a Return-Path verifies as an unsubscribe address")
	}

	newIntake := func(l *ledger) string {
		return serve(t, &Intake{Store: l, VERP: v, Log: slog.New(slog.DiscardHandler), MessageDomain: "lojal.example",
			Now: func() time.Time { return now }}, SMTPOptions{})
	}
	request := []byte("From: Kari Nordmann <kari@example.no>\r\nTo: " + unsub + "\r\nSubject: unsubscribe\r\n\r\n\r\n")
	l := newLedger(kari, old)
	addr := newIntake(l)
	if err := smtp.SendMail(addr, nil, "kari@example.no", []string{unsub}, request); err != nil {
		t.Fatal(err)
	}
	if got := l.unsubscribes(); !reflect.DeepEqual(got, map[string][]string{"c-1001": {"renewals"}}) {
		t.Fatalf("unsubscribed %v, want c-1001 from renewals", got)
	}
	if len(l.suppressed()) != 0 {
		t.Fatalf("an unsubscribe suppressed %v", l.suppressed())
	}

	other, _ := NewVERP([]byte("another-key-of-enough-length-0123"), "bounces@lojal.example")
	tok := strings.TrimSuffix(strings.TrimPrefix(unsub, "bounces+"), "@lojal.example")
	flipped := []byte(tok)
	flipped[5] ^= 1
	for name, to := range map[string]string{
		"the Return-Path of the message":  v.Address(kari.messageID, kari.to),
		"tampered":                        "bounces+" + string(flipped) + "@lojal.example",
		"signed with another key":         other.UnsubscribeAddress(kari.messageID),
		"a message lojal never sent":      v.UnsubscribeAddress("fedcba9876543210fedcba9876543210@lojal.example"),
		"sent longer ago than links last": v.UnsubscribeAddress(old.messageID),
		"the plain bounce mailbox":        "bounces@lojal.example",
	} {
		l := newLedger(kari, old)
		if err := smtp.SendMail(newIntake(l), nil, "kari@example.no", []string{to}, request); err != nil {
			t.Fatalf("%s: refused at SMTP level: %v", name, err)
		}
		if got := l.unsubscribes(); len(got) != 0 {
			t.Errorf("%s: unsubscribed %v", name, got)
		}
	}

	l = newLedger(kari)
	l.fail = true
	if err := smtp.SendMail(newIntake(l), nil, "kari@example.no", []string{unsub}, request); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("store failure: %v, want a 451 so the sender retries", err)
	}
}

// TestSMTPIntakeLimits: connections beyond the limit are told to come back
// later, and a connection that keeps itself busy is closed at the session
// deadline.
func TestSMTPIntakeLimits(t *testing.T) {
	t.Parallel()
	in := &Intake{Store: newLedger(), Log: slog.New(slog.DiscardHandler)}
	addr := serve(t, in, SMTPOptions{MaxConns: 2, SessionTimeout: 700 * time.Millisecond, Timeout: 5 * time.Second})
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	greeting := func(r *bufio.Reader) string {
		line, _ := r.ReadString('\n')
		return line
	}
	c1, r1 := dial()
	_, r2 := dial()
	if g1, g2 := greeting(r1), greeting(r2); !strings.HasPrefix(g1, "220") || !strings.HasPrefix(g2, "220") {
		t.Fatalf("greetings %q %q", g1, g2)
	}
	_, r3 := dial()
	if g := greeting(r3); !strings.HasPrefix(g, "421") {
		t.Fatalf("third connection got %q, want 421", g)
	}
	// c1 keeps talking; the deadline closes it all the same.
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		if _, err := c1.Write([]byte("NOOP\r\n")); err != nil {
			break
		}
		if _, err := r1.ReadString('\n'); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a busy connection lasted %s past a 700ms session deadline", d)
	}
	// Its slot is free again.
	_, r4 := dial()
	if g := greeting(r4); !strings.HasPrefix(g, "220") {
		t.Fatalf("after the deadline: %q", g)
	}
}

// TestRecipientLimitCountsEveryPart: ten recipients in a delivery-status
// part and a complaint in a feedback part are eleven.
func TestRecipientLimitCountsEveryPart(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no\r\n")
	for i := range MaxRecipients {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; c%d@example.no\r\nAction: failed\r\nStatus: 5.1.1\r\n", i)
	}
	b.WriteString("\r\n--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <x@example.no>\r\n\r\n--B--\r\n")
	if rep, err := Parse(strings.NewReader(b.String())); !errors.Is(err, ErrTooManyRecipients) {
		t.Fatalf("%d recipients, %v", len(rep.Recipients), err)
	}
}
