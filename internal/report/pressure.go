// Package report draws lojal's contact-pressure report: how many messages
// customers received per week, and how many messages the relationship
// policy held back, by reason.
package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"slices"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// Text writes the report as a table.
func Text(w io.Writer, p store.Pressure) error {
	fmt.Fprintf(w, "Contact pressure %s to %s: %d customers, %d weeks\n\n", p.From.Format("2006-01-02"), p.To.Format("2006-01-02"), p.Customers, p.Weeks)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "messages in a week\tcustomer-weeks\tshare\t")
	total := 0
	for _, c := range p.PerWeek {
		total += c
	}
	for _, n := range keys(p) {
		share := 0.0
		if total > 0 {
			share = 100 * float64(p.PerWeek[n]) / float64(total)
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f%%\t\n", n, p.PerWeek[n], share)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nHeld back by the policy")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DECISION\tREASON\tCOUNT")
	for _, h := range p.Held {
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", h.Decision, h.Reason, h.Count)
	}
	if len(p.Held) == 0 {
		fmt.Fprintln(tw, "  (nothing)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := capsText(w, p); err != nil {
		return err
	}
	return spamText(w, p.Spam)
}

// capsText shows the decisions by the effective caps they were taken at:
// in full, or lowered by adaptive pressure (policy.yaml
// adaptive_pressure) after messages went without engagement.
func capsText(w io.Writer, p store.Pressure) error {
	fmt.Fprintln(w, "\nEffective caps (adaptive pressure)")
	if len(p.Caps) == 0 {
		fmt.Fprintln(w, "  (no decisions)")
		return nil
	}
	total := 0
	for _, c := range p.Caps {
		total += c.Decisions
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CAPS\tDECISIONS\tSHARE\tCUSTOMERS")
	for _, c := range p.Caps {
		customers := "-"
		if c.Halvings > 0 {
			customers = fmt.Sprint(c.Customers)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%.1f%%\t%s\n", policy.ScaleWord(c.Halvings), c.Decisions, 100*float64(c.Decisions)/float64(max(total, 1)), customers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %d of %d customers had a decision at lowered caps.\n", p.Lowered, p.Customers)
	return nil
}

// The spam rate Gmail and Yahoo hold bulk senders to, in complaints per
// 1,000 delivered emails: keep it under SpamWarning (0.1%); at SpamAlarm
// (0.3%) and above they reject or junk the sender's mail.
const (
	SpamWarning = 1.0
	SpamAlarm   = 3.0
)

// SpamLevel is "ok", "warning" (at or above SpamWarning) or "alarm" (at or
// above SpamAlarm) for a rate in complaints per 1,000 delivered emails.
func SpamLevel(perThousand float64) string {
	switch {
	case perThousand >= SpamAlarm:
		return "alarm"
	case perThousand >= SpamWarning:
		return "warning"
	}
	return "ok"
}

func spamText(w io.Writer, days []store.SpamDay) error {
	fmt.Fprintf(w, "\nSpam complaints per 1,000 delivered emails, by day (UTC): warning at %.0f (0.1%%), alarm at %.0f (0.3%%)\n", SpamWarning, SpamAlarm)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DAY\tDELIVERED\tCOMPLAINTS\tPER 1,000\t")
	for _, d := range days {
		rate, level := "-", ""
		if d.Delivered > 0 {
			rate = fmt.Sprintf("%.2f", d.PerThousand())
			switch l := SpamLevel(d.PerThousand()); l {
			case "alarm":
				level = "ALARM"
			case "warning":
				level = "warning"
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", d.Day.Format("2006-01-02"), d.Delivered, d.Complaints, rate, level)
	}
	if len(days) == 0 {
		fmt.Fprintln(tw, "  (no emails delivered and no complaints)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "  Complaints count when a mailbox provider's feedback loop reports them (Yahoo, Outlook/JMRP, most others);")
	fmt.Fprintln(w, "  Gmail shows its own rate only in Postmaster Tools.")
	return nil
}

func keys(p store.Pressure) []int {
	ns := make([]int, 0, len(p.PerWeek))
	for n := range p.PerWeek {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// PNG draws the report as a two-panel bar chart.
func PNG(p store.Pressure) ([]byte, error) {
	left, err := perWeekPlot(p)
	if err != nil {
		return nil, err
	}
	right, err := heldPlot(p)
	if err != nil {
		return nil, err
	}
	return twoPanels(left, right)
}

// twoPanels draws two plots side by side, aligned, as a 12 by 5 inch PNG:
// the shape of every report chart.
func twoPanels(left, right *plot.Plot) ([]byte, error) {
	img := vgimg.New(12*vg.Inch, 5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

func perWeekPlot(p store.Pressure) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("Messages per customer per week (%d customers)", p.Customers)
	pl.X.Label.Text = "messages in the week"
	pl.Y.Label.Text = "customer-weeks"
	ns := keys(p)
	if len(ns) == 0 {
		ns = []int{0}
	}
	vals := make(plotter.Values, len(ns))
	labels := make([]string, len(ns))
	for i, n := range ns {
		vals[i] = float64(p.PerWeek[n])
		labels[i] = fmt.Sprint(n)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return nil, err
	}
	bars.Color = color.RGBA{R: 0x2f, G: 0x6f, B: 0xb3, A: 0xff}
	bars.LineStyle.Width = 0
	pl.Add(bars)
	pl.NominalX(labels...)
	return pl, nil
}

func heldPlot(p store.Pressure) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = "Held back by the relationship policy"
	pl.X.Label.Text = "decisions"
	held := p.Held
	if len(held) == 0 {
		held = []store.Held{{Decision: "none", Reason: "", Count: 0}}
	}
	vals := make(plotter.Values, len(held))
	labels := make([]string, len(held))
	for i, h := range held {
		vals[i] = float64(h.Count)
		labels[i] = h.Decision + " " + h.Reason
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(16))
	if err != nil {
		return nil, err
	}
	bars.Horizontal = true
	bars.Color = color.RGBA{R: 0xd9, G: 0x82, B: 0x2b, A: 0xff}
	bars.LineStyle.Width = 0
	pl.Add(bars)
	pl.NominalY(labels...)
	return pl, nil
}
