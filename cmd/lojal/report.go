package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/lojal/lojal/internal/report"
)

// runReport prints reports; for now the contact-pressure report.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "journeys" {
		return runReportJourneys(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "pressure" {
		return exitError{code: 2, msg: "usage: lojal report pressure|journeys [--days N] [--png FILE]"}
	}
	cfg := defaultConfig()
	fs := newFlagSet("report pressure", stderr)
	days := fs.Int("days", 28, "period to report, ending now")
	png := fs.String("png", "", "also draw the report as a PNG chart to FILE")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	to := time.Now()
	p, err := st.Pressure(ctx, to.AddDate(0, 0, -*days), to)
	if err != nil {
		return err
	}
	if err := report.Text(stdout, p); err != nil {
		return err
	}
	return writeChart(stdout, *png, func() ([]byte, error) { return report.PNG(p) })
}

// writeChart writes a report's chart to path, when one is given, and
// says where.
func writeChart(stdout io.Writer, path string, draw func() ([]byte, error)) error {
	if path == "" {
		return nil
	}
	b, err := draw()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nchart written to %s\n", path)
	return nil
}
