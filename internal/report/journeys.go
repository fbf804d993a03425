package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lojal/lojal/internal/store"
)

// JourneyRow is one journey of the journeys report, with its rates and
// the uplift of its goal rate over its holdout.
type JourneyRow struct {
	store.JourneyStats
	// Entrants is treated plus held out.
	Entrants int64
	// HeldOutShare is the share of entrants held out.
	HeldOutShare float64
	// MessagesPerEntrant is messages sent per treated entrant (held-out
	// entrants get none).
	MessagesPerEntrant float64
	// GoalTreated and GoalHeldOut are goal rates with their Wilson 95%
	// intervals; HasHoldout is false when no entrant was held out.
	GoalTreated, GoalHeldOut Interval
	HasTreated, HasHoldout   bool
	// Uplift is GoalTreated less GoalHeldOut with Newcombe's 95% interval.
	Uplift Interval
	// UnsubscribesPerK and ComplaintsPerK are per 1,000 messages sent.
	UnsubscribesPerK, ComplaintsPerK float64
}

// JourneyRows computes the report's rows from the store's counts.
func JourneyRows(stats []store.JourneyStats) []JourneyRow {
	rows := make([]JourneyRow, 0, len(stats))
	for _, st := range stats {
		r := JourneyRow{JourneyStats: st, Entrants: st.Treated.Entrants + st.HeldOut.Entrants}
		if r.Entrants > 0 {
			r.HeldOutShare = float64(st.HeldOut.Entrants) / float64(r.Entrants)
		}
		if st.Treated.Entrants > 0 {
			r.MessagesPerEntrant = float64(st.Messages) / float64(st.Treated.Entrants)
		}
		r.GoalTreated, r.HasTreated = Wilson(st.Treated.Goals, st.Treated.Entrants)
		r.GoalHeldOut, r.HasHoldout = Wilson(st.HeldOut.Goals, st.HeldOut.Entrants)
		if r.HasTreated && r.HasHoldout {
			r.Uplift, _ = Uplift(st.Treated.Goals, st.Treated.Entrants, st.HeldOut.Goals, st.HeldOut.Entrants)
		}
		if st.Messages > 0 {
			r.UnsubscribesPerK = 1000 * float64(st.Unsubscribes) / float64(st.Messages)
			r.ComplaintsPerK = 1000 * float64(st.Complaints) / float64(st.Messages)
		}
		rows = append(rows, r)
	}
	return rows
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
func pp(v float64) string  { return fmt.Sprintf("%+.1f", 100*v) }

// JourneysText writes the journeys report as a table.
func JourneysText(w io.Writer, days int, rows []JourneyRow) error {
	fmt.Fprintf(w, "Journeys, runs started in the last %d days\n\n", days)
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No journey had entrants in the period.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "journey\tentrants\theld out\tmsgs/entrant\tgoal treated\tgoal held out\tuplift (pp)\t95% CI (pp)\tunsubs/1k msgs\tcomplaints/1k msgs\t")
	for _, r := range rows {
		held, goalHeld, uplift, ci := "-", "-", "-", "no holdout"
		if r.HasHoldout {
			held = fmt.Sprintf("%d (%s)", r.HeldOut.Entrants, pct(r.HeldOutShare))
			goalHeld = pct(r.GoalHeldOut.Estimate)
		}
		goalTreated := "-"
		if r.HasTreated {
			goalTreated = pct(r.GoalTreated.Estimate)
		}
		if r.HasTreated && r.HasHoldout {
			uplift = pp(r.Uplift.Estimate)
			ci = fmt.Sprintf("[%s, %s]", pp(r.Uplift.Lo), pp(r.Uplift.Hi))
			if r.Uplift.Excludes0() {
				ci += " *"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t\n", r.JourneyID, r.Entrants, held, r.MessagesPerEntrant,
			goalTreated, goalHeld, uplift, ci, r.UnsubscribesPerK, r.ComplaintsPerK)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, `
goal: share of the period's entrants whose run ended on the journey's goal.
uplift: goal rate treated less held out, in percentage points; 95% CI by
Newcombe's hybrid score method; * marks an interval that excludes 0.
msgs/entrant: messages sent per treated entrant. Unsubscribes count
against the journey of the customer's last message before them.
`)
	return err
}

var (
	treatedColor = color.RGBA{R: 0x2f, G: 0x6f, B: 0xb3, A: 0xff}
	heldColor    = color.RGBA{R: 0xa0, G: 0xa0, B: 0xa0, A: 0xff}
	upliftColor  = color.RGBA{R: 0x3a, G: 0x9a, B: 0x5b, A: 0xff}
)

// JourneysPNG draws the report: per journey, the goal rate of treated and
// held-out entrants with their 95% intervals, and the uplift with its
// 95% interval.
func JourneysPNG(rows []JourneyRow) ([]byte, error) {
	left, err := goalPlot(rows)
	if err != nil {
		return nil, err
	}
	right, err := upliftPlot(rows)
	if err != nil {
		return nil, err
	}
	return twoPanels(left, right)
}

// errorBars are whiskers at x for intervals in percent.
type errorBars struct {
	plotter.XYs
	plotter.YErrors
}

func whiskers(xs []float64, ivs []Interval) (*plotter.YErrorBars, error) {
	e := errorBars{XYs: make(plotter.XYs, len(xs)), YErrors: make(plotter.YErrors, len(xs))}
	for i, iv := range ivs {
		e.XYs[i] = plotter.XY{X: xs[i], Y: 100 * iv.Estimate}
		e.YErrors[i] = struct{ Low, High float64 }{Low: 100 * (iv.Estimate - iv.Lo), High: 100 * (iv.Hi - iv.Estimate)}
	}
	b, err := plotter.NewYErrorBars(e)
	if err != nil {
		return nil, err
	}
	b.LineStyle.Width = vg.Points(1.2)
	b.CapWidth = vg.Points(8)
	return b, nil
}

// slantLabels turns the journey names under the bars when there are more
// than a few, so long names do not run into each other.
func slantLabels(pl *plot.Plot, n int) {
	if n > 3 {
		pl.X.Tick.Label.Rotation = math.Pi / 8
		pl.X.Tick.Label.XAlign = draw.XRight
		pl.X.Tick.Label.YAlign = draw.YCenter
	}
}

func labels(rows []JourneyRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.JourneyID
	}
	if len(out) == 0 {
		out = []string{"(no entrants)"}
	}
	return out
}

