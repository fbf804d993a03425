package bench

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Limit results are absolute: lower is better and Max is the most allowed.
// They cover the pure core, where a ratio has no natural baseline.

// LimitResult is one absolute measurement.
type LimitResult struct {
	Name string
	Unit string
	// Values are the per-round measurements.
	Values []float64
	// Max is the most allowed (lower is better); Min, when set instead,
	// the least (higher is better).
	Max float64
	Min float64
}

// OK reports whether the median is within the limit.
func (r LimitResult) OK() bool {
	if r.Min > 0 {
		return Median(r.Values) >= r.Min
	}
	return Median(r.Values) <= r.Max
}

// Limit describes the limit for printing.
func (r LimitResult) Limit() string {
	if r.Min > 0 {
		return fmt.Sprintf(">= %g %s", r.Min, r.Unit)
	}
	return fmt.Sprintf("<= %g %s", r.Max, r.Unit)
}

func nsPerOp(f func(b *testing.B)) float64 {
	r := testing.Benchmark(f)
	if r.N == 0 {
		return 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

// DecideFixture is a decision against the house policy with a 100-entry
// ledger window and a waiting message, under adaptive pressure: the
// customer last engaged ten days ago, so a third of the window counts as
// ignored and every cap is lowered.
type DecideFixture struct {
	Rules   policy.Rules
	Rel     policy.Relationship
	Window  []policy.Contact
	Waiting []policy.Waiting
	Req     policy.Request
	Now     time.Time
}

// NewDecideFixture builds the fixture.
func NewDecideFixture() DecideFixture {
	oslo, _ := time.LoadLocation("Europe/Oslo")
	rules := policy.Rules{Location: oslo, Quiet: &policy.QuietHours{Start: 21 * 60, End: 8 * 60}, MinGap: 24 * time.Hour, MaxDefer: 7 * 24 * time.Hour,
		Caps:     []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 3}, {Channel: policy.Push, Window: 24 * time.Hour, Max: 1}},
		Adaptive: &policy.Adaptive{HalveAfter: 3, Floor: 1, Grace: policy.DefaultAdaptiveGrace}}
	now := time.Date(2026, 5, 5, 12, 0, 0, 0, oslo)
	rel := policy.Relationship{Channels: map[string]policy.ChannelState{policy.Email: {Consent: true, Address: true}, policy.Push: {Consent: true, Address: true}},
		LastEngaged: now.Add(-10 * 24 * time.Hour)}
	window := make([]policy.Contact, 100)
	for i := range window {
		window[i] = policy.Contact{At: now.Add(-time.Duration(i+1) * 7 * time.Hour), Channel: []string{policy.Email, policy.Push}[i%2], Purpose: fmt.Sprint("p", i), Key: fmt.Sprint(i)}
	}
	waiting := []policy.Waiting{{Key: "w", Priority: policy.Low, Since: now.Add(-time.Hour), Due: now.Add(time.Hour)}}
	req := policy.Request{Key: "k", Channel: policy.Preferred, Topic: "service", Priority: policy.Normal, Purpose: "renewal:p-9", FirstAsked: now}
	return DecideFixture{Rules: rules, Rel: rel, Window: window, Waiting: waiting, Req: req, Now: now}
}

// Run decides once.
func (f DecideFixture) Run() policy.Decision {
	return policy.Decide(f.Rules, f.Rel, f.Window, f.Waiting, f.Req, f.Now)
}

// Decide measures policy.Decide with a 100-entry ledger window.
func Decide(rounds int) LimitResult {
	f := NewDecideFixture()
	r := LimitResult{Name: "policy.Decide, 100-entry ledger window", Unit: "µs", Max: 5}
	for range rounds {
		r.Values = append(r.Values, nsPerOp(func(b *testing.B) {
			for b.Loop() {
				f.Run()
			}
		})/1000)
	}
	return r
}

// NextFixture is a 50-step journey (sends, waits, branches, wait_fors)
// and a run of it.
type NextFixture struct {
	Journey  *journey.Journey
	Customer journey.Customer
	Event    *journey.Event
	Now      time.Time
}

