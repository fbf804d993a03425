package activities_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// history returns the customer's ledger rows, failing the test on error.
func (b bundle) history(t *testing.T) []store.LedgerEntry {
	t.Helper()
	h, err := b.store.History(context.Background(), "c-1")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestLostReplyIsUncertainAndNeverResent: the server queues the message on
// the final "." and drops the connection before its 250. Only an explicit
// refusal proves the server did not take a message, so lojal records it as
// uncertain, counts it, and a retry of the activity does not send it again.
func TestLostReplyIsUncertainAndNeverResent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	b.catcher.SetAfterData(func(_ mailcatch.Message, attempt int) mailcatch.Reply {
		if attempt == 1 {
			return mailcatch.Reply{Action: mailcatch.QueueAndDrop}
		}
		return mailcatch.Reply{}
	})
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	first, err := b.acts.Send(ctx, in)
	if err != nil || first.Delivery.Status != activities.StatusUncertain {
		t.Fatalf("first attempt: %+v, %v; want status %s and no error", first.Delivery, err, activities.StatusUncertain)
	}
	again, err := b.acts.Send(ctx, in) // Temporal retrying the activity
	if err != nil || !again.Delivery.AlreadySent || again.Delivery.Status != activities.StatusUncertain {
		t.Fatalf("retry: %+v, %v", again.Delivery, err)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("the server received %d copies, want 1", n)
	}
	h := b.history(t)
	if len(h) != 1 || h[0].Status != "uncertain" || !strings.Contains(h[0].Error, "no reply") {
		t.Fatalf("ledger: %+v", h)
	}
	// Uncertain counts as sent: a second message for the customer now
	// waits out the minimum gap.
	next := sendInput("advisor-intro", "email")
	next.StepID, next.Send.Topic = "intro", "service"
	out, err := b.acts.Send(ctx, next)
	if err != nil || out.Verdict != policy.Defer || out.Reason != policy.ReasonMinGap {
		t.Fatalf("next message: %+v %v; want deferred by min_gap", out.DecideOutput, err)
	}
}

// TestAcceptanceOutlivesAPostgresRestart: Postgres drops every one of
// lojal's connections while the server holds the whole message (a
// restart, as in TestFaultPostgresRestart), and the server then answers
// 250. The server took the message, so the ledger must say sent: the
// attempt that heard the 250 is the only one that knows, and a retry
// could only find the hand-over record (uncertain).
//
// Fails before the final state was written again until Postgres answers:
// the first attempt returns the dropped connection's error, the retry
// finds the message uncertain, and the ledger says uncertain.
func TestAcceptanceOutlivesAPostgresRestart(t *testing.T) {
	t.Parallel()
	app := fmt.Sprintf("lojal-restart-%d", time.Now().UnixNano())
	b := setup(t, withStoreConfig(func(c *store.Config) { c.URL = withAppName(t, c.URL, app) }))
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	dropped := make(chan int64, 1)
	b.catcher.SetAfterData(func(_ mailcatch.Message, attempt int) mailcatch.Reply {
		if attempt != 1 {
			return mailcatch.Reply{}
		}
		// The hand-over record is on its way just before the "."; drop
		// the connections once it is in, as a restart would.
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if h, err := b.store.History(ctx, "c-1"); err == nil && len(h) == 1 && h[0].Status == activities.StatusUncertain {
				break
			}
		}
		dropped <- terminateBackends(t, app)
		return mailcatch.Reply{}
	})
	in := sendInput("loyalty-benefit", "email")
	out, err := b.acts.Send(ctx, in)
	for retries := 0; err != nil && retries < 3; retries++ {
		t.Logf("attempt failed, retried as Temporal would: %v", err)
		out, err = b.acts.Send(ctx, in)
	}
	if n := <-dropped; n == 0 {
		t.Fatal("no connection of the store's was dropped: the test proves nothing")
	}
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("delivery: %+v, %v; want status %s", out.Delivery, err, activities.StatusSent)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("the server received %d copies, want 1", n)
	}
	if h := b.history(t); len(h) != 1 || h[0].Status != activities.StatusSent {
		t.Fatalf("ledger: %+v; want one row, sent", h)
	}
}

