package activities_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/smtp"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type bundle struct {
	acts    *activities.Activities
	store   *store.Store
	catcher *mailcatch.Server
	pushes  *atomic.Int64
}

type setupOptions struct {
	emailTimeout time.Duration
	storeConfig  func(*store.Config)
}

type setupOption func(*setupOptions)

// withEmailTimeout bounds each SMTP conversation.
func withEmailTimeout(d time.Duration) setupOption {
	return func(o *setupOptions) { o.emailTimeout = d }
}

// withStoreConfig changes the store's configuration before it is opened.
func withStoreConfig(f func(*store.Config)) setupOption {
	return func(o *setupOptions) { o.storeConfig = f }
}

// setup gives activities over a fresh schema, the shipped journeys, the
// SMTP catcher and an HTTP push provider that knows one live device token
// ("live") and says every other is gone.
func setup(t *testing.T, opts ...setupOption) bundle {
	t.Helper()
	var o setupOptions
	for _, f := range opts {
		f(&o)
	}
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.Load(os.DirFS("../journeys"), "journeys")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mailcatch.Start(log, mailcatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + c.Addr, From: "lojal <hello@lojal.example>", Timeout: o.emailTimeout}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(email.Close)
	var pushes atomic.Int64
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 4096)
		n, _ := r.Body.Read(body)
		if !strings.Contains(string(body[:n]), `"to":"live"`) {
			w.WriteHeader(http.StatusGone)
			return
		}
		pushes.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(provider.Close)
	push := channel.NewPush(channel.PushConfig{ProviderURL: provider.URL}, log)
	signer, _ := links.NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", 0)
	var change []func(*store.Config)
	if o.storeConfig != nil {
		change = append(change, o.storeConfig)
	}
	st := pgtest.Store(t, change...)
	return bundle{store: st, catcher: c, pushes: &pushes, acts: &activities.Activities{Store: st, Catalog: cat,
		Sender: channel.Mux{"email": email, "push": push}, Links: signer, Log: log, MessageDomain: "lojal.example"}}
}

func (b bundle) customer(t *testing.T, c journey.Customer) {
	t.Helper()
	if _, err := b.store.UpsertCustomer(context.Background(), c, "test"); err != nil {
		t.Fatal(err)
	}
}

func kari() journey.Customer {
	return journey.Customer{ID: "c-1", Email: "kari@example.no", Locale: "nb", Timezone: "UTC",
		Consent: map[string]bool{"email": true, "push": true},
		Attributes: map[string]any{"first_name": "Kari", "last_name": "Nordmann", "plan": "home", "segment": "family",
			"advisor_name": "Ingrid", "advisor_phone": "+47 1", "loyalty_points": 1200}}
}

// noon returns a clock at 12:00 UTC today, outside quiet hours for a
// customer in UTC.
func noon() func() time.Time {
	y, m, d := time.Now().UTC().Date()
	t := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return t }
}

func sendInput(template, channel string) activities.SendInput {
	return activities.SendInput{DecideInput: activities.DecideInput{WorkflowID: "journey/loyalty-benefit/c-1", RunID: "run-1",
		JourneyID: "loyalty-benefit", Version: "v1", StepID: "tell", CustomerID: "c-1", Ask: 1, FirstAsked: noon()(),
		Send: journey.SendAction{Channel: channel, Template: template, Topic: "loyalty", Priority: "normal", Visit: 1}}}
}

func TestSendTwiceDeliversOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	first, err := b.acts.Send(ctx, in)
	if err != nil || first.Verdict != policy.Allow || first.Delivery.Status != activities.StatusSent {
		t.Fatalf("first: %+v %v", first, err)
	}
	// Temporal retrying the same attempt (same key) must not send again.
	again, err := b.acts.Send(ctx, in)
	if err != nil || !again.Replayed || !again.Delivery.AlreadySent || again.Delivery.MessageID != first.Delivery.MessageID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("%d messages received, want 1", n)
	}
	m := b.catcher.Messages()[0]
	if m.MessageID() != first.Delivery.MessageID || m.Header.Get("Content-Language") != "nb" {
		t.Errorf("headers: %v", m.Header)
	}
}

