package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// replyDemo shows, in lojal dev's report, the loop a reply closes: a new
// customer signs up and gets the introduction to their advisor; they
// reply to it over SMTP; the reply becomes an event and a conversation;
// the welcome that would have followed waits (conversation_open); the
// reply goes to the helper; and the helper marks it answered through the
// API. Everything is real: the intake, the workflows, the policy, the
// ledger.
type replyDemo struct {
	st      *store.Store
	d       *ingest.Dispatcher
	cat     *catalog.Catalog
	verp    *bounce.VERP
	inbound string
	catcher *mailcatch.Server // nil when mail goes to a server of the user's
	api     string
	token   string
}

// awakeZone is a zone where it is daytime now, so the demo's messages
// are not held for quiet hours.
func awakeZone(now time.Time) string {
	for _, z := range []string{"Europe/Oslo", "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo", "Pacific/Auckland",
		"America/Sao_Paulo", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu"} {
		loc, err := journey.LoadLocation(z)
		if err != nil {
			continue
		}
		if h := now.In(loc).Hour(); h >= 10 && h < 18 {
			return z
		}
	}
	return "Europe/Oslo"
}

func (x *replyDemo) run(ctx context.Context, out io.Writer) error {
	if x.cat.Rules.Conversations == nil || x.verp == nil {
		fmt.Fprintf(out, "\n(no reply demo: policy.yaml has no conversations section)\n")
		return nil
	}
	now := time.Now()
	zone := awakeZone(now)
	loc, _ := journey.LoadLocation(zone)
	at := func(t time.Time) string { return t.In(loc).Format("15:04:05") }
	c := journey.Customer{ID: "c-reply-" + strconv.FormatInt(now.Unix(), 36), Email: "nora.berg@example.no", Locale: "nb", Timezone: zone,
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Nora", "last_name": "Berg", "plan": "home",
			"segment": "family", "advisor_name": "Ingrid Solberg", "advisor_phone": "+47 22 00 10 01"}}
	fmt.Fprintf(out, "\nA reply, end to end (demo customer %s, %s)\n", customerName(c), zone)
	if _, err := x.d.Customer(ctx, c); err != nil {
		return fmt.Errorf("reply demo customer: %w", err)
	}
	since := now.Add(-time.Second)
	if _, err := x.d.Event(ctx, journey.Event{ID: "e-" + c.ID, Type: "customer.signed_up", CustomerID: c.ID, At: now,
		Data: map[string]any{"plan": "home"}}); err != nil {
		return fmt.Errorf("reply demo event: %w", err)
	}
	// The introduction (high priority) goes out at once; the welcome
	// (normal) waits 5 s before it asks, time enough for the reply.
	var first store.Sent
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		sent, err := x.st.SentSince(ctx, since)
		for _, m := range sent {
			if m.CustomerID == c.ID && m.Channel == policy.Email && m.MessageID != "" {
				first = m
				return true, nil
			}
		}
		return false, err
	}); err != nil {
		return fmt.Errorf("reply demo: no email reached %s: %w", c.ID, err)
	}
	replyTo := x.verp.ReplyAddress(first.MessageID)
	fmt.Fprintf(out, "  %s  lojal sent %q (%s), Reply-To %s\n", at(first.SentAt), first.Subject, first.JourneyID, replyTo)

	text := "Hei! Vi har fått en datter og flytter i mai. Må vi endre innboforsikringen?"
	msg := fmt.Sprintf("From: Nora Berg <%s>\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <demo-%s@example.no>\r\nIn-Reply-To: <%s>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n-- \r\nNora Berg\r\nSendt fra min iPhone\r\n",
		c.Email, replyTo, first.Subject, c.ID, first.MessageID, text)
	if err := smtp.SendMail(x.inbound, nil, c.Email, []string{replyTo}, []byte(msg)); err != nil {
		return fmt.Errorf("reply demo: the intake refused the reply: %w", err)
	}
	ended := time.Now()
	var conv store.Conversation
	var dlg store.Dialogue
	if err := poll(ctx, 10*time.Second, func() (bool, error) {
		var err error
		dlg, err = x.st.Dialogue(ctx, c.ID)
		if err != nil || len(dlg.Conversations) == 0 || len(dlg.Replies) == 0 {
			return false, err
		}
		conv = dlg.Conversations[0]
		return true, nil
	}); err != nil {
		return fmt.Errorf("reply demo: the reply was not recorded: %w", err)
	}
	fmt.Fprintf(out, "  %s  Nora replied by email to the inbound SMTP listener %s: %q (signature cut)\n", at(ended), x.inbound,
		strings.Join(strings.Fields(dlg.Replies[0].Body), " "))
	fmt.Fprintf(out, "            a message.replied event and conversation %s, %.1f s after the SMTP session ended\n",
		conv.ID, time.Since(ended).Seconds())

	conversations := x.cat.Rules.Conversations
	var held store.Decision
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		ds, err := x.st.DecisionsSince(ctx, since)
		for _, d := range ds {
			if d.CustomerID == c.ID && d.Reason == string(policy.ReasonConversationOpen) {
				held = d
				return true, nil
			}
		}
		return false, err
	}); err != nil {
		fmt.Fprintf(out, "            (no marketing message asked to go out to Nora while the conversation was open)\n")
	} else {
		until := ""
		if held.DeferUntil != nil {
			until = " until " + journey.LocalTime(*held.DeferUntil, loc)
		}
		fmt.Fprintf(out, "  %s  marketing paused: %s/%s deferred%s: %s\n", at(held.DecidedAt), held.JourneyID, held.StepID, until, explain(held.Reason))
	}

	h := conversations.Helpers[conv.Helper]
	where := h.Email + ">"
	if h.Email == "" {
		where = "webhook>"
	}
	where += " (the reply went out"
	if x.catcher != nil && h.Email != "" {
		if err := poll(ctx, 30*time.Second, func() (bool, error) {
			for _, m := range x.catcher.Messages() {
				if strings.Contains(strings.Join(m.To, ","), h.Email) && strings.Contains(string(m.Data), c.Email) {
					where = fmt.Sprintf("%s> at %s (the forwarded email is in the mail directory", h.Email, m.ReceivedAt.In(loc).Format("15:04:05"))
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return fmt.Errorf("reply demo: the reply was not forwarded to %s: %w", h.Email, err)
		}
	}
	fmt.Fprintf(out, "            routed to %s <%s), to be answered within %s\n", h.Name, where,
		policy.FormatDuration(conversations.Target(conv.Topic)))

	body := strings.NewReader(`{"by": "Ingrid Solberg"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.api+"/v1/conversations/"+conv.ID+"/answered", body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+x.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reply demo: mark answered: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reply demo: mark answered: %s", resp.Status)
	}
	fmt.Fprintf(out, "  %s  answered by Ingrid Solberg (POST /v1/conversations/%s/answered); marketing to Nora waits %s more\n",
		at(time.Now()), conv.ID, policy.FormatDuration(conversations.PauseAfterAnswer))
	return nil
}

// poll calls f until it is done, fails, or within passes.
func poll(ctx context.Context, within time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