// withAppName names the store's connections, so a test can find them in
// pg_stat_activity.
func withAppName(t *testing.T, dbURL, name string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || u.Scheme == "" {
		return dbURL + " application_name=" + name
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// terminateBackends ends every server process of the connections named
// app, as a Postgres restart ends them all, and returns how many it ended.
func terminateBackends(t *testing.T, app string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.Shared(t).URL)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}

// TestSlowAcceptanceIsUncertain: the server takes longer to answer the
// final "." than lojal waits. The message is on the server; lojal must not
// send it again.
func TestSlowAcceptanceIsUncertain(t *testing.T) {
	t.Parallel()
	b := setup(t, withEmailTimeout(time.Second))
	b.acts.Now = noon()
	b.customer(t, kari())
	b.catcher.SetAfterData(func(mailcatch.Message, int) mailcatch.Reply {
		return mailcatch.Reply{Action: mailcatch.QueueAndDelay, Delay: 3 * time.Second}
	})
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	first, err := b.acts.Send(ctx, in)
	if err != nil || first.Delivery.Status != activities.StatusUncertain {
		t.Fatalf("first attempt: %+v, %v", first.Delivery, err)
	}
	if _, err := b.acts.Send(ctx, in); err != nil {
		t.Fatal(err)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("the server received %d copies, want 1", n)
	}
}

// TestNewAskAfterDeliverySendsNothing: the Send activity timed out (its
// schedule-to-close passed) after the message went out, so the workflow
// asks again with a new ask number. The new ask is the same message: it
// finds the earlier decision and delivery instead of being allowed again.
func TestNewAskAfterDeliverySendsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	first, err := b.acts.Send(ctx, in)
	if err != nil || first.Delivery.Status != activities.StatusSent {
		t.Fatalf("first: %+v %v", first, err)
	}
	in.Ask = 7
	again, err := b.acts.Send(ctx, in)
	if err != nil || !again.Replayed || !again.Delivery.AlreadySent || again.Delivery.MessageID != first.Delivery.MessageID {
		t.Fatalf("new ask: %+v %v; want the first delivery", again, err)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("the server received %d messages, want 1", n)
	}
	if h := b.history(t); len(h) != 1 {
		t.Fatalf("ledger has %d rows for one message: %+v", len(h), h)
	}
}

// TestRefusalAtEndOfData: a 4xx answer to the final "." is retried; a 5xx
// fails the message with the server's text, and is not a bounce.
func TestRefusalAtEndOfData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	b.catcher.SetAfterData(func(_ mailcatch.Message, attempt int) mailcatch.Reply {
		if attempt == 1 {
			return mailcatch.Reply{Action: mailcatch.Refuse, Code: 451, Text: "Greylisted, try again"}
		}
		return mailcatch.Reply{}
	})
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	if _, err := b.acts.Send(ctx, in); err == nil {
		t.Fatal("a 451 at the end of data must be a retryable error")
	}
	if h := b.history(t); h[0].Status == "sent" || h[0].Status == "uncertain" {
		t.Fatalf("refused message recorded as %s", h[0].Status)
	}
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Delivery.Status != activities.StatusSent || b.catcher.Count() != 1 {
		t.Fatalf("retry: %+v %v, %d received", out.Delivery, err, b.catcher.Count())
	}

	c := kari()
	c.ID, c.Email = "c-2", "ola@example.no"
	b.customer(t, c)
	b.catcher.SetAfterData(func(mailcatch.Message, int) mailcatch.Reply {
		return mailcatch.Reply{Action: mailcatch.Refuse, Code: 554, Text: "Message rejected as spam"}
	})
	in2 := sendInput("loyalty-benefit", "email")
	in2.CustomerID, in2.WorkflowID = "c-2", "journey/loyalty-benefit/c-2"
	out, err = b.acts.Send(ctx, in2)
	if err != nil || out.Delivery.Status != activities.StatusFailed || !strings.Contains(out.Delivery.Error, "rejected as spam") {
		t.Fatalf("554: %+v %v", out.Delivery, err)
	}
	h, _ := b.store.History(ctx, "c-2")
	if len(h) != 1 || h[0].Status != "failed" || !strings.Contains(h[0].Error, "rejected as spam") {
		t.Fatalf("ledger: %+v", h)
	}
	rel, err := b.store.Customer(ctx, "c-2")
	if err != nil {
		t.Fatal(err)
	}
	// A content refusal says nothing about the address: the customer's
	// next message still goes out.
	b.catcher.SetAfterData(nil)
	in3 := sendInput("advisor-intro", "email")
	in3.CustomerID, in3.WorkflowID, in3.StepID, in3.Send.Topic = rel.ID, "journey/advisor-intro/c-2", "intro", "service"
	out, err = b.acts.Send(ctx, in3)
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("after a 554 the address must not be suppressed: %+v %v", out, err)
	}
}