func TestHostileCustomerDataIsEscaped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	c := kari()
	c.Attributes["first_name"] = `<script>alert("pwned")</script>`
	b.customer(t, c)
	out, err := b.acts.Send(context.Background(), sendInput("advisor-intro", "email"))
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("%+v %v", out, err)
	}
	text, html := parts(t, b.catcher.Messages()[0].Data)
	if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
		t.Fatalf("html part not escaped:\n%s", html)
	}
	// The text part is text/plain: the name appears as written, which no
	// mail client executes.
	if !strings.Contains(text, `Hei <script>alert("pwned")</script>,`) {
		t.Fatalf("text part:\n%s", text)
	}
}

func parts(t *testing.T, raw []byte) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return text, html
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(body)
		} else {
			text = string(body)
		}
	}
}

func TestMissingAttributeFailsWithoutSending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	c := kari()
	delete(c.Attributes, "first_name")
	b.customer(t, c)
	out, err := b.acts.Send(context.Background(), sendInput("loyalty-benefit", "email"))
	if err != nil || out.Delivery.Status != activities.StatusFailed || !strings.Contains(out.Delivery.Error, "first_name") {
		t.Fatalf("%+v %v", out, err)
	}
	hist, _ := b.store.History(context.Background(), "c-1")
	if b.catcher.Count() != 0 || len(hist) != 1 || hist[0].Status != "failed" {
		t.Fatalf("sent %d, history %+v", b.catcher.Count(), hist)
	}
}

func TestPreferredPush(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	c := kari()
	c.PreferredChannel = "push"
	b.customer(t, c)
	if _, err := b.store.AddPushSubscription(context.Background(), "c-1", store.PushSubscription{Kind: "http", Endpoint: "live"}); err != nil {
		t.Fatal(err)
	}
	out, err := b.acts.Send(context.Background(), sendInput("loyalty-benefit", "preferred"))
	if err != nil || out.Channel != "push" || out.Delivery.Status != activities.StatusSent || b.pushes.Load() != 1 || b.catcher.Count() != 0 {
		t.Fatalf("%+v %v (pushes %d, emails %d)", out, err, b.pushes.Load(), b.catcher.Count())
	}
}

// TestExpiredPushFallsBackToEmail: the push provider says the only
// subscription is gone; it is removed, the reservation released, and the
// next ask goes out by email.
func TestExpiredPushFallsBackToEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	c := kari()
	c.PreferredChannel = "push"
	b.customer(t, c)
	ctx := context.Background()
	if _, err := b.store.AddPushSubscription(ctx, "c-1", store.PushSubscription{Kind: "http", Endpoint: "stale-device"}); err != nil {
		t.Fatal(err)
	}
	in := sendInput("loyalty-benefit", "preferred")
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Channel != "push" || out.Delivery.Status != activities.StatusFallback {
		t.Fatalf("first ask: %+v %v", out, err)
	}
	if subs, _ := b.store.PushSubscriptions(ctx, "c-1"); len(subs) != 0 {
		t.Fatalf("expired subscription kept: %+v", subs)
	}
	in.Ask, in.Send.Channel = 2, policy.Email // what the workflow does on fallback
	out, err = b.acts.Send(ctx, in)
	if err != nil || out.Channel != "email" || out.Delivery.Status != activities.StatusSent || b.catcher.Count() != 1 {
		t.Fatalf("second ask: %+v %v", out, err)
	}
	hist, _ := b.store.History(ctx, "c-1")
	if len(hist) != 2 || hist[0].Status != "failed" || hist[1].Status != "sent" {
		t.Fatalf("history %+v", hist)
	}
}

