package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/lojal/lojal/internal/report"
)

// runReportJourneys prints the journeys report: per journey, entrants,
// messages per entrant, goal rate treated and held out with the uplift
// and its 95% interval, unsubscribes and complaints per 1,000 messages.
func runReportJourneys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("report journeys", stderr)
	days := fs.Int("days", 28, "period to report, ending now: runs started and messages sent in it")
	png := fs.String("png", "", "also draw the report as a PNG chart to FILE")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if *days < 1 {
		return exitError{code: 2, msg: fmt.Sprintf("report journeys: --days %d: want 1 or more days", *days)}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	to := time.Now()
	stats, err := st.JourneyReport(ctx, to.AddDate(0, 0, -*days), to)
	if err != nil {
		return err
	}
	rows := report.JourneyRows(stats)
	if err := report.JourneysText(stdout, *days, rows); err != nil {
		return err
	}
	return writeChart(stdout, *png, func() ([]byte, error) { return report.JourneysPNG(rows) })
}