// pushProvider is an HTTP push provider that records each request and
// answers from a script per device token.
type pushProvider struct {
	mu       sync.Mutex
	calls    map[string]int
	keys     map[string][]string
	failures map[string]int // answer 503 this many times first
	throttle map[string]int // answer 429 with Retry-After this many seconds, once
	// beforeTaking, when set, runs before a request is answered 202.
	beforeTaking func()
}

func newPushProvider(t *testing.T) (*pushProvider, *httptest.Server) {
	p := &pushProvider{calls: map[string]int{}, keys: map[string][]string{}, failures: map[string]int{}, throttle: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		to := ""
		for _, tok := range []string{"device-a", "device-b"} {
			if strings.Contains(string(b), `"to":"`+tok+`"`) {
				to = tok
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.keys[to] = append(p.keys[to], r.Header.Get("Idempotency-Key"))
		if secs, ok := p.throttle[to]; ok {
			delete(p.throttle, to)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if p.failures[to] > 0 {
			p.failures[to]--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if p.beforeTaking != nil {
			p.beforeTaking()
		}
		p.calls[to]++
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return p, srv
}

// TestPushAcceptanceOutlivesAPostgresRestart: the push service takes the
// request while Postgres drops every one of lojal's connections. Only the
// attempt that heard the 202 knows; the ledger must say sent, not
// uncertain, and the device gets the message once.
//
// Fails before the answer was written again until Postgres answers: the
// retry finds the request without its answer and calls it uncertain.
func TestPushAcceptanceOutlivesAPostgresRestart(t *testing.T) {
	t.Parallel()
	app := fmt.Sprintf("lojal-push-restart-%d", time.Now().UnixNano())
	b := setup(t, withStoreConfig(func(c *store.Config) { c.URL = withAppName(t, c.URL, app) }))
	prov, srv := newPushProvider(t)
	var dropped int64
	prov.beforeTaking = func() {
		if dropped == 0 {
			dropped = terminateBackends(t, app)
		}
	}
	b.acts.Sender = channel.Mux{"push": channel.NewPush(channel.PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))}
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	if _, err := b.store.AddPushSubscription(ctx, "c-1", store.PushSubscription{Kind: "http", Endpoint: "device-a"}); err != nil {
		t.Fatal(err)
	}
	in := sendInput("loyalty-benefit", "push")
	out, err := b.acts.Send(ctx, in)
	for retries := 0; err != nil && retries < 3; retries++ {
		t.Logf("attempt failed, retried as Temporal would: %v", err)
		out, err = b.acts.Send(ctx, in)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if dropped == 0 {
		t.Fatal("no connection of the store's was dropped: the test proves nothing")
	}
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("delivery: %+v, %v; want status %s", out.Delivery, err, activities.StatusSent)
	}
	if prov.calls["device-a"] != 1 {
		t.Fatalf("the device got %d copies, want 1", prov.calls["device-a"])
	}
	if h := b.history(t); len(h) != 1 || h[0].Status != activities.StatusSent {
		t.Fatalf("ledger: %+v; want one row, sent", h)
	}
}

// TestPushRetriesOnlyTheFailedSubscription: of two devices, one takes the
// message and one fails temporarily. The send is not a success for both:
// it is retried, and only the failed device is tried again, with the same
// Idempotency-Key it had the first time.
func TestPushRetriesOnlyTheFailedSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prov, srv := newPushProvider(t)
	prov.failures["device-b"] = 1
	b.acts.Sender = channel.Mux{"push": channel.NewPush(channel.PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))}
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	for _, tok := range []string{"device-a", "device-b"} {
		if _, err := b.store.AddPushSubscription(ctx, "c-1", store.PushSubscription{Kind: "http", Endpoint: tok}); err != nil {
			t.Fatal(err)
		}
	}
	in := sendInput("loyalty-benefit", "push")
	if _, err := b.acts.Send(ctx, in); err == nil {
		t.Fatal("a temporary failure on one device must make the send retry")
	}
	if h := b.history(t); h[0].Status == "sent" {
		t.Fatal("recorded as sent while a device still waits for it")
	}
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("retry: %+v %v", out.Delivery, err)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if prov.calls["device-a"] != 1 || prov.calls["device-b"] != 1 {
		t.Fatalf("deliveries per device %v, want one each", prov.calls)
	}
	ka, kb := prov.keys["device-a"], prov.keys["device-b"]
	if len(ka) != 1 || len(kb) != 2 || kb[0] != kb[1] || kb[0] == "" || ka[0] == kb[0] {
		t.Fatalf("Idempotency-Keys: device-a %v, device-b %v; want one stable key per message and device", ka, kb)
	}
}

// TestPushRetryAfterPerSubscription: a push service that answers one
// device 429 with Retry-After gets that device's request again no sooner
// than it asked, while the other device's delivery stands; the message is
// not a success until the throttled device took it too.
func TestPushRetryAfterPerSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prov, srv := newPushProvider(t)
	prov.throttle["device-b"] = 120
	b.acts.Sender = channel.Mux{"push": channel.NewPush(channel.PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))}
	var mu sync.Mutex
	clock := noon()()
	b.acts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	b.customer(t, kari())
	ctx := context.Background()
	for _, tok := range []string{"device-a", "device-b"} {
		if _, err := b.store.AddPushSubscription(ctx, "c-1", store.PushSubscription{Kind: "http", Endpoint: tok}); err != nil {
			t.Fatal(err)
		}
	}
	in := sendInput("loyalty-benefit", "push")
	for attempt := range 2 {
		_, err := b.acts.Send(ctx, in)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != activities.ErrTypePushRetry || ae.NextRetryDelay() != 120*time.Second {
			t.Fatalf("attempt %d: %v, want a push retry no sooner than the 120 s the service asked", attempt+1, err)
		}
		if h := b.history(t); h[0].Status == "sent" {
			t.Fatal("recorded as sent while a device still waits for it")
		}
	}
	prov.mu.Lock()
	if len(prov.keys["device-b"]) != 1 || prov.calls["device-a"] != 1 {
		t.Fatalf("before Retry-After passed: device-b asked %d times, device-a took %d; want once each", len(prov.keys["device-b"]), prov.calls["device-a"])
	}
	prov.mu.Unlock()
	mu.Lock()
	clock = clock.Add(121 * time.Second)
	mu.Unlock()
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("after Retry-After: %+v %v", out.Delivery, err)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if prov.calls["device-a"] != 1 || prov.calls["device-b"] != 1 {
		t.Fatalf("deliveries per device %v, want one each", prov.calls)
	}
}

