package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// runWhy prints a customer's contact history: every decision about every
// message, with the reason and the facts that decided it.
func runWhy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("why", stderr)
	customer := fs.String("customer", "", "customer id")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if *customer == "" {
		return exitError{code: 2, msg: "usage: lojal why --customer ID"}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Customer(ctx, *customer)
	if errors.Is(err, store.ErrNotFound) {
		return exitError{code: 1, msg: fmt.Sprintf("lojal why: no customer %q", *customer)}
	}
	if err != nil {
		return err
	}
	hist, err := st.History(ctx, *customer)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range hist {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	loc := time.UTC
	if l, err := time.LoadLocation(c.Timezone); err == nil && c.Timezone != "" {
		loc = l
	}
	fmt.Fprintf(stdout, "%s  %s  locale %s  time zone %s  consent %v  opted out of %v\n\n",
		customerName(c), c.Email, c.Locale, loc, c.Consent, c.TopicsOptedOut)
	if len(hist) == 0 {
		fmt.Fprintln(stdout, "no messages have been considered for this customer")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DECIDED (local)\tJOURNEY/STEP\tCHANNEL\tDECISION\tSTATUS\tWHY\tFACTS")
	for _, e := range hist {
		decision := e.Decision
		if e.DeferUntil != nil && e.Decision == "defer" {
			decision += " until " + e.DeferUntil.In(loc).Format("Jan 02 15:04")
		}
		status := e.Status
		if e.Status == "uncertain" {
			status = "uncertain (the server may have it; never resent)"
		}
		if e.SentAt != nil {
			status += " " + e.SentAt.In(loc).Format("15:04:05")
		}
		if e.Error != "" {
			status += ": " + e.Error
		}
		var det policy.Detail
		_ = json.Unmarshal(e.Detail, &det)
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", e.DecidedAt.In(loc).Format("Jan 02 15:04:05"), e.JourneyID, e.StepID,
			e.Channel, decision, status, explain(e.Reason), det)
	}
	return tw.Flush()
}
