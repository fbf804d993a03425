package workflows_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// conversationHistories are recorded by TestConversationEndToEnd (with
// -update-histories) and replayed by TestReplayHistories.
var conversationHistories = []string{"conversation-escalated", "conversation-answered-in-time", "conversation-escalated-while-forwarding"}

// hookLog is a loopback webhook receiver standing in for a helpdesk.
type hookLog struct {
	mu   sync.Mutex
	got  []hookCall
	srv  *httptest.Server
	seen map[string]bool
	// down makes the helper's reply webhook (not the escalation's)
	// answer 503.
	down bool
}

type hookCall struct {
	Path, Key, Type, Conversation string
}

func newHookLog(t *testing.T) *hookLog {
	h := &hookLog{seen: map[string]bool{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Type         string `json:"type"`
			Conversation string `json:"conversation_id"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.down && strings.HasPrefix(r.URL.Path, "/hooks/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if !h.seen[key] { // a helpdesk drops what it has seen
			h.seen[key] = true
			h.got = append(h.got, hookCall{Path: r.URL.Path, Key: key, Type: body.Type, Conversation: body.Conversation})
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookLog) calls(conversation string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.got {
		if c.Conversation == conversation {
			out = append(out, c)
		}
	}
	return out
}

// conversationEnv is lojal taking replies on a loopback SMTP intake, with
// a helper reached by email (the stack's SMTP catcher) and webhook, and a
// response-time target of 4 s for replies to feedback.
type conversationEnv struct {
	s     *stacktest.Stack
	hooks *hookLog
	verp  *bounce.VERP
	smtp  string
}

const target = 4 * time.Second

func newConversationEnv(t *testing.T) *conversationEnv {
	t.Helper()
	hooks := newHookLog(t)
	dir := filepath.Join(t.TempDir(), "journeys")
	if err := os.CopyFS(dir, os.DirFS("../journeys")); err != nil {
		t.Fatal(err)
	}
	pol, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(pol), "    feedback: 1h\n", fmt.Sprintf("    feedback: %s\n", target), 1)
	src = strings.Replace(src, "      escalate: { email: teamleder@lojal.example }\n",
		fmt.Sprintf("      webhook: %s/hooks/T0KEN\n      escalate: { email: teamleder@lojal.example, webhook: %s/escalate/T0KEN }\n", hooks.srv.URL, hooks.srv.URL), 1)
	if src == string(pol) || !strings.Contains(src, "escalate/T0KEN") || !strings.Contains(src, "feedback: "+target.String()) {
		t.Fatal("policy.yaml is not what this test edits")
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s := stacktest.New(t, stacktest.Options{Journeys: dir, NoWorker: true})
	verp, err := bounce.NewVERP([]byte("test-verp-key-0123456789"), "bounces@lojal.test")
	if err != nil {
		t.Fatal(err)
	}
	w := workflows.NewWorkers(s.Client, s.TaskQueue, &activities.Activities{Store: s.Store, Catalog: s.Catalog,
		Sender: channel.Mux{"email": s.Email}, Links: s.Links, Log: s.Log, MessageDomain: s.Email.Domain(), VERP: verp,
		Webhooks: channel.NewWebhook(&channel.Egress{AllowLoopback: true}, 5*time.Second)},
		workflows.WorkerOptions{Worker: worker.Options{WorkerStopTimeout: 5 * time.Second}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	replies := &dialogue.Intake{Store: s.Store, VERP: verp, Catalog: s.Catalog, Temporal: s.Client, TaskQueue: s.TaskQueue,
		MessageDomain: s.Email.Domain(), Log: s.Log,
		Ingest: func(ctx context.Context, e journey.Event) error {
			_, err := s.Dispatcher.Event(ctx, e)
			return err
		}}
	in := &bounce.Intake{Store: s.Store, VERP: verp, Log: s.Log, MessageDomain: s.Email.Domain(), Replies: replies}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go in.ServeSMTP(l, bounce.SMTPOptions{}) //nolint:errcheck // ends when l closes
	t.Cleanup(func() { l.Close() })
	return &conversationEnv{s: s, hooks: hooks, verp: verp, smtp: l.Addr().String()}
}

// asked records that the check-in question went out to a customer, and
// returns its Message-ID.
func (e *conversationEnv) asked(t *testing.T, ctx context.Context, id, email string) string {
	t.Helper()
	c := journey.Customer{ID: id, Email: email, Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true},
		Attributes: map[string]any{"first_name": "Kari"}}
	if _, err := e.s.Store.UpsertCustomer(ctx, c, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	key := "journey/checkin/" + id + "@run/ask#0.0"
	d, err := e.s.Store.Decide(ctx, store.Request{IdempotencyKey: key, RequestKey: "journey/checkin/" + id + "@run/ask#0", CustomerID: id,
		WorkflowID: "journey/checkin/" + id, JourneyID: "checkin", StepID: "ask", Template: "checkin", Channel: "email", Topic: "feedback",
		Priority: policy.Low, FirstAsked: now, Now: now, ReservationTTL: time.Hour}, time.Hour,
		func(store.Snapshot) policy.Decision {
			return policy.Decision{Verdict: policy.Allow, Reason: policy.ReasonOK, Channel: "email"}
		})
	if err != nil || d.Verdict != policy.Allow {
		t.Fatal(d, err)
	}
	msgID := activities.MessageID(key, e.s.Email.Domain())
	attempt, err := e.s.Store.BeginSend(ctx, key, store.Sending{MessageID: msgID, Address: email, Locale: "nb", Subject: "Hva ville du savnet?"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Store.MarkSent(ctx, key, attempt, now); err != nil {
		t.Fatal(err)
	}
	return msgID
}

// reply sends the customer's reply to the message's reply address over
// SMTP and returns the conversation it opened.
func (e *conversationEnv) reply(t *testing.T, ctx context.Context, customer, from, msgID, text string) store.Conversation {
	t.Helper()
	to := e.verp.ReplyAddress(msgID)
	raw := fmt.Sprintf("From: Kari <%s>\r\nTo: %s\r\nSubject: Re: Hva ville du savnet?\r\nMessage-ID: <%s-reply@example.no>\r\n"+
		"In-Reply-To: <%s>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\nDen tir. 10. mars skrev lojal:\r\n> Hva ville du savnet?\r\n",
		from, to, customer, msgID, text)
	if err := smtp.SendMail(e.smtp, nil, from, []string{to}, []byte(raw)); err != nil {
		t.Fatalf("reply refused: %v", err)
	}
	d, err := e.s.Store.Dialogue(ctx, customer)
	if err != nil || len(d.Conversations) != 1 || len(d.Replies) != 1 || d.Replies[0].Body != text {
		t.Fatalf("after the reply: %+v %v", d, err)
	}
	return d.Conversations[0]
}

func (e *conversationEnv) waitHooks(t *testing.T, conversation string, n int, within time.Duration) []hookCall {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := e.hooks.calls(conversation)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailsTo counts the messages to addr about the customer with the
// address customer.
func (e *conversationEnv) mailsTo(addr, customer string) int {
	n := 0
	for _, m := range e.s.Catcher.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) && strings.Contains(string(m.Data), customer) {
				n++
			}
		}
	}
	return n
}

// TestConversationEndToEnd runs the Conversation workflow on the Temporal
// dev server: a reply over SMTP is forwarded to the helper by email (the
// loopback SMTP catcher) and webhook (a loopback receiver); unanswered
// past its 4 s target it is escalated to the escalation address and
// webhook, once; answered in time it is not.
func TestConversationEndToEnd(t *testing.T) {
	t.Parallel()
	e := newConversationEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Unanswered: forwarded, then escalated when the target passes.
	msg := e.asked(t, ctx, "c-conv-1", "kari@example.no")
	start := time.Now()
	conv := e.reply(t, ctx, "c-conv-1", "kari@example.no", msg, "Kan noen ringe meg?")
	if conv.Helper != "customer-service" || conv.Topic != "feedback" {
		t.Fatalf("conversation %+v", conv)
	}
	got := e.waitHooks(t, conv.ID, 1, 20*time.Second)
	if len(got) < 1 || got[0].Type != "message.replied" || got[0].Path != "/hooks/T0KEN" {
		t.Fatalf("webhook got %+v, want the reply forwarded", got)
	}
	if time.Since(start) > target {
		t.Fatalf("forwarding took %s, longer than the target", time.Since(start))
	}
	got = e.waitHooks(t, conv.ID, 2, target+20*time.Second)
	if len(got) != 2 || got[1].Type != "conversation.escalated" || got[1].Path != "/escalate/T0KEN" || got[1].Key != "escalate/"+conv.ID {
		t.Fatalf("webhook got %+v, want the escalation", got)
	}
	if el := time.Since(start); el < target {
		t.Fatalf("escalated after %s, before the %s target", el, target)
	}
	id := dialogue.ConversationWorkflowID(firstReply(t, ctx, e, "c-conv-1"))
	if err := e.s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if n := e.mailsTo("kundeservice@lojal.example", "kari@example.no"); n != 1 {
		t.Errorf("%d forwarded emails to the helper, want 1", n)
	}
	if n := e.mailsTo("teamleder@lojal.example", "kari@example.no"); n != 1 {
		t.Errorf("%d escalation emails, want 1", n)
	}
	if c, err := e.s.Store.Conversation(ctx, conv.ID); err != nil || c.EscalatedAt == nil || c.AnsweredAt != nil {
		t.Fatalf("conversation after escalation: %+v %v", c, err)
	}
	saveHistory(t, ctx, e.s, "conversation-escalated", id)

	// Answered in time: forwarded, never escalated.
	msg = e.asked(t, ctx, "c-conv-2", "ola@example.no")
	conv = e.reply(t, ctx, "c-conv-2", "ola@example.no", msg, "Alt vel, takk")
	if got := e.waitHooks(t, conv.ID, 1, 20*time.Second); len(got) != 1 {
		t.Fatalf("webhook got %+v, want the reply forwarded", got)
	}
	if ok, err := e.s.Store.AnswerConversation(ctx, conv.ID, "Ingrid", time.Now()); err != nil || !ok {
		t.Fatalf("answer: %v %v", ok, err)
	}
	id = dialogue.ConversationWorkflowID(firstReply(t, ctx, e, "c-conv-2"))
	if err := e.s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if got := e.hooks.calls(conv.ID); len(got) != 1 {
		t.Errorf("webhook got %+v after the answer, want the forward only", got)
	}
	if n := e.mailsTo("teamleder@lojal.example", "ola@example.no"); n != 0 {
		t.Errorf("%d escalation emails for an answered conversation", n)
	}
	if c, err := e.s.Store.Conversation(ctx, conv.ID); err != nil || c.EscalatedAt != nil {
		t.Fatalf("answered conversation: %+v %v", c, err)
	}
	saveHistory(t, ctx, e.s, "conversation-answered-in-time", id)
}

// TestEscalationDoesNotWaitForTheForward: the helper's webhook is down,
// so forwarding the reply is retried (for up to a day). The response-time
// target counts from the reply all the same: the escalation went out only
// once the forward had succeeded or given up, a 1 h target after 25 h.
func TestEscalationDoesNotWaitForTheForward(t *testing.T) {
	t.Parallel()
	e := newConversationEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e.hooks.mu.Lock()
	e.hooks.down = true
	e.hooks.mu.Unlock()
	msg := e.asked(t, ctx, "c-conv-3", "kari@example.no")
	start := time.Now()
	conv := e.reply(t, ctx, "c-conv-3", "kari@example.no", msg, "Hallo? Noen der?")
	got := e.waitHooks(t, conv.ID, 1, target+15*time.Second)
	if len(got) != 1 || got[0].Type != "conversation.escalated" {
		t.Fatalf("after %s with the helper's webhook down: webhook got %+v, want the escalation", time.Since(start).Round(time.Second), got)
	}
	// The helper's webhook comes back: the forward lands, and the run ends.
	e.hooks.mu.Lock()
	e.hooks.down = false
	e.hooks.mu.Unlock()
	id := dialogue.ConversationWorkflowID(firstReply(t, ctx, e, "c-conv-3"))
	if err := e.s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if got := e.hooks.calls(conv.ID); len(got) != 2 || got[1].Type != "message.replied" {
		t.Fatalf("webhook got %+v, want the escalation, then the forward", got)
	}
	saveHistory(t, ctx, e.s, "conversation-escalated-while-forwarding", id)
}

func firstReply(t *testing.T, ctx context.Context, e *conversationEnv, customer string) string {
	t.Helper()
	d, err := e.s.Store.Dialogue(ctx, customer)
	if err != nil || len(d.Replies) == 0 {
		t.Fatalf("replies of %s: %+v %v", customer, d, err)
	}
	return d.Replies[0].ID
}

// saveHistory records a run's history under name when -update-histories
// is set and it has none yet; recorded histories are never replaced.
func saveHistory(t *testing.T, ctx context.Context, s *stacktest.Stack, name, id string) {
	t.Helper()
	if !*updateHistories {
		return
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(history(t, ctx, s, id))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join("testdata/histories", name+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		t.Logf("%s.json exists; kept", name)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(out); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sums, err := os.OpenFile("testdata/histories/SHA256SUMS", os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(sums, "%x  %s.json\n", sha256.Sum256(out), name)
	if cerr := sums.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", name)
}