// TestRelayThrottlingRetriesLater: a relay that says "421 slow down" gets
// the message again no sooner than throttleDelay, not on the regular
// retry schedule; nothing was handed over, so it goes out once when the
// relay takes it.
func TestRelayThrottlingRetriesLater(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	b.catcher.SetMode(mailcatch.TempFail)
	in := sendInput("loyalty-benefit", "email")
	_, err := b.acts.Send(ctx, in)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeThrottled || ae.NextRetryDelay() < 15*time.Second || ae.NonRetryable() {
		t.Fatalf("421 from the relay: %v, want a retry no sooner than 15 s", err)
	}
	if h := b.history(t); h[0].Status == "sent" || h[0].Status == "failed" {
		t.Fatalf("status %s after a throttled attempt", h[0].Status)
	}
	b.catcher.SetMode(mailcatch.Accept)
	// This process now paces its sends (channel's pace); the retry comes
	// 15 s later, when it may send again, or on another worker: here a
	// fresh sender stands in for that.
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + b.catcher.Addr, From: "lojal <hello@lojal.example>"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(email.Close)
	b.acts.Sender = channel.Mux{"email": email}
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Delivery.Status != activities.StatusSent || b.catcher.Count() != 1 {
		t.Fatalf("after the relay recovered: %+v %v, %d messages", out.Delivery, err, b.catcher.Count())
	}
}

