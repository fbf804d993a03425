package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/workflows"
)

// RateOptions configure the send-rate benchmark.
type RateOptions struct {
	URL             string
	TemporalAddress string
	// Rate is the configured email rate, messages a second for every
	// worker together.
	Rate float64
	// Messages go out in the measurement.
	Messages int
	// Workers is how many worker sets (as many processes would run) poll
	// the queues.
	Workers int
}

// RateResult is what the send-rate benchmark measured.
type RateResult struct {
	Configured float64
	// Achieved is the rate the SMTP server received messages at, over the
	// middle 80% of them (the first and last tenth are the queue filling
	// and draining).
	Achieved float64
	// PeakSecond is the most messages the server received in any one
	// second; SteadyPeak the same over the middle 80%, after the start's
	// burst.
	PeakSecond, SteadyPeak int
	Messages               int
	Workers                int
	// Lost are customers who got nothing; Duplicates messages received
	// more than once.
	Lost, Duplicates int
	Took             time.Duration
}

// Deviation is (achieved - configured) / configured.
func (r RateResult) Deviation() float64 { return (r.Achieved - r.Configured) / r.Configured }

// OK reports whether the achieved rate is within 10% of the configured
// one and every message arrived exactly once.
func (r RateResult) OK() bool {
	return math.Abs(r.Deviation()) <= 0.10 && r.Lost == 0 && r.Duplicates == 0
}

// Rate measures the send rate the Temporal server holds the email send
// queue to. Journeys for o.Messages customers are started and decided
// first, so a backlog waits on the email queue as it would after a
// campaign's trigger; then o.Workers sets of send workers, each configured
// with o.Rate, start delivering, and the SMTP server's clock says how fast
// messages arrive.
func Rate(ctx context.Context, o RateOptions) (RateResult, error) {
	res := RateResult{Configured: o.Rate, Messages: o.Messages, Workers: o.Workers}
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.Load(benchJourneys, "bench")
	if err != nil {
		return res, err
	}
	st, _, closeStore, err := schemaStore(ctx, o.URL, "rate", 32)
	if err != nil {
		return res, err
	}
	defer closeStore()
	catcher, err := mailcatch.Start(log, mailcatch.Options{})
	if err != nil {
		return res, err
	}
	defer catcher.Close()
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + catcher.Addr, From: "lojal <hello@lojal.example>", MaxIdle: 64}, log)
	if err != nil {
		return res, err
	}
	defer email.Close()
	signer, err := links.NewSigner([]byte("bench-link-key-0123456789abcdef-0123"), "https://lojal.bench", 0)
	if err != nil {
		return res, err
	}
	tc, err := dialTemporal(o.TemporalAddress, log)
	if err != nil {
		return res, err
	}
	defer tc.Close()
	queue := fmt.Sprintf("bench-rate-%d", time.Now().UnixNano())
	acts := &activities.Activities{Store: st, Catalog: cat, Sender: channel.Mux{"email": email}, Links: signer, Log: log,
		MessageDomain: email.Domain()}
	var journeyWorkers, sendWorkers workflows.Workers
	for range o.Workers {
		ws := workflows.NewWorkers(tc, queue, acts, workflows.WorkerOptions{
			Worker: worker.Options{WorkerStopTimeout: 5 * time.Second, MaxConcurrentActivityExecutionSize: 200},
			Rates:  map[string]float64{"email": o.Rate},
		})
		journeyWorkers, sendWorkers = append(journeyWorkers, ws[0]), append(sendWorkers, ws[1:]...)
	}
	if err := journeyWorkers.Start(); err != nil {
		return res, err
	}
	defer journeyWorkers.Stop()

	for i := range o.Messages {
		c := journey.Customer{ID: fmt.Sprintf("r-%06d", i), Email: fmt.Sprintf("r%d@example.com", i), Locale: "en", Timezone: "Europe/Oslo",
			Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := st.UpsertCustomer(ctx, c, "bench"); err != nil {
			return res, err
		}
	}
	start := time.Now().Add(-time.Second)
	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log, TaskQueue: queue}
	if _, err := timed(o.Messages, 16, func(i int) error {
		cid := fmt.Sprintf("r-%06d", i)
		_, err := d.Event(ctx, journey.Event{ID: "e-" + cid, Type: "bench.ping", CustomerID: cid, At: time.Now(), Data: map[string]any{"ping_id": cid}})
		return err
	}); err != nil {
		return res, err
	}
	// Every message decided and reserved: the backlog is on the queue.
	for deadline := time.Now().Add(10 * time.Minute); ; {
		ds, err := st.DecisionsSince(ctx, start)
		if err != nil {
			return res, err
		}
		allowed := 0
		for _, x := range ds {
			if x.Decision == "allow" {
				allowed++
			}
		}
		if allowed >= o.Messages {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d messages decided in 10 minutes", allowed, o.Messages)
		}
		time.Sleep(200 * time.Millisecond)
	}

	began := time.Now()
	if err := sendWorkers.Start(); err != nil {
		return res, err
	}
	defer sendWorkers.Stop()
	wait, cancel := context.WithTimeout(ctx, time.Duration(float64(o.Messages)/o.Rate*float64(time.Second))*3+time.Minute)
	defer cancel()
	if _, err := catcher.WaitFor(wait, o.Messages); err != nil {
		return res, err
	}
	// A message sent twice would arrive after the last one: give it time.
	time.Sleep(2 * time.Second)
	res.Took = time.Since(began)
	msgs := catcher.Messages()
	perRcpt := map[string]int{}
	at := make([]time.Time, 0, len(msgs))
	for _, m := range msgs {
		for _, r := range m.To {
			perRcpt[r]++
		}
		at = append(at, m.ReceivedAt)
	}
	for i := range o.Messages {
		switch n := perRcpt[fmt.Sprintf("r%d@example.com", i)]; {
		case n == 0:
			res.Lost++
		case n > 1:
			res.Duplicates += n - 1
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(at)/10, len(at)-1-len(at)/10
	if span := at[hi].Sub(at[lo]).Seconds(); span > 0 {
		res.Achieved = float64(hi-lo) / span
	}
	res.PeakSecond, res.SteadyPeak = peakSecond(at), peakSecond(at[lo:hi+1])
	return res, nil
}

// peakSecond is the most timestamps in any window of one second.
func peakSecond(at []time.Time) int {
	peak, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= time.Second {
			j++
		}
		peak = max(peak, i-j+1)
	}
	return peak
}