// NewNextFixture builds the fixture.
func NewNextFixture() (NextFixture, error) {
	schema, errs := journey.ParseSchema("schema.yaml", []byte("customer:\n  plan: required string\nevents:\n  order.placed: { order_id: string, total: double }\n  order.shipped: { order_id: string }\n"))
	if err := errs.Err(); err != nil {
		return NextFixture{}, err
	}
	var b strings.Builder
	b.WriteString("id: long\nname: Long\ntopic: t\ntrigger: { event: order.placed }\nsteps:\n")
	for i := range 50 {
		switch i % 5 {
		case 0, 2:
			fmt.Fprintf(&b, "  - id: s%d\n    send: { channel: email, template: x, purpose: '\"p%d:\" + event.order_id' }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - id: s%d\n    wait: { duration: 1d, at_local: \"09:00\" }\n", i)
		case 3:
			fmt.Fprintf(&b, "  - id: s%d\n    branch:\n      - when: customer.plan == \"car\" && event.total > 100.0\n        goto: s%d\n      - goto: s%d\n", i, i+1, i+1)
		case 4:
			fmt.Fprintf(&b, "  - id: s%d\n    wait_for: { event: order.shipped, timeout: 2d }\n", i)
		}
	}
	j, errs := journey.Parse("long.yaml", []byte(b.String()), schema, time.UTC)
	if err := errs.Err(); err != nil {
		return NextFixture{}, err
	}
	return NextFixture{Journey: j, Customer: journey.Customer{ID: "c", Timezone: "Europe/Oslo", Attributes: map[string]any{"plan": "car"}},
		Event: &journey.Event{ID: "e", Type: "order.placed", Data: map[string]any{"order_id": "o-1", "total": 150.0}},
		Now:   time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}, nil
}

// Loop calls Next b.N times, starting a new run whenever one ends.
func (f NextFixture) Loop(b *testing.B) error {
	j := f.Journey
	st, act, err := j.Start(f.Customer, f.Event, f.Now)
	for b.Loop() {
		occ := journey.Occurrence{Kind: journey.OccElapsed}
		if act.Kind == journey.ActSend {
			occ.Kind = journey.OccSent
		}
		if st, act, err = j.Next(st, occ, act.Until); err != nil {
			return err
		}
		if act.Kind == journey.ActDone {
			st, act, _ = j.Start(f.Customer, f.Event, f.Now)
		}
	}
	return err
}

// Next measures journey.Next over a 50-step journey.
func Next(rounds int) (LimitResult, error) {
	r := LimitResult{Name: "journey.Next, 50-step journey", Unit: "µs", Max: 20}
	f, err := NewNextFixture()
	if err != nil {
		return r, err
	}
	var runErr error
	for range rounds {
		r.Values = append(r.Values, nsPerOp(func(b *testing.B) {
			if err := f.Loop(b); err != nil {
				runErr = err
			}
		})/1000)
	}
	return r, runErr
}

// Validate measures validating a directory of 1,000 journey files built
// from the journeys in dir (with its schema, policy and templates).
func Validate(dir fs.FS, rounds int) (LimitResult, error) {
	r := LimitResult{Name: "validate 1,000 journey files", Unit: "s", Max: 2}
	fsys, err := ThousandJourneys(dir)
	if err != nil {
		return r, err
	}
	for range rounds {
		start := time.Now()
		c, err := catalog.Load(fsys, "bench")
		if err != nil {
			return r, err
		}
		if len(c.Journeys) != 1000 {
			return r, fmt.Errorf("validated %d journeys, want 1000", len(c.Journeys))
		}
		r.Values = append(r.Values, time.Since(start).Seconds())
	}
	return r, nil
}

// ThousandJourneys builds a journeys directory of 1,000 journey files from
// the journeys in dir, with its schema, policy and templates.
func ThousandJourneys(dir fs.FS) (fstest.MapFS, error) {
	fsys := fstest.MapFS{}
	var journeys []string
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || strings.HasPrefix(p, "demo/") {
			return err
		}
		b, err := fs.ReadFile(dir, p)
		if err != nil {
			return err
		}
		if strings.Contains(p, "/") || p == catalog.SchemaFile || p == catalog.PolicyFile {
			fsys[p] = &fstest.MapFile{Data: b}
		} else {
			journeys = append(journeys, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(journeys) == 0 {
		return nil, fmt.Errorf("no journeys to copy")
	}
	for i := range 1000 {
		src := journeys[i%len(journeys)]
		line := src[strings.Index(src, "\nid: ")+1:]
		line = line[:strings.IndexByte(line, '\n')]
		fsys[fmt.Sprintf("j%04d.yaml", i)] = &fstest.MapFile{Data: []byte(strings.Replace(src, "\n"+line+"\n", fmt.Sprintf("\n%s-%d\n", line, i), 1))}
	}
	return fsys, nil
}
