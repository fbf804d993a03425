package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"slices"
	"sync"
	"time"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// RepliesOptions configure the reply intake benchmark.
type RepliesOptions struct {
	URL             string
	TemporalAddress string
	Journeys        *catalog.Catalog
	// Replies are sent, one per customer, Conc SMTP sessions at a time.
	Replies, Conc int
}

// Replies sends replies over real SMTP (loopback) to the inbound intake,
// each to the signed reply address of an email lojal sent, and measures
// from the end of each SMTP session (QUIT answered) until the reply is in
// the customer's history (store.Dialogue, what the history API shows).
// The intake does what the worker's does: the message.replied event is
// stored and routed on Temporal, the conversation opened and its
// Conversation workflow started, all before it answers the DATA. The
// limit is issue 16's: p99 at most 2 s.
//
// detail gives p50, p99 and the slowest.
func Replies(ctx context.Context, o RepliesOptions) (res LimitResult, detail string, err error) {
	res = LimitResult{Name: fmt.Sprintf("reply → history, %d replies over SMTP, p99", o.Replies), Unit: "ms", Max: 2000}
	log := slog.New(slog.DiscardHandler)
	st, _, closeStore, err := schemaStore(ctx, o.URL, "replies", 32)
	if err != nil {
		return res, "", err
	}
	defer closeStore()
	tc, err := dialTemporal(o.TemporalAddress, log)
	if err != nil {
		return res, "", err
	}
	defer tc.Close()
	const domain = "lojal.bench"
	verp, err := bounce.NewVERP([]byte("bench-verp-key-0123456789abcdef"), "bounces@"+domain)
	if err != nil {
		return res, "", err
	}
	queue := fmt.Sprintf("bench-replies-%d", time.Now().UnixNano())
	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: o.Journeys, Log: log, TaskQueue: queue}
	replies := &dialogue.Intake{Store: st, VERP: verp, Catalog: o.Journeys, Temporal: tc, TaskQueue: queue, MessageDomain: domain, Log: log,
		Ingest: func(ctx context.Context, e journey.Event) error {
			_, err := d.Event(ctx, e)
			return err
		}}
	in := &bounce.Intake{Store: st, VERP: verp, Log: log, MessageDomain: domain, Replies: replies}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, "", err
	}
	defer l.Close()
	go in.ServeSMTP(l, bounce.SMTPOptions{MaxConns: 2 * o.Conc}) //nolint:errcheck // ends when l closes

	// One customer per reply, each sent the check-in question.
	type sent struct{ customer, email, messageID string }
	msgs := make([]sent, o.Replies)
	now := time.Now()
	for i := range msgs {
		id := fmt.Sprintf("c-reply-%05d", i)
		email := fmt.Sprintf("reply%05d@example.no", i)
		c := journey.Customer{ID: id, Email: email, Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true},
			Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := st.UpsertCustomer(ctx, c, "bench"); err != nil {
			return res, "", err
		}
		key := "journey/checkin/" + id + "@run/ask#0.0"
		if _, err := st.Decide(ctx, store.Request{IdempotencyKey: key, RequestKey: "journey/checkin/" + id + "@run/ask#0", CustomerID: id,
			WorkflowID: "journey/checkin/" + id, JourneyID: "checkin", StepID: "ask", Template: "checkin", Channel: "email", Topic: "feedback",
			Priority: policy.Low, FirstAsked: now, Now: now, ReservationTTL: time.Hour}, time.Hour,
			func(store.Snapshot) policy.Decision {
				return policy.Decision{Verdict: policy.Allow, Reason: policy.ReasonOK, Channel: "email"}
			}); err != nil {
			return res, "", err
		}
		mid := activities.MessageID(key, domain)
		attempt, err := st.BeginSend(ctx, key, store.Sending{MessageID: mid, Address: email, Locale: "nb", Subject: "Hva ville du savnet?"})
		if err != nil {
			return res, "", err
		}
		if err := st.MarkSent(ctx, key, attempt, now); err != nil {
			return res, "", err
		}
		msgs[i] = sent{customer: id, email: email, messageID: mid}
	}

	lat := make([]time.Duration, len(msgs))
	errs := make(chan error, o.Conc)
	next := make(chan int)
	var wg sync.WaitGroup
	for range o.Conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := msgs[i]
				to := verp.ReplyAddress(m.messageID)
				raw := fmt.Sprintf("From: <%s>\r\nTo: %s\r\nSubject: Re: Hva ville du savnet?\r\nMessage-ID: <bench-%d@example.no>\r\n"+
					"Content-Type: text/plain; charset=utf-8\r\n\r\nJeg ville savnet rådgiveren min.\r\n\r\n> Hva ville du savnet?\r\n", m.email, to, i)
				// SendMail returns once the server answered QUIT: the
				// session has ended.
				if err := smtp.SendMail(l.Addr().String(), nil, m.email, []string{to}, []byte(raw)); err != nil {
					errs <- fmt.Errorf("reply %d: %w", i, err)
					return
				}
				ended := time.Now()
				for {
					dl, err := st.Dialogue(ctx, m.customer)
					if err != nil {
						errs <- err
						return
					}
					if len(dl.Replies) > 0 {
						lat[i] = time.Since(ended)
						break
					}
					if time.Since(ended) > 30*time.Second {
						errs <- fmt.Errorf("reply %d not in history after 30 s", i)
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	var firstErr error
feed:
	for i := range msgs {
		select {
		case next <- i:
		case firstErr = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && len(errs) > 0 {
		firstErr = <-errs
	}
	if firstErr != nil {
		return res, "", firstErr
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	res.Values = []float64{float64(p99.Microseconds()) / 1000}
	detail = fmt.Sprintf("p50 %s, p99 %s, max %s", lat[len(lat)/2].Round(time.Microsecond*100), p99.Round(time.Microsecond*100),
		lat[len(lat)-1].Round(time.Microsecond*100))
	return res, detail, nil
}
