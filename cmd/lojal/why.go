package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
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
	loc, zoneNote := time.UTC, ""
	if c.Timezone != "" {
		if l, err := journey.LoadLocation(c.Timezone); err == nil {
			loc = l
		}
	} else if cat, _ := catalog.Inspect(os.DirFS(cfg.Journeys), cfg.Journeys); cat != nil && cat.Rules != nil && cat.Rules.Location != nil {
		loc, zoneNote = cat.Rules.Location, ", the policy's default_timezone (the customer has none)"
	} else {
		zoneNote = " (the customer has none, and the policy in " + cfg.Journeys + " could not be read)"
	}
	fmt.Fprint(stdout, customerHeader(c, loc, zoneNote, time.Now()))
	dlg, err := st.Dialogue(ctx, *customer)
	if err != nil {
		return err
	}
	printDialogue(stdout, dlg, func(t time.Time) string { return journey.LocalTime(t, loc) })
	held, err := st.CustomerHoldoutMessages(ctx, *customer)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		fmt.Fprintln(stdout, "Held out of these journeys' sends (docs/holdouts.md): these messages were not sent, and count toward nothing.")
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HELD OUT\tOF JOURNEY/STEP\tCHANNEL\tTEMPLATE")
		for _, m := range held {
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\n", journey.LocalTime(m.At, loc), m.JourneyID, m.StepID, m.Channel, m.Template)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	if len(hist) == 0 {
		fmt.Fprintln(stdout, "no messages have been considered for this customer")
		return nil
	}
	at := func(t time.Time) string { return journey.LocalTime(t, loc) }
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DECIDED\tJOURNEY/STEP\tCHANNEL\tDECISION\tSTATUS\tWHY\tFACTS")
	for _, e := range hist {
		decision := e.Decision
		if e.DeferUntil != nil && e.Decision == "defer" {
			decision += " until " + at(*e.DeferUntil)
		}
		status := e.Status
		if e.Status == "uncertain" {
			status = "uncertain (the server may have it; never resent)"
		}
		if e.SentAt != nil {
			status += " " + at(*e.SentAt)
		}
		if e.Error != "" {
			status += ": " + e.Error
		}
		var det policy.Detail
		_ = json.Unmarshal(e.Detail, &det)
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", at(e.DecidedAt), e.JourneyID, e.StepID,
			e.Channel, decision, status, explain(e.Reason), det.Describe(at))
	}
	return tw.Flush()
}

// customerHeader describes a customer for people: consent and opt-outs in
// words, and the zone every time after it is written in.
func customerHeader(c journey.Customer, loc *time.Location, zoneNote string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  locale %s\n", customerName(c), c.Email, orNone(c.Locale))
	fmt.Fprintf(&b, "time zone  %s%s; every time below is in it\n", journey.ZoneName(loc, now), zoneNote)
	var consent []string
	for _, ch := range []string{policy.Email, policy.Push} {
		v := "no"
		if c.Consent[ch] {
			v = "yes"
		}
		consent = append(consent, ch+" "+v)
	}
	fmt.Fprintf(&b, "consent    %s\n", strings.Join(consent, ", "))
	optedOut := "nothing"
	if len(c.TopicsOptedOut) > 0 {
		optedOut = strings.Join(c.TopicsOptedOut, ", ")
	}
	fmt.Fprintf(&b, "opted out  %s\n\n", optedOut)
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// printDialogue shows the customer's replies, conversations and answers
// above the decisions they explain (conversation_open).
func printDialogue(out io.Writer, d store.Dialogue, at func(time.Time) string) {
	for _, r := range d.Replies {
		who := "replied"
		if !r.FromCustomer {
			who = "reply from " + r.From + " (not the customer's address: held for the helper, no conversation)"
		} else if r.Source == "answer" {
			who = "wrote with an answer"
		}
		fmt.Fprintf(out, "reply      %s %s to %s/%s: %q\n", at(r.At), who, r.JourneyID, r.StepID, r.Body)
	}
	for _, c := range d.Conversations {
		state := "open, not answered"
		if c.AnsweredAt != nil {
			state = "answered " + at(*c.AnsweredAt) + " by " + c.AnsweredBy
		}
		if c.EscalatedAt != nil {
			state += "; escalated " + at(*c.EscalatedAt)
		}
		fmt.Fprintf(out, "talk       %s opened %s with %s: %s\n", c.ID, at(c.OpenedAt), orNone(c.Helper), state)
	}
	for _, a := range d.Answers {
		line := fmt.Sprintf("answer     %s %s: %s", at(a.At), a.Survey, a.Answer)
		if len(a.Changes) > 0 {
			line += " (later changed to " + strings.Join(a.Changes, ", ") + "; the first counts)"
		}
		fmt.Fprintln(out, line)
	}
	if len(d.Replies)+len(d.Conversations)+len(d.Answers) > 0 {
		fmt.Fprintln(out)
	}
}
