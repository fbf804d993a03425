package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// A message a held-out run would have sent is recorded, once however
// often it is recorded, and never reaches the policy's window: it cannot
// count toward caps, the gap or adaptive pressure.
func TestHoldoutMessageNeverCountsAsContact(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := store.HoldoutMessage{RequestKey: "w@r/hi#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j", StepID: "hi", Template: "hi",
		Channel: "email", Topic: "service", Priority: "normal", At: now}
	for range 2 {
		if err := s.RecordHoldoutMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	req := store.Request{IdempotencyKey: "w2/s#1.1", RequestKey: "w2/s#1", CustomerID: "c-1", WorkflowID: "w2", JourneyID: "j2",
		StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	var window []policy.Contact
	if _, err := s.Decide(ctx, req, 30*24*time.Hour, func(snap store.Snapshot) policy.Decision {
		window = snap.Window
		return policy.Decision{Verdict: policy.Defer, Reason: policy.ReasonMinGap, Until: now.Add(time.Hour)}
	}); err != nil {
		t.Fatal(err)
	}
	if len(window) != 0 {
		t.Fatalf("the policy saw %d contacts after a held-out message: %+v", len(window), window)
	}
	rep, err := s.JourneyReport(ctx, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].WouldHaveSent != 1 || rep[0].Messages != 0 {
		t.Fatalf("report %+v, want j with 1 message would have been sent and none sent", rep)
	}
}

// TestJourneyReportCounts: entrants and goals per group, messages sent,
// complaints about the journey's messages and unsubscribes after them.
func TestJourneyReportCounts(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 10 {
		id := fmt.Sprintf("c-%d", i)
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: id, Email: id + "@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
			t.Fatal(err)
		}
		entry := "e-" + id
		if _, _, err := s.RecordRun(ctx, "w-"+id, "welcome", "v1", id, "", entry); err != nil {
			t.Fatal(err)
		}
		// c-0..c-2 held out, c-0 reaches the goal; of the treated c-3..c-9,
		// c-3..c-6 do.
		if err := s.RecordRunGroup(ctx, "welcome", entry, i < 3); err != nil {
			t.Fatal(err)
		}
		if i == 0 || (i >= 3 && i <= 6) {
			if err := s.FinishRun(ctx, "welcome", entry, "goal"); err != nil {
				t.Fatal(err)
			}
		}
		if i < 3 {
			continue
		}
		// Each treated customer gets two messages.
		for n := 1; n <= 2; n++ {
			sendOne(t, s, id, "w-"+id, "welcome", fmt.Sprint("s", n), fmt.Sprintf("m-%s-%d@example", id, n), now)
		}
	}
	// Another journey's run is not welcome's.
	if _, _, err := s.RecordRun(ctx, "w-x", "other", "v1", "c-1", "", "e-x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Complain(ctx, "email", "c-4@example.no", "m-c-4-1@example", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, "c-5", "", []string{"service"}, store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.JourneyReport(ctx, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.JourneyStats{
		{JourneyID: "other", Treated: store.JourneyGroup{Entrants: 1}},
		{JourneyID: "welcome", Treated: store.JourneyGroup{Entrants: 7, Goals: 4}, HeldOut: store.JourneyGroup{Entrants: 3, Goals: 1},
			Messages: 14, Unsubscribes: 1, Complaints: 1},
	}
	if fmt.Sprintf("%+v", rep) != fmt.Sprintf("%+v", want) {
		t.Fatalf("report\n%+v\nwant\n%+v", rep, want)
	}
}

// TestRetainPrunesHoldoutMessages: what held-out runs would have sent is
// kept as long as the ledger, no longer.
func TestRetainPrunesHoldoutMessages(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, at := range []time.Time{now.AddDate(0, -5, 0), now.AddDate(0, 0, -10)} {
		m := store.HoldoutMessage{RequestKey: fmt.Sprint("w@r/hi#", i), CustomerID: "c-1", WorkflowID: "w", JourneyID: "j", StepID: "hi",
			Channel: "email", Priority: "normal", At: at}
		if err := s.RecordHoldoutMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Retain(ctx, now, store.Retention{Ledger: 60 * 24 * time.Hour, Events: 40 * 24 * time.Hour, Runs: 60 * 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.JourneyReport(ctx, now.AddDate(-1, 0, 0), now)
	if err != nil {
		t.Fatal(err)
	}
	if got.HoldoutMessages != 1 || len(rep) != 1 || rep[0].WouldHaveSent != 1 {
		t.Fatalf("retention deleted %d held-out messages and left %+v; want the one 5 months old gone, the one 10 days old kept", got.HoldoutMessages, rep)
	}
}

// TestRetainPrunesEngagements: engagement signals (clicks and the like)
// are kept as long as the ledger they are weighed against, no longer.
func TestRetainPrunesEngagements(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, at := range []time.Time{now.AddDate(0, -5, 0), now.AddDate(0, 0, -10)} {
		if _, err := s.RecordClick(ctx, "c-1", fmt.Sprint("w@r/hi#", i), at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Retain(ctx, now, store.Retention{Ledger: 60 * 24 * time.Hour, Events: 40 * 24 * time.Hour, Runs: 60 * 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.Engagements(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Engagements != 1 || len(left) != 1 || !left[0].At.After(now.AddDate(0, -1, 0)) {
		t.Fatalf("retention deleted %d engagements and left %+v; want the one 5 months old gone, the one 10 days old kept", got.Engagements, left)
	}
}

// TestRetainPrunesDialogue: answered conversations (with their replies),
// replies outside any conversation and one-click answers go with the
// ledger's retention; an open conversation stays whatever its age, for it
// still holds the customer's marketing.
func TestRetainPrunesDialogue(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	for _, id := range []string{"c-1", "c-2"} {
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: id, Email: id + "@example.no"}, "crm"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	old, recent := now.AddDate(0, -5, 0), now.AddDate(0, 0, -10)
	reply := func(id, customer string, fromCustomer bool, at time.Time) store.RecordedReply {
		t.Helper()
		out, err := s.RecordReply(ctx, store.Reply{ID: id, CustomerID: customer, MessageID: "m-" + id, From: customer + "@example.no",
			FromCustomer: fromCustomer, Source: "email", Body: "hei", At: at}, "conv-"+id, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	answered := reply("r-answered", "c-1", true, old)
	if ok, err := s.AnswerConversation(ctx, answered.ConversationID, "helper@example.no", old.Add(time.Hour)); !ok || err != nil {
		t.Fatalf("answer: %v %v", ok, err)
	}
	open := reply("r-open", "c-2", true, old)
	reply("r-other-old", "c-1", false, old)
	reply("r-other-new", "c-1", false, recent)
	for customer, at := range map[string]time.Time{"c-1": old, "c-2": recent} {
		if _, err := s.RecordAnswer(ctx, customer, "need", "advice", "e-"+customer, at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Retain(ctx, now, store.Retention{Ledger: 60 * 24 * time.Hour, Events: 40 * 24 * time.Hour, Runs: 60 * 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Conversations != 1 || got.Replies != 1 || got.Answers != 1 {
		t.Errorf("deleted %d conversations, %d replies outside one, %d answers; want 1 each", got.Conversations, got.Replies, got.Answers)
	}
	d1, err := s.Dialogue(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d1.Conversations) != 0 || len(d1.Replies) != 1 || d1.Replies[0].ID != "r-other-new" || len(d1.Answers) != 0 {
		t.Errorf("c-1 kept %+v; want only the recent reply", d1)
	}
	d2, err := s.Dialogue(ctx, "c-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(d2.Conversations) != 1 || d2.Conversations[0].ID != open.ConversationID || len(d2.Replies) != 1 || len(d2.Answers) != 1 {
		t.Errorf("c-2 kept %+v; want the open conversation, its reply and the recent answer", d2)
	}
}

// TestUnsubscribeCountsForTheMessageItCameFrom: a customer who got a
// message of journey a, then one of journey b, unsubscribes with the link
// in a's message. The unsubscribe is a's, not that of the last message
// before it; one with no message (the preference centre) still goes to
// the last message within 30 days.
func TestUnsubscribeCountsForTheMessageItCameFrom(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	send := func(customer, journeyID string, at time.Time) string {
		t.Helper()
		id := fmt.Sprintf("m-%s-%s@example", journeyID, customer)
		sendOne(t, s, customer, "w-"+journeyID+"-"+customer, journeyID, "s", id, at)
		return id
	}
	for _, c := range []string{"c-1", "c-2"} {
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: c, Email: c + "@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
			t.Fatal(err)
		}
	}
	fromA := send("c-1", "a", now.Add(-2*time.Hour))
	send("c-1", "b", now.Add(-time.Hour))
	send("c-2", "a", now.Add(-2*time.Hour))
	send("c-2", "b", now.Add(-time.Hour))
	if err := s.Unsubscribe(ctx, "c-1", "", []string{"service"},
		store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: now, MessageID: fromA}); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, "c-2", "", []string{"service"}, store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: now}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.JourneyReport(ctx, now.Add(-3*time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rep {
		got[r.JourneyID] = r.Unsubscribes
	}
	if got["a"] != 1 || got["b"] != 1 {
		t.Fatalf("unsubscribes per journey %v, want a 1 (c-1 used a's link) and b 1 (c-2's last message)", got)
	}
}

// TestOutcomeWithinItsWindowCounts: a journey's declared outcome (an
// event within a window after entering) counts as reached for the runs it
// falls in, even after they ended; not for a run it came before, nor
// after the window.
func TestOutcomeWithinItsWindowCounts(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	var started time.Time
	for i, held := range []bool{false, false, false, true} {
		id := fmt.Sprintf("c-%d", i)
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: id, Email: id + "@example.no"}, "crm"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RecordRun(ctx, "w-"+id, "renewal", "v1", id, "", "e-"+id); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordRunGroup(ctx, "renewal", "e-"+id, held); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRun(ctx, "renewal", "e-"+id, "exit"); err != nil {
			t.Fatal(err)
		}
		r, err := s.LatestRun(ctx, "renewal", id, "")
		if err != nil {
			t.Fatal(err)
		}
		started = r.StartedAt
	}
	within := 30 * 24 * time.Hour
	reach := func(customer string, at time.Time) {
		t.Helper()
		if _, err := s.Settle(ctx, store.Settlement{Outcomes: []store.OutcomeReached{
			{JourneyID: "renewal", CustomerID: customer, At: at, Within: within}}}); err != nil {
			t.Fatal(err)
		}
	}
	reach("c-0", started.Add(7*24*time.Hour))  // a week after the run: counts
	reach("c-1", started.Add(40*24*time.Hour)) // past the window
	reach("c-2", started.Add(-time.Hour))      // before the run began
	reach("c-3", started.Add(time.Hour))       // held out: counts for that group
	reach("c-0", started.Add(8*24*time.Hour))  // again: still one
	// A run routed late (the sweeper's grace, a backoff, an import): the
	// customer entered when the trigger happened, ten minutes before the
	// run was recorded, and the outcome came in between.
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-late", Email: "c-late@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	entered := time.Now().UTC().Add(-10 * time.Minute)
	if _, err := s.AcceptEvents(ctx, []journey.Event{{ID: "e-c-late", Type: "renewal.due", CustomerID: "c-late", At: entered}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordRun(ctx, "w-c-late", "renewal", "v1", "c-late", "", "e-c-late"); err != nil {
		t.Fatal(err)
	}
	reach("c-late", entered.Add(time.Minute))
	rep, err := s.JourneyReport(ctx, started.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].Treated != (store.JourneyGroup{Entrants: 4, Goals: 2}) || rep[0].HeldOut != (store.JourneyGroup{Entrants: 1, Goals: 1}) {
		t.Fatalf("report %+v, want treated 4 with 2 outcomes reached (c-0, c-late), held out 1 with 1", rep)
	}
}

// sendOne records a message of journeyID to customer as sent at at: an
// allowed decision, an attempt with messageID, and the server's 250.
func sendOne(t *testing.T, s *store.Store, customer, workflowID, journeyID, step, messageID string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	key := fmt.Sprintf("%s@r/%s#1", workflowID, step)
	req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: customer, WorkflowID: workflowID, JourneyID: journeyID,
		StepID: step, Channel: "email", Priority: policy.Normal, FirstAsked: at, Now: at, ReservationTTL: time.Hour, MessageID: messageID}
	if _, err := s.Decide(ctx, req, time.Hour, func(store.Snapshot) policy.Decision {
		return policy.Decision{Verdict: policy.Allow, Reason: policy.ReasonOK, Channel: "email"}
	}); err != nil {
		t.Fatal(err)
	}
	attempt, err := s.BeginSend(ctx, req.IdempotencyKey, store.Sending{MessageID: messageID, Address: customer + "@example.no"})
	if err == nil {
		err = s.MarkSent(ctx, req.IdempotencyKey, attempt, at)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestClaimEntry: a starting run owns its entry's row when the row has no
// run yet or is its own (a retried claim), not when another run has it or
// the entry's run is over; an entry without a row (a run started outside
// routing) is owned.
func TestClaimEntry(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordRun(ctx, "journey/j/c-1", "j", "v1", "c-1", "", "e-1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		entry, run string
		finish     bool
		want       bool
	}{
		{"e-1", "r-1", false, true},  // the row's first run
		{"e-1", "r-1", false, true},  // its claim again (a retry)
		{"e-1", "r-2", false, false}, // another run of the same entry
		{"e-9", "r-9", false, true},  // no row: started outside routing
		{"e-1", "r-1", true, false},  // the entry's run is over
	} {
		if c.finish {
			if err := s.FinishRun(ctx, "j", c.entry, "exit"); err != nil {
				t.Fatal(err)
			}
		}
		owned, err := s.ClaimEntry(ctx, "j", c.entry, c.run)
		if err != nil || owned != c.want {
			t.Fatalf("claim of %s by %s (finished %v): owned %v, %v; want %v", c.entry, c.run, c.finish, owned, err, c.want)
		}
	}
}