func goalPlot(rows []JourneyRow) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = "Goal rate, treated and held out (95% CI)"
	pl.Y.Label.Text = "% of entrants reaching the goal"
	pl.Y.Min = 0
	n := max(len(rows), 1)
	treated, held := make(plotter.Values, n), make(plotter.Values, n)
	var tx, hx []float64
	var tiv, hiv []Interval
	for i, r := range rows {
		if r.HasTreated {
			treated[i] = 100 * r.GoalTreated.Estimate
			tx, tiv = append(tx, float64(i)-0.2), append(tiv, r.GoalTreated)
		}
		if r.HasHoldout {
			held[i] = 100 * r.GoalHeldOut.Estimate
			hx, hiv = append(hx, float64(i)+0.2), append(hiv, r.GoalHeldOut)
		}
	}
	// Two bars per journey, 0.4 apart, as wide as fits (the panel is
	// about 500 points wide).
	w := vg.Points(min(40, 150/float64(n)))
	tb, err := plotter.NewBarChart(treated, w)
	if err != nil {
		return nil, err
	}
	tb.Color, tb.LineStyle.Width, tb.XMin = treatedColor, 0, -0.2
	hb, err := plotter.NewBarChart(held, w)
	if err != nil {
		return nil, err
	}
	hb.Color, hb.LineStyle.Width, hb.XMin = heldColor, 0, 0.2
	pl.Add(tb, hb)
	for _, set := range []struct {
		xs  []float64
		ivs []Interval
	}{{tx, tiv}, {hx, hiv}} {
		if len(set.xs) == 0 {
			continue
		}
		b, err := whiskers(set.xs, set.ivs)
		if err != nil {
			return nil, err
		}
		pl.Add(b)
	}
	pl.Legend.Add("treated", tb)
	pl.Legend.Add("held out", hb)
	pl.Legend.Top = true
	pl.NominalX(labels(rows)...)
	slantLabels(pl, n)
	pl.X.Min, pl.X.Max = -0.6, float64(n)-0.4
	return pl, nil
}

func upliftPlot(rows []JourneyRow) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = "Uplift of the goal rate over the holdout (95% CI)"
	pl.Y.Label.Text = "percentage points"
	n := max(len(rows), 1)
	vals := make(plotter.Values, n)
	var xs []float64
	var ivs []Interval
	for i, r := range rows {
		if r.HasTreated && r.HasHoldout {
			vals[i] = 100 * r.Uplift.Estimate
			xs, ivs = append(xs, float64(i)), append(ivs, r.Uplift)
		}
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(min(40, 150/float64(n))))
	if err != nil {
		return nil, err
	}
	bars.Color, bars.LineStyle.Width = upliftColor, 0
	pl.Add(bars)
	if len(xs) > 0 {
		b, err := whiskers(xs, ivs)
		if err != nil {
			return nil, err
		}
		pl.Add(b)
	}
	zero := plotter.NewFunction(func(float64) float64 { return 0 })
	zero.Color = color.Black
	pl.Add(zero)
	pl.NominalX(labels(rows)...)
	slantLabels(pl, n)
	pl.X.Min, pl.X.Max = -0.6, float64(n)-0.4
	return pl, nil
}