// TestBadNameOrAddressIsAMessageError: a name that could split a header is
// sanitised and the message goes out; an address that cannot be used
// (stored before addresses were checked) fails that message, with the
// reason in the ledger, and suppresses nothing: a message lojal could not
// build says nothing about the mailbox.
func TestBadNameOrAddressIsAMessageError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	ctx := context.Background()
	c := kari()
	c.Attributes["first_name"] = "Kari\r\nBcc: everyone@example.no"
	c.Attributes["last_name"] = `"Nord\mann"`
	b.customer(t, c)
	out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "email"))
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("CR/LF in the name: %+v %v", out, err)
	}
	m := b.catcher.Messages()[0]
	to, err := mail.ParseAddress(m.Header.Get("To"))
	if err != nil || to.Address != "kari@example.no" || to.Name != `Kari Bcc: everyone@example.no "Nord\mann"` || m.Header.Get("Bcc") != "" {
		t.Fatalf("To %q (%v), Bcc %q", m.Header.Get("To"), err, m.Header.Get("Bcc"))
	}

	ola := kari()
	ola.ID, ola.Email = "c-2", "not-an-address"
	b.customer(t, ola)
	in := sendInput("loyalty-benefit", "email")
	in.CustomerID, in.WorkflowID = "c-2", "journey/loyalty-benefit/c-2"
	out, err = b.acts.Send(ctx, in)
	if err != nil || out.Delivery.Status != activities.StatusFailed || !strings.Contains(out.Delivery.Error, "not-an-address") {
		t.Fatalf("bad address: %+v %v", out, err)
	}
	hist, _ := b.store.History(ctx, "c-2")
	if len(hist) != 1 || hist[0].Status != "failed" || hist[0].Error == "" {
		t.Fatalf("history %+v", hist)
	}
	// Nothing was suppressed: the next message to each address is decided
	// on its merits, not refused as a hard bounce.
	for _, cust := range []string{"c-1", "c-2"} {
		in := sendInput("loyalty-benefit", "email")
		in.CustomerID, in.WorkflowID, in.StepID = cust, "journey/loyalty-benefit/"+cust, "again"
		out, err := b.acts.Send(ctx, in)
		if err != nil || out.Reason == policy.ReasonHardBounce {
			t.Errorf("%s: %+v %v: a message error suppressed the address", cust, out, err)
		}
	}
}

// TestBouncesMatchTheMessageSent: every email goes out with its own signed
// Return-Path; a bounce delivered there, or quoting the message's
// Message-ID, suppresses the address it went to, and nothing else does.
func TestBouncesMatchTheMessageSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	verp, err := bounce.NewVERP([]byte("0123456789abcdef0123456789abcdef"), "bounces@lojal.example")
	if err != nil {
		t.Fatal(err)
	}
	b.acts.VERP = verp
	b.customer(t, kari())
	ctx := context.Background()
	out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "email"))
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("%+v %v", out, err)
	}
	m := b.catcher.Messages()[0]
	if !strings.HasPrefix(m.From, "bounces+") || !strings.HasSuffix(m.From, "@lojal.example") {
		t.Fatalf("MAIL FROM %q, want a VERP address", m.From)
	}
	if id, ok := verp.Verify(m.From, "kari@example.no"); !ok || !strings.HasPrefix(m.MessageID(), id) {
		t.Fatalf("Return-Path %q does not verify for kari (%q)", m.From, id)
	}
	in := &bounce.Intake{Store: b.store, VERP: verp, Log: slog.New(slog.DiscardHandler)}
	dsn := func(rcpt, quoted string) string {
		return "From: MAILER-DAEMON@mx.example.no\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
			"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no\r\n\r\n" +
			"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" +
			"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + quoted + "\r\n\r\n--B--\r\n"
	}
	// Forged: the right Message-ID but another address; the right
	// Return-Path but another address; an address lojal never wrote to.
	for name, tc := range map[string]struct{ report, envelopeTo string }{
		"message-id, other address":  {dsn("victim@example.no", "Message-ID: <"+m.MessageID()+">"), "bounces@lojal.example"},
		"return path, other address": {dsn("victim@example.no", "Subject: x"), m.From},
		"unknown message":            {dsn("kari@example.no", "Message-ID: <0000@lojal.example>"), "bounces@lojal.example"},
	} {
		if _, err := in.Apply(ctx, strings.NewReader(tc.report), tc.envelopeTo); !errors.Is(err, bounce.ErrNoMatch) {
			t.Errorf("%s: %v, want ErrNoMatch", name, err)
		}
	}
	if list, _ := b.store.Suppressions(ctx, store.SuppressionPage{}); len(list) != 0 {
		t.Fatalf("forged reports suppressed %+v", list)
	}
	// Genuine, by Message-ID (the ledger's row for kari), then by VERP.
	for name, tc := range map[string]struct{ report, envelopeTo, match string }{
		"message-id": {dsn("Kari@example.no", "Message-ID: <"+m.MessageID()+">"), "bounces@lojal.example", "message-id"},
		"verp":       {dsn("kari@example.no", "Subject: x"), m.From, "verp"},
	} {
		res, err := in.Apply(ctx, strings.NewReader(tc.report), tc.envelopeTo)
		if err != nil || len(res.Results) != 1 || res.Results[0].Match != tc.match {
			t.Fatalf("%s: %+v %v", name, res.Results, err)
		}
	}
	list, _ := b.store.Suppressions(ctx, store.SuppressionPage{})
	if len(list) != 1 || list[0].Address != "kari@example.no" || list[0].Reason != "hard_bounce" {
		t.Fatalf("suppressions %+v", list)
	}
}