// TestLedgerWritesCheckRows: a status change that finds no row in the
// state it expects is an error, never silent.
func TestLedgerWritesCheckRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	if err := b.store.Release(ctx, "no-such-key", "failed", "x"); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("release of a missing row: %v, want ErrLedgerConflict", err)
	}
	out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "email"))
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatal(out, err)
	}
	if err := b.store.Release(ctx, out.IdempotencyKey, "failed", "x"); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("release of a sent message: %v, want ErrLedgerConflict", err)
	}
}

// pauseAfterConfirm is a sender whose process stops (SIGSTOP, a VM
// freeze, a long GC pause) right after the attempt confirmed it still owns
// the message and before the final "." of DATA: pause runs there, once.
type pauseAfterConfirm struct {
	channel.Sender
	paused atomic.Bool
	pause  func()
}

func (p *pauseAfterConfirm) Send(ctx context.Context, env channel.Envelope) (channel.Receipt, error) {
	if confirm := env.Confirm; confirm != nil {
		env.Confirm = func() error {
			err := confirm()
			if err == nil && p.paused.CompareAndSwap(false, true) {
				p.pause()
			}
			return err
		}
	}
	return p.Sender.Send(ctx, env)
}

// TestPausedAttemptHandsNothingOver: an attempt stops between its
// ownership check and the final "." for longer than its timeout. Temporal
// gives it up and a retry takes the message and delivers it. When the
// stale attempt resumes, its attempt's time is over: it must not write the
// ".", or the customer gets the message twice (TestFaultLateTimeout saw
// 21 messages for 20).
func TestPausedAttemptHandsNothingOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	in := sendInput("loyalty-benefit", "email")
	paused, resume := make(chan struct{}), make(chan struct{})
	stale, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.acts.Sender = &pauseAfterConfirm{Sender: b.acts.Sender, pause: func() {
		close(paused)
		<-resume
		<-stale.Done() // the pause outlasts the attempt's timeout
	}}
	type result struct {
		out activities.SendOutput
		err error
	}
	first := make(chan result, 1)
	go func() {
		out, err := b.acts.Send(stale, in)
		first <- result{out, err}
	}()
	<-paused
	// Temporal timed the attempt out; the retry runs on a live worker.
	retry, err := b.acts.Send(context.Background(), in)
	if err != nil || retry.Delivery.Status != activities.StatusSent {
		t.Fatalf("retry: %+v %v, want sent", retry.Delivery, err)
	}
	close(resume)
	r := <-first
	if r.err == nil {
		t.Fatalf("the stale attempt returned %+v and no error, want it to give up", r.out.Delivery)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("the server received %d copies, want 1 (the stale attempt handed the message over again)", n)
	}
	if h := b.history(t); len(h) != 1 || h[0].Status != "sent" {
		t.Fatalf("ledger: %+v, want one message sent", h)
	}
}

// pushThrough has b push to Kari's device-a at the provider at url,
// through client, at noon.
func pushThrough(t *testing.T, b bundle, url string, client *http.Client) {
	t.Helper()
	b.acts.Sender = channel.Mux{"push": channel.NewPush(channel.PushConfig{ProviderURL: url, Client: client}, slog.New(slog.DiscardHandler))}
	b.acts.Now = noon()
	b.customer(t, kari())
	if _, err := b.store.AddPushSubscription(context.Background(), "c-1", store.PushSubscription{Kind: "http", Endpoint: "device-a"}); err != nil {
		t.Fatal(err)
	}
}

