package dialogue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const domain = "lojal.test"

type fixture struct {
	st    *store.Store
	cat   *catalog.Catalog
	verp  *bounce.VERP
	addr  string
	msgID string
	now   time.Time
	// later moves the intake's clock on from now.
	later *atomic.Int64
	// starts are the conversation workflows the intake started.
	starts *starter
}

// starter records the conversation workflows started, and fails the
// first fail calls as an unreachable Temporal does.
type starter struct {
	mu     sync.Mutex
	fail   int
	inputs []dialogue.ConversationInput
}

func (s *starter) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return nil, serviceerror.NewUnavailable("temporal is away")
	}
	s.inputs = append(s.inputs, args[0].(dialogue.ConversationInput))
	return nil, nil
}

func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	st := pgtest.Store(t)
	cat, err := catalog.Load(os.DirFS("../../journeys"), ".")
	if err != nil {
		t.Fatal(err)
	}
	verp, err := bounce.NewVERP([]byte("test-verp-key-0123456789"), "bounces@mail.lojal.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	// The ledger has months from the migration's on; these decisions are
	// older.
	if _, err := st.EnsurePartitions(ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertCustomer(ctx, journey.Customer{ID: "kari", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}, "test"); err != nil {
		t.Fatal(err)
	}
	// The check-in question went out to Kari.
	key := "journey/checkin/kari@run/ask#0.0"
	d, err := st.Decide(ctx, store.Request{IdempotencyKey: key, RequestKey: "journey/checkin/kari@run/ask#0", CustomerID: "kari",
		WorkflowID: "journey/checkin/kari", JourneyID: "checkin", StepID: "ask", Template: "checkin", Channel: "email", Topic: "feedback",
		Priority: policy.Low, FirstAsked: now.Add(-time.Hour), Now: now.Add(-time.Hour), ReservationTTL: time.Hour}, time.Hour,
		func(store.Snapshot) policy.Decision {
			return policy.Decision{Verdict: policy.Allow, Reason: policy.ReasonOK, Channel: "email"}
		})
	if err != nil || d.Verdict != policy.Allow {
		t.Fatal(d, err)
	}
	msgID := "0123456789abcdef0123456789abcdef@" + domain
	attempt, err := st.BeginSend(ctx, key, store.Sending{MessageID: msgID, Address: "kari@example.no", Locale: "nb", Subject: "Hva ville du savnet?"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkSent(ctx, key, attempt, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	d2 := &ingest.Dispatcher{Store: st, Catalog: cat, Log: slog.New(slog.DiscardHandler)}
	later, starts := &atomic.Int64{}, &starter{}
	replies := &dialogue.Intake{Store: st, VERP: verp, Catalog: cat, MessageDomain: domain, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now.Add(time.Duration(later.Load())) }, Temporal: starts,
		Ingest: func(ctx context.Context, e journey.Event) error {
			res, err := d2.Accept(ctx, []journey.Event{e})
			if err == nil && res[0].Status != ingest.StatusAccepted && res[0].Status != ingest.StatusDuplicate {
				err = fmt.Errorf("event %s: %s: %s", e.ID, res[0].Status, res[0].Error)
			}
			return err
		}}
	in := &bounce.Intake{Store: st, VERP: verp, Log: slog.New(slog.DiscardHandler), MessageDomain: domain, Replies: replies}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go in.ServeSMTP(l, bounce.SMTPOptions{}) //nolint:errcheck // ends when l closes
	t.Cleanup(func() { l.Close() })
	return fixture{st: st, cat: cat, verp: verp, addr: l.Addr().String(), msgID: msgID, now: now, later: later, starts: starts}
}

// send delivers one message over SMTP and returns the server's refusal,
// if any.
func (f fixture) send(t *testing.T, from, to, raw string) error {
	t.Helper()
	c, err := smtp.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, strings.ReplaceAll(raw, "\n", "\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func reply(from, body string, extra ...string) string {
	return "From: " + from + "\nTo: x\nSubject: Re: Hva ville du savnet?\nMessage-ID: <" + fmt.Sprintf("%d-%d", len(body), len(extra)) + "." + from + ">\n" +
		strings.Join(extra, "") + "Content-Type: text/plain; charset=utf-8\n\n" + body
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func (f fixture) decideMarketing(t *testing.T, at time.Time, topic string) policy.Decision {
	t.Helper()
	rules := *f.cat.Rules
	req := policy.Request{Key: "offer-" + topic + at.String(), Channel: "email", Topic: topic, Priority: policy.Normal, FirstAsked: at}
	d, err := f.st.Decide(context.Background(), store.Request{IdempotencyKey: req.Key + ".0", RequestKey: req.Key, CustomerID: "kari",
		WorkflowID: "w", JourneyID: "loyalty-benefit", StepID: "s", Template: "t", Channel: "email", Topic: topic, Priority: policy.Normal,
		FirstAsked: at, Now: at, ReservationTTL: time.Minute}, rules.Lookback(), func(s store.Snapshot) policy.Decision {
		return policy.Decide(rules, s.Relationship, nil, nil, req, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	return d.Decision
}

func TestReplyBecomesEventAndPausesMarketing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rt := f.verp.ReplyAddress(f.msgID)
	body := "Raskere svar på skader, takk.\n\nDen man. 9. mar. 2026 kl. 12:00 skrev lojal <hei@lojal.test>:\n> Hei Kari\n"
	if err := f.send(t, "kari@example.no", rt, reply("Kari <kari@example.no>", body)); err != nil {
		t.Fatal(err)
	}
	// Redelivered by the sending server: recorded once.
	if err := f.send(t, "kari@example.no", rt, reply("Kari <kari@example.no>", body)); err != nil {
		t.Fatal(err)
	}
	dlg, err := f.st.Dialogue(ctx, "kari")
	if err != nil {
		t.Fatal(err)
	}
	if len(dlg.Replies) != 1 || len(dlg.Conversations) != 1 {
		t.Fatalf("replies %+v conversations %+v", dlg.Replies, dlg.Conversations)
	}
	r := dlg.Replies[0]
	if r.Body != "Raskere svar på skader, takk." || !r.FromCustomer || r.JourneyID != "checkin" || r.StepID != "ask" || r.ConversationID == "" {
		t.Fatalf("reply %+v", r)
	}
	ev, err := f.st.Event(ctx, r.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event.Type != dialogue.RepliedEvent || ev.Event.Data["text"] != r.Body || ev.Event.Data["journey"] != "checkin" ||
		ev.Event.Data["message_id"] != f.msgID || ev.Event.Data["conversation_id"] != r.ConversationID {
		t.Fatalf("event %+v", ev.Event)
	}
	// Marketing waits; service goes out.
	if d := f.decideMarketing(t, f.now, "loyalty"); d.Verdict != policy.Defer || d.Reason != policy.ReasonConversationOpen ||
		!strings.Contains(d.Detail.String(), "has no answer yet") {
		t.Fatalf("marketing during an open conversation: %s %s", d, d.Detail)
	}
	if d := f.decideMarketing(t, f.now, "service"); d.Verdict != policy.Allow {
		t.Fatalf("service during an open conversation: %s", d)
	}
	// Answered: marketing waits out the pause after the answer, then goes.
	if ok, err := f.st.AnswerConversation(ctx, r.ConversationID, "ola", f.now.Add(time.Hour)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ok, err := f.st.AnswerConversation(ctx, r.ConversationID, "ola", f.now.Add(2*time.Hour)); err != nil || ok {
		t.Fatalf("answered twice: %v %v", ok, err)
	}
	if d := f.decideMarketing(t, f.now.Add(2*time.Hour), "loyalty"); d.Verdict != policy.Defer || d.Reason != policy.ReasonConversationOpen ||
		!d.Until.Equal(f.now.Add(49*time.Hour)) {
		t.Fatalf("marketing in the pause after the answer: %s", d)
	}
	if d := f.decideMarketing(t, f.now.Add(50*time.Hour), "loyalty"); d.Reason == policy.ReasonConversationOpen {
		t.Fatalf("marketing after the pause: %s", d)
	}
}

// TestAReplyRedeliveredLaterIsTaken: the sending server delivers a reply
// again when lojal answered 451 (Temporal away, after the reply and its
// event were stored) or its 250 was lost. The event was built anew with
// the time of the new delivery, under the same id: the insert refused it
// as a different event, and every delivery after was answered 451 until
// the sending server gave up and bounced the customer's reply. And the
// conversation's response-time target was dropped on the redelivery.
func TestAReplyRedeliveredLaterIsTaken(t *testing.T) {
	f := setup(t)
	rt := f.verp.ReplyAddress(f.msgID)
	msg := reply("Kari <kari@example.no>", "Ring meg, takk.")
	f.starts.fail = 1
	if err := f.send(t, "kari@example.no", rt, msg); code(err) != 451 {
		t.Fatalf("with Temporal away: %v, want 451", err)
	}
	f.later.Store(int64(7 * time.Minute))
	if err := f.send(t, "kari@example.no", rt, msg); err != nil {
		t.Fatalf("redelivered seven minutes later: %v, want taken", err)
	}
	dlg, err := f.st.Dialogue(context.Background(), "kari")
	if err != nil || len(dlg.Replies) != 1 || len(dlg.Conversations) != 1 {
		t.Fatalf("replies %+v conversations %+v (%v)", dlg.Replies, dlg.Conversations, err)
	}
	f.starts.mu.Lock()
	defer f.starts.mu.Unlock()
	if len(f.starts.inputs) != 1 || f.starts.inputs[0].Target <= 0 {
		t.Fatalf("conversation workflows started %+v; want one, with the topic's response-time target", f.starts.inputs)
	}
}

func TestRepliesThatMustNotCount(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rt := f.verp.ReplyAddress(f.msgID)
	forged := strings.Replace(rt, "reply+a", "reply+b", 1)
	if forged == rt {
		forged = strings.Replace(rt, "reply+", "reply+a", 1)[:len(rt)]
	}
	cases := []struct {
		name        string
		from, to    string
		raw         string
		wantCode    int
		wantReplies int
		wantConvs   int
	}{
		{name: "auto-submitted", from: "kari@example.no", to: rt, raw: reply("kari@example.no", "Away", "Auto-Submitted: auto-replied\n")},
		{name: "out of office", from: "kari@example.no", to: rt, raw: strings.Replace(reply("kari@example.no", "Away"), "Subject: Re:", "Subject: Fraværende: Re:", 1)},
		{name: "null sender", from: "", to: rt, raw: reply("kari@example.no", "Away")},
		{name: "forged token", from: "kari@example.no", to: forged, raw: reply("kari@example.no", "hi")},
		{name: "unknown message", from: "kari@example.no", to: f.verp.ReplyAddress("ffffffffffffffffffffffffffffffff@" + domain), raw: reply("kari@example.no", "hi")},
		{name: "malformed", from: "kari@example.no", to: rt, raw: "From: nobody\nSubject: x\n\nbody", wantCode: 550},
		{name: "oversized", from: "kari@example.no", to: rt, raw: reply("kari@example.no", strings.Repeat(strings.Repeat("x", 76)+"\n", bounce.MaxReplySize/76)), wantCode: 552},
		{name: "another address", from: "ola@example.no", to: rt, raw: reply("ola@example.no", "Kari asked me to write"), wantReplies: 1},
	}
	for _, c := range cases {
		err := f.send(t, c.from, c.to, c.raw)
		if code(err) != c.wantCode {
			t.Errorf("%s: %v, want code %d", c.name, err, c.wantCode)
		}
		dlg, derr := f.st.Dialogue(ctx, "kari")
		if derr != nil {
			t.Fatal(derr)
		}
		if len(dlg.Replies) != c.wantReplies || len(dlg.Conversations) != c.wantConvs {
			t.Errorf("%s: %d replies, %d conversations; want %d, %d", c.name, len(dlg.Replies), len(dlg.Conversations), c.wantReplies, c.wantConvs)
		}
	}
	dlg, _ := f.st.Dialogue(ctx, "kari")
	if r := dlg.Replies[0]; r.FromCustomer || r.ConversationID != "" || r.EventID != "" {
		t.Fatalf("a reply from another address opened something: %+v", r)
	}
	if d := f.decideMarketing(t, f.now, "loyalty"); d.Reason == policy.ReasonConversationOpen {
		t.Fatalf("a reply from another address paused marketing: %s", d)
	}
	// A declared SIZE over the limit is refused at RCPT, before any data.
	c, err := smtp.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("x"); err != nil {
		t.Fatal(err)
	}
	id, err := c.Text.Cmd("MAIL FROM:<kari@example.no> SIZE=%d", bounce.MaxReplySize+1)
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(250)
	c.Text.EndResponse(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rt); code(err) != 552 || !strings.Contains(err.Error(), "KiB") {
		t.Fatalf("RCPT with SIZE over the limit: %v", err)
	}
}
