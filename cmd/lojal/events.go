package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/store"
)

const eventsUsage = `usage:
  lojal events show ID [--json]      an event and what routing did with it, per journey
  lojal events failed [--limit N]    dead-lettered events: routing failed too often
  lojal events retry ID              route a dead-lettered (or failing) event again, now
  lojal events drop ID --reason WHY  give up on an undispatched event for good`

// runEvents inspects and repairs the event path.
func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return exitError{code: 2, msg: eventsUsage}
	}
	sub, rest := args[0], args[1:]
	cfg := defaultConfig()
	fs := newFlagSet("events "+sub, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "how many to list")
	reason := fs.String("reason", "", "why the event is dropped (recorded with it)")
	var id string
	if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		id, rest = rest[0], rest[1:]
	}
	if err := loadInto(fs, rest, &cfg); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	switch {
	case sub == "failed":
	case sub == "show" || sub == "retry" || sub == "drop":
		if id == "" {
			return exitError{code: 2, msg: eventsUsage}
		}
	default:
		return exitError{code: 2, msg: eventsUsage}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "show":
		rec, err := st.Event(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return exitError{code: 1, msg: fmt.Sprintf("lojal events show: no event %q", id)}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(struct {
				store.EventRecord
				Status string `json:"status"`
			}{rec, rec.Status()})
		}
		printEvent(stdout, rec)
		return nil
	case "failed":
		recs, err := st.DeadEvents(ctx, *limit)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			fmt.Fprintln(stdout, "no dead-lettered events")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tTYPE\tCUSTOMER\tATTEMPTS\tDEAD SINCE\tLAST ERROR")
		for _, r := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Event.ID, r.Event.Type, r.Event.CustomerID, r.Attempts,
				r.DeadAt.UTC().Format(time.RFC3339), oneLine(r.Error, 100))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\n`lojal events retry ID` routes one again; `lojal events drop ID --reason WHY` gives it up.")
		return nil
	case "retry":
		ok, err := st.RetryEvent(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return exitError{code: 1, msg: fmt.Sprintf("lojal events retry: no undispatched event %q (routed or dropped already?)", id)}
		}
		fmt.Fprintf(stdout, "event %s will be routed again within seconds (the sweeper takes it)\n", id)
		return nil
	default: // drop
		if *reason == "" {
			return exitError{code: 2, msg: "lojal events drop: say why with --reason (it is recorded with the event)"}
		}
		who := "lojal"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		ok, err := st.DropEvent(ctx, id, fmt.Sprintf("dropped by %s: %s", who, *reason))
		if err != nil {
			return err
		}
		if !ok {
			return exitError{code: 1, msg: fmt.Sprintf("lojal events drop: no undispatched event %q", id)}
		}
		fmt.Fprintf(stdout, "event %s dropped; it will not be routed\n", id)
		return nil
	}
}

func printEvent(w io.Writer, r store.EventRecord) {
	fmt.Fprintf(w, "event %s  %s  customer %s\n", r.Event.ID, r.Event.Type, r.Event.CustomerID)
	fmt.Fprintf(w, "  happened  %s\n  received  %s (%s lane)\n", r.Event.At.UTC().Format(time.RFC3339), r.ReceivedAt.UTC().Format(time.RFC3339), r.Lane)
	fmt.Fprintf(w, "  status    %s", r.Status())
	if r.Attempts > 0 {
		fmt.Fprintf(w, " after %d failed attempt(s)", r.Attempts)
	}
	fmt.Fprintln(w)
	if r.Error != "" {
		fmt.Fprintf(w, "  error     %s\n", oneLine(r.Error, 300))
	}
	if len(r.Routes) == 0 {
		fmt.Fprintln(w, "  routes    (none yet)")
		return
	}
	fmt.Fprintln(w, "  routes")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, rt := range r.Routes {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", rt.JourneyID, rt.Action, rt.RoutedAt.UTC().Format(time.RFC3339), rt.Reason)
	}
	_ = tw.Flush()
}

func oneLine(s string, n int) string {
	b := []rune(s)
	for i, r := range b {
		if r == '\n' || r == '\r' {
			b[i] = ' '
		}
	}
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