// TestPushIsRecordedWhenItLeaves: a push request is recorded `sending`
// once its connection is made, when only its body is left to write, not
// before. A worker killed while it connected (or encrypted) then leaves
// no record, and the next attempt sends to the device; recorded before,
// the next attempt found the record and called the message uncertain
// without the service ever having it. (DNS, TCP and TLS to a push service
// on the internet take a hundred milliseconds and more.)
//
// Fails on the code that recorded the request before making it: the
// record was there while the connection was being made.
func TestPushIsRecordedWhenItLeaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sending := func() int {
		var n int
		if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM push_deliveries WHERE status = 'sending'`).Scan(&n); err != nil {
			t.Error(err)
		}
		return n
	}
	prov, srv := newPushProvider(t)
	var atArrival int
	prov.beforeTaking = func() {
		// The record left just ahead of the body; Postgres may still be
		// storing it.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if atArrival = sending(); atArrival != 0 {
				return
			}
		}
	}
	var whileConnecting []int
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		whileConnecting = append(whileConnecting, sending())
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	pushThrough(t, b, srv.URL, client)
	out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "push"))
	if err != nil || out.Delivery.Status != activities.StatusSent {
		t.Fatalf("delivery: %+v, %v; want sent", out.Delivery, err)
	}
	if len(whileConnecting) == 0 || whileConnecting[0] != 0 {
		t.Errorf("requests recorded sending while the connection was being made: %v, want 0", whileConnecting)
	}
	if atArrival != 1 {
		t.Errorf("requests recorded sending while the provider held the request: %d, want 1", atArrival)
	}
}

// lockedPush is a bundle set up to push to device-a through a client
// that, on its dial-th dial (counting from 1), runs lock in a transaction
// of its own before it connects: a record written after that waits for
// the lock until the test ends the transaction.
type lockedPush struct {
	prov *pushProvider
	// arrived has a value once a request reached the provider.
	arrived <-chan struct{}
	// locked has the transaction holding the lock once it was taken.
	locked <-chan pgx.Tx
}

func pushWithLockOnDial(t *testing.T, b bundle, dial int32, lock string) lockedPush {
	t.Helper()
	ctx := context.Background()
	prov, srv := newPushProvider(t)
	arrived := make(chan struct{}, 1)
	prov.beforeTaking = func() {
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
	// The lock is taken on a connection of its own, and an idle one is
	// left for the record, both made now: a connection the pool made
	// under the lock would wait for it while preparing its statements.
	spare, err := b.store.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lockConn, err := b.store.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spare.Release()
	t.Cleanup(lockConn.Release)
	locked := make(chan pgx.Tx, 1)
	var dials atomic.Int32
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(dctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == dial {
			tx, err := lockConn.Begin(ctx)
			if err == nil {
				_, err = tx.Exec(ctx, lock)
			}
			if err != nil {
				return nil, err
			}
			locked <- tx
		}
		return (&net.Dialer{}).DialContext(dctx, network, addr)
	}}}
	pushThrough(t, b, srv.URL, client)
	return lockedPush{prov: prov, arrived: arrived, locked: locked}
}

// TestPushBodyLeavesBehindItsRecord: the record that a push request is
// leaving and the request's body go out back to back, the body not
// waiting for Postgres' answer to the record. A worker killed in between
// leaves the request recorded, and never sent to the device again, while
// the service never had it: waiting for the answer, that window was a
// Postgres round trip and the wake-up behind it (TestFaultPushCrash lost
// a message in it one run in three). Postgres is made slow to answer the
// record here (its table locked), and the provider must have the request
// while the answer is still out.
//
// Fails on the code that waited for the record's answer before writing
// the body: the provider got nothing while the table was locked.
func TestPushBodyLeavesBehindItsRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	lp := pushWithLockOnDial(t, b, 1, `LOCK TABLE push_deliveries IN EXCLUSIVE MODE`)
	prov, arrived, locked := lp.prov, lp.arrived, lp.locked
	type result struct {
		out activities.SendOutput
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := b.acts.Send(ctx, sendInput("loyalty-benefit", "push"))
		done <- result{out, err}
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Error("the provider got no request while Postgres had not answered the record: the body waited for it")
	}
	var lock pgx.Tx
	select {
	case lock = <-locked:
	default:
		t.Fatal("the push client never dialled: the test proves nothing")
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.out.Delivery.Status != activities.StatusSent {
		t.Fatalf("delivery: %+v, %v; want sent", r.out.Delivery, r.err)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if prov.calls["device-a"] != 1 {
		t.Fatalf("the device got %d copies, want 1", prov.calls["device-a"])
	}
	var status string
	if err := b.store.Pool().QueryRow(ctx, `SELECT status FROM push_deliveries`).Scan(&status); err != nil || status != "sent" {
		t.Fatalf("push_deliveries: %q, %v; want sent", status, err)
	}
}

// TestPausedPushAttemptSendsNothing: a push attempt stops while it
// connects, Temporal gives it up, and a retry delivers the message. When
// the stale attempt resumes, its request must not leave: the device would
// get the message twice. It checks, as an email's attempt does before the
// final ".", that it still owns the message before the record and the
// body go out together.
func TestPausedPushAttemptSendsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	prov, srv := newPushProvider(t)
	paused, resume := make(chan struct{}), make(chan struct{})
	var dials atomic.Int32
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(dctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			close(paused)
			<-resume
		}
		return (&net.Dialer{}).DialContext(dctx, network, addr)
	}}}
	pushThrough(t, b, srv.URL, client)
	in := sendInput("loyalty-benefit", "push")
	first := make(chan error, 1)
	go func() {
		_, err := b.acts.Send(ctx, in)
		first <- err
	}()
	<-paused
	retry, err := b.acts.Send(ctx, in)
	if err != nil || retry.Delivery.Status != activities.StatusSent {
		t.Fatalf("retry: %+v %v, want sent", retry.Delivery, err)
	}
	close(resume)
	if err := <-first; !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("the stale attempt ended with %v, want it to find another attempt owns the message", err)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if prov.calls["device-a"] != 1 || len(prov.keys["device-a"]) != 1 {
		t.Fatalf("the device got %d copies in %d requests, want 1 in 1", prov.calls["device-a"], len(prov.keys["device-a"]))
	}
	if h := b.history(t); len(h) != 1 || h[0].Status != activities.StatusSent {
		t.Fatalf("ledger: %+v; want one message sent", h)
	}
}

// retryFindsTheRecord runs the retry Temporal would after an attempt whose
// message left, and fails unless copies, the server's count, stays at 1
// and the retry ends sent or uncertain.
func retryFindsTheRecord(t *testing.T, b bundle, in activities.SendInput, copies func() int) {
	t.Helper()
	out, err := b.acts.Send(context.Background(), in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := copies(); n != 1 {
		t.Fatalf("the server received %d copies, want 1 (the retry found no record of the message that left)", n)
	}
	if s := out.Delivery.Status; s != activities.StatusSent && s != activities.StatusUncertain {
		t.Fatalf("delivery %+v, want sent or uncertain", out.Delivery)
	}
}

// TestPushRecordOutlivesTheAttemptsEnd: the record of a request and its
// body have left; Postgres is slow to store the record (its table
// locked), and the attempt's time runs out meanwhile. The record must
// still land: cancelled with the attempt, it was gone while the device
// had the message, and the next attempt sent it again.
//
// Fails on the code that wrote the record under the attempt's context:
// pgx cancelled the INSERT at the deadline, and the retry sent a second
// copy.
func TestPushRecordOutlivesTheAttemptsEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	lp := pushWithLockOnDial(t, b, 1, `LOCK TABLE push_deliveries IN EXCLUSIVE MODE`)
	prov, arrived, locked := lp.prov, lp.arrived, lp.locked
	in := sendInput("loyalty-benefit", "push")
	attempt, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := b.acts.Send(attempt, in)
		done <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the provider got no request")
	}
	// The attempt ends (its time runs out, or it is cancelled) while
	// its record waits.
	cancel()
	time.Sleep(200 * time.Millisecond) // the attempt's end has reached its work
	if err := (<-locked).Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Log("the attempt ended without an error")
	}
	retryFindsTheRecord(t, b, in, func() int {
		prov.mu.Lock()
		defer prov.mu.Unlock()
		return prov.calls["device-a"]
	})
}

// TestEmailRecordOutlivesTheAttemptsEnd: the final "." and the record
// that the server may have the message have left; Postgres is slow to
// store the record (the ledger locked) and the attempt's time runs out
// meanwhile. The record must still land: cancelled with the attempt, the
// message the server took stayed `sending`, and the retry sent it again.
//
// Fails on the code that wrote the record under the attempt's context:
// the server received two copies.
func TestEmailRecordOutlivesTheAttemptsEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.acts.Now = noon()
	b.customer(t, kari())
	lockConn, err := b.store.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Release()
	locked, lockErr := make(chan pgx.Tx, 1), make(chan error, 1)
	b.acts.Sender = &pauseAfterConfirm{Sender: b.acts.Sender, pause: func() {
		// Confirm holds the hand-over's connection; the record will
		// wait for the lock.
		tx, err := lockConn.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, `LOCK TABLE contact_ledger IN EXCLUSIVE MODE`)
		}
		if err != nil {
			lockErr <- err
			return
		}
		locked <- tx
	}}
	in := sendInput("loyalty-benefit", "email")
	attempt, cancel := context.WithCancel(ctx)
	defer cancel()
	// The attempt ends (its time runs out, or it is cancelled) once the
	// server has the message, while its record waits.
	b.catcher.SetAfterData(func(mailcatch.Message, int) mailcatch.Reply {
		cancel()
		return mailcatch.Reply{Action: mailcatch.Deliver}
	})
	done := make(chan error, 1)
	go func() {
		_, err := b.acts.Send(attempt, in)
		done <- err
	}()
	select {
	case <-attempt.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server never got the message")
	}
	time.Sleep(200 * time.Millisecond) // the attempt's end has reached its work
	b.catcher.SetAfterData(nil)
	if b.catcher.Count() != 1 {
		t.Fatalf("the server has %d messages before the retry, want the attempt's 1", b.catcher.Count())
	}
	var lock pgx.Tx
	select {
	case lock = <-locked:
	case err := <-lockErr:
		t.Fatalf("locking the ledger: %v", err)
	default:
		t.Fatal("the ledger was never locked: the test proves nothing")
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	retryFindsTheRecord(t, b, in, b.catcher.Count)
}

// TestRetryWaitsForARecordOnItsWay: an attempt's push request has left
// and its record is slow to commit (Postgres waits on a lock, a standby);
// Temporal, having given the attempt up, runs a retry. The retry must not
// read the device's state from before the record and send to it again:
// it waits for the record's transaction, which holds the message's ledger
// row, and then finds the request under way.
//
// Fails on the code whose record held no ledger row: the retry saw the
// device's earlier `retry` state and the device got two copies.
func TestRetryWaitsForARecordOnItsWay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// The second attempt's dial holds the device's row, so its record
	// will wait.
	lp := pushWithLockOnDial(t, b, 2, `SELECT 1 FROM push_deliveries FOR UPDATE`)
	prov, arrived, locked := lp.prov, lp.arrived, lp.locked
	prov.mu.Lock()
	prov.failures["device-a"] = 1 // the first attempt leaves the device to retry
	prov.mu.Unlock()
	in := sendInput("loyalty-benefit", "push")
	if _, err := b.acts.Send(ctx, in); err == nil {
		t.Fatal("the first attempt met a 503 and must be retried")
	}
	second := make(chan error, 1)
	go func() {
		_, err := b.acts.Send(ctx, in)
		second <- err
	}()
	var lock pgx.Tx
	select {
	case <-arrived:
		lock = <-locked
	case <-time.After(10 * time.Second):
		t.Fatal("the second attempt's request never reached the provider")
	}
	// The record waits for the device's row (its transaction holds the
	// ledger's by now, or never will).
	var holder int32
	if err := lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	for waiting, deadline := 0, time.Now().Add(5*time.Second); waiting == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second attempt's record never waited for the lock: the test proves nothing")
		}
		if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`, holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	// Temporal gave the second attempt up; the third runs.
	third := make(chan error, 1)
	go func() {
		_, err := b.acts.Send(ctx, in)
		third <- err
	}()
	time.Sleep(time.Second)
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan error{second, third} {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatal("an attempt never ended")
		}
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if prov.calls["device-a"] != 1 {
		t.Fatalf("the device got %d copies, want 1 (the retry sent while the record was on its way)", prov.calls["device-a"])
	}
}
