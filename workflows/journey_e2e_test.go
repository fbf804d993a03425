package workflows_test

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// Workflow ids are global in the Temporal namespace and tests run in
// parallel, so each test has a customer id of its own.
func kari(t *testing.T) journey.Customer {
	return journey.Customer{ID: "c-" + strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "plan": "home"}}
}

func orderPlaced(c journey.Customer, id, order string) journey.Event {
	return journey.Event{ID: id, Type: "order.placed", CustomerID: c.ID, At: time.Now().UTC(),
		Data: map[string]any{"order_id": order, "total": 420.0}}
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestJourneyEndToEnd runs a journey through the real Temporal dev server,
// Postgres and SMTP catcher, and checks what the customer receives and
// what the ledger says.
func TestJourneyEndToEnd(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	res, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-1", "o-77"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Journeys) != 1 || res.Journeys[0].Action != "started" || res.Journeys[0].WorkflowID != "journey/order-thanks/"+c.ID+"/o-77" {
		t.Fatalf("dispatch = %+v", res)
	}
	msgs, err := s.Catcher.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "kari@example.no" {
		t.Errorf("recipient = %v", m.To)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if subject != "Takk for bestilling o-77, Kari" {
		t.Errorf("subject = %q (want the nb template)", subject)
	}
	text, html := parts(t, m)
	if !strings.Contains(text, "Hei Kari,") || !strings.Contains(text, "bestillingen din o-77") {
		t.Errorf("text part = %q", text)
	}
	if !strings.Contains(html, "<p>Hei Kari,</p>") {
		t.Errorf("html part = %q", html)
	}
	if !strings.HasPrefix(m.Header.Get("List-Unsubscribe"), "<http://lojal.test/u/") ||
		m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Errorf("unsubscribe headers: %q / %q", m.Header.Get("List-Unsubscribe"), m.Header.Get("List-Unsubscribe-Post"))
	}

	// The ledger row is written, marked sent, and carries the Message-ID.
	var hist []store.LedgerEntry
	waitUntil(t, ctx, func() bool {
		hist, err = s.Store.History(ctx, c.ID)
		return err == nil && len(hist) == 1 && hist[0].Status == "sent"
	})
	e := hist[0]
	if e.JourneyID != "order-thanks" || e.StepID != "thank" || e.Channel != "email" || e.Decision != "allow" ||
		e.Reason != "ok" || e.Purpose != "order:o-77" || e.Address != "kari@example.no" || e.Locale != "nb" || e.SentAt == nil {
		t.Errorf("ledger row = %+v", e)
	}
	if got := m.MessageID(); got == "" || !strings.HasSuffix(got, "@lojal.test") {
		t.Errorf("Message-ID = %q", got)
	}
}

// TestEventRedeliveryStartsOnce delivers the same event three times.
func TestEventRedeliveryStartsOnce(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	ev := orderPlaced(c, "e-dup", "o-1")
	for i := range 3 {
		res, err := s.Dispatcher.Event(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !res.Duplicate {
			t.Errorf("delivery %d not recognised as duplicate: %+v", i+1, res)
		}
	}
	if _, err := s.Catcher.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // room for a second message, which must not come
	if n := s.Catcher.Count(); n != 1 {
		t.Fatalf("received %d messages, want 1", n)
	}
}

// TestBadInputStartsNothing: a malformed event or an unknown customer is a
// clear error, and no workflow starts.
func TestBadInputStartsNothing(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	unknown := orderPlaced(c, "e-2", "o-2")
	unknown.CustomerID = "c-404"
	if _, err := s.Dispatcher.Event(ctx, unknown); !errors.Is(err, ingest.ErrUnknownCustomer) {
		t.Errorf("unknown customer: %v", err)
	}
	bad := []journey.Event{
		{ID: "e-3", Type: "order.teleported", CustomerID: c.ID, At: time.Now()},
		{ID: "e-4", Type: "order.placed", CustomerID: c.ID, At: time.Now(), Data: map[string]any{"order_id": 7.0}},
		{ID: "e-5", Type: "order.placed", CustomerID: c.ID, At: time.Now(), Data: map[string]any{"order_id": "o", "colour": "red"}},
		{ID: "", Type: "order.placed", CustomerID: c.ID, At: time.Now()},
		{ID: "e-6", Type: "order.placed", CustomerID: c.ID},
	}
	for _, e := range bad {
		if _, err := s.Dispatcher.Event(ctx, e); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("event %+v: %v, want ErrInvalid", e, err)
		}
	}
	for _, id := range []string{"journey/order-thanks/c-404/o-2", "journey/order-thanks/" + c.ID + "/o", "journey/order-thanks/" + c.ID} {
		_, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("workflow %s exists (%v)", id, err)
		}
	}
	if hist, _ := s.Store.History(ctx, c.ID); len(hist) != 0 {
		t.Errorf("ledger has %d rows", len(hist))
	}
}