// TestUnsubscribeByMail: an email's List-Unsubscribe offers, next to the
// https link, a mailto: address signed for that message; mail sent to it
// through the inbound intake unsubscribes the customer from the message's
// topic, as the one-click POST does.
func TestUnsubscribeByMail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	verp, err := bounce.NewVERP([]byte("0123456789abcdef0123456789abcdef"), "bounces@lojal.example")
	if err != nil {
		t.Fatal(err)
	}
	b.acts.VERP = verp
	b.customer(t, kari())
	ctx := context.Background()
	if out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "email")); err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("%+v %v", out, err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(b.catcher.Messages()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^<(https://[^>]+)>, <mailto:([^?>]+)\?subject=unsubscribe>$`).FindStringSubmatch(msg.Header.Get("List-Unsubscribe"))
	if m == nil {
		t.Fatalf("List-Unsubscribe %q, want the https link and a mailto: address", msg.Header.Get("List-Unsubscribe"))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	in := &bounce.Intake{Store: b.store, VERP: verp, Log: slog.New(slog.DiscardHandler), MessageDomain: "lojal.example",
		Now: b.acts.Now}
	go in.ServeSMTP(l, bounce.SMTPOptions{}) //nolint:errcheck // ends when l closes
	request := "From: kari@example.no\r\nTo: " + m[2] + "\r\nSubject: unsubscribe\r\n\r\n\r\n"
	if err := smtp.SendMail(l.Addr().String(), nil, "kari@example.no", []string{m[2]}, []byte(request)); err != nil {
		t.Fatal(err)
	}
	c, err := b.store.Customer(ctx, "c-1")
	if err != nil || !slices.Equal(c.TopicsOptedOut, []string{"loyalty"}) || !c.Consent["email"] {
		t.Fatalf("after unsubscribing by email: opted out of %v, consent %v (%v); want loyalty only", c.TopicsOptedOut, c.Consent, err)
	}
	// Both ways name the message they came in, for the journey report.
	id := strings.Trim(msg.Header.Get("Message-ID"), "<>")
	var named string
	if err := b.store.Pool().QueryRow(ctx, `SELECT message_id FROM consent_ledger WHERE customer_id = 'c-1' AND source = 'unsubscribe'`).
		Scan(&named); err != nil || named != id {
		t.Fatalf("the unsubscribe by email names message %q (%v), want %q", named, err, id)
	}
	claims, err := b.acts.Links.Verify(links.Unsubscribe, m[1][strings.LastIndex(m[1], "/")+1:], noon()())
	if err != nil || claims.Message != id {
		t.Fatalf("the unsubscribe link names message %q (%v), want %q", claims.Message, err, id)
	}
}

// TestPushTooLongIsCut: a push message whose data makes it too large for
// one record (3,993 bytes of JSON, RFC 8291) is cut by the documented rule
// when it is composed, so the preview and the ledger show what is sent:
// the body, at a character, ending in "…".
func TestPushTooLongIsCut(t *testing.T) {
	t.Parallel()
	cat, err := catalog.Load(os.DirFS("../journeys"), "journeys")
	if err != nil {
		t.Fatal(err)
	}
	c := kari()
	c.Locale = "en"
	c.Attributes["first_name"] = strings.Repeat("Kari-", 1000)
	env, err := activities.Compose(cat, nil, activities.Message{Template: "onboarding-nudge", Channel: "push", Topic: "service", Customer: c,
		MessageID: "0123456789abcdef0123456789abcdef@lojal.example"}, noon()())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(channel.Payload{Title: env.Message.Title, Body: env.Message.Body, URL: env.Message.URL, MessageID: env.MessageID, Locale: env.Message.Locale})
	if len(b) > channel.MaxPushPayload || env.Message.Title != "One step left" || !strings.HasSuffix(env.Message.Body, "…") ||
		!strings.HasPrefix(env.Message.Body, "Kari-Kari-") {
		t.Fatalf("%d bytes of JSON, title %q, body %q...", len(b), env.Message.Title, env.Message.Body[:40])
	}
}

// TestDeliveryAskedAgainAnswersTheSame: a run that continues as new in the
// middle of a send step asks from its first ask again, and every earlier
// ask replays its decision, so Deliver is asked again about a message it
// already settled. Its answer must be the one it gave: a message that
// expired is expired (the run asks again and sends), a push that could
// reach no device falls back (the run asks for email). It answered
// "failed", and the run ended the step without sending.
func TestDeliveryAskedAgainAnswersTheSame(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.acts.Now = noon()
		b.customer(t, kari())
		in := sendInput("loyalty-benefit", "email")
		d, err := b.acts.Decide(ctx, in.DecideInput)
		if err != nil || d.Verdict != policy.Allow {
			t.Fatalf("decide: %+v %v", d, err)
		}
		later := noon()().Add(activities.ReservationTTL + time.Minute)
		b.acts.Now = func() time.Time { return later }
		for i := range 2 {
			out, err := b.acts.Deliver(ctx, activities.DeliverInput{IdempotencyKey: d.IdempotencyKey, Channel: d.Channel, JourneyID: in.JourneyID})
			if err != nil || out.Status != activities.StatusExpired {
				t.Fatalf("delivery %d past the reservation: %+v %v; want expired", i+1, out, err)
			}
		}
	})
	t.Run("fallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.acts.Now = noon()
		c := kari()
		c.PreferredChannel = "push"
		b.customer(t, c)
		if _, err := b.store.AddPushSubscription(ctx, "c-1", store.PushSubscription{Kind: "http", Endpoint: "stale-device"}); err != nil {
			t.Fatal(err)
		}
		in := sendInput("loyalty-benefit", "preferred")
		d, err := b.acts.Decide(ctx, in.DecideInput)
		if err != nil || d.Verdict != policy.Allow || d.Channel != "push" {
			t.Fatalf("decide: %+v %v", d, err)
		}
		for i := range 2 {
			out, err := b.acts.Deliver(ctx, activities.DeliverInput{IdempotencyKey: d.IdempotencyKey, Channel: d.Channel, JourneyID: in.JourneyID})
			if err != nil || out.Status != activities.StatusFallback {
				t.Fatalf("delivery %d with no device: %+v %v; want fallback", i+1, out, err)
			}
		}
	})
}