// TestSendRetriedAndNotDuplicated: the SMTP server refuses for a while;
// Temporal retries the send and the customer gets exactly one message.
func TestSendRetriedAndNotDuplicated(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	s.Catcher.SetMode(mailcatch.TempFail)
	if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-retry", "o-9")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if n := s.Catcher.Count(); n != 0 {
		t.Fatalf("delivered %d while the server refused", n)
	}
	s.Catcher.SetMode(mailcatch.Accept)
	if _, err := s.Catcher.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool {
		hist, _ := s.Store.History(ctx, c.ID)
		return len(hist) == 1 && hist[0].Status == "sent"
	})
	time.Sleep(time.Second)
	if n := s.Catcher.Count(); n != 1 {
		t.Fatalf("received %d messages, want exactly 1", n)
	}
}

// TestHardBounceSuppresses: a recipient refused with 550 is a hard bounce:
// the reservation is released, the address suppressed, and the run goes on.
func TestHardBounceSuppresses(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys",
		RejectRecipient: func(addr string) bool { return addr == "kari@example.no" }})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-b1", "o-1")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool {
		hist, _ := s.Store.History(ctx, c.ID)
		return len(hist) == 1 && hist[0].Status == "failed"
	})
	// The next message is suppressed before it is sent.
	if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-b2", "o-2")); err != nil {
		t.Fatal(err)
	}
	var hist []store.LedgerEntry
	waitUntil(t, ctx, func() bool {
		hist, _ = s.Store.History(ctx, c.ID)
		return len(hist) == 2 && hist[1].Decision == "suppress" && hist[1].Reason == "hard_bounce"
	}, &hist)
}

// TestGoalEndsRun: a goal event ends the run wherever it is.
func TestGoalEndsRun(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-g1", "o-5")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Catcher.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	goal := journey.Event{ID: "e-g2", Type: "review.written", CustomerID: c.ID, At: time.Now(), Data: map[string]any{"order_id": "o-5"}}
	res, err := s.Dispatcher.Event(ctx, goal)
	if err != nil || len(res.Journeys) != 1 || res.Journeys[0].Action != "signalled" {
		t.Fatalf("goal dispatch: %+v %v", res, err)
	}
	var out workflows.JourneyResult
	if err := s.Client.GetWorkflow(ctx, "journey/order-thanks/"+c.ID+"/o-5", "").Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out.Outcome != journey.OutcomeGoal || out.Step != "wait-for-shipping" || out.Sent != 1 {
		t.Fatalf("result = %+v", out)
	}
}

func waitUntil(t *testing.T, ctx context.Context, cond func() bool, state ...any) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met before the deadline; state: %+v", state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// parts returns the decoded text and HTML parts of a multipart message.
func parts(t *testing.T, m mailcatch.Message) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
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
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			text = string(b)
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/html"):
			html = string(b)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
