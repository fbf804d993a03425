package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/store"
)

const suppressionsUsage = `usage:
  lojal suppressions list [--address A] [--lifted] [--json]
  lojal suppressions remove --address A --reason WHY [--channel email|push] [--by NAME]`

// runSuppressions lists suppressed addresses and lifts suppressions. A
// lift is recorded with who lifted it and why.
func runSuppressions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "remove") {
		return exitError{code: 2, msg: suppressionsUsage}
	}
	cfg := defaultConfig()
	fs := newFlagSet("suppressions "+args[0], stderr)
	address := fs.String("address", "", "the address")
	channel := fs.String("channel", "email", "email or push")
	lifted := fs.Bool("lifted", false, "list: the audit record of lifted suppressions instead")
	asJSON := fs.Bool("json", false, "list: print JSON lines")
	reason := fs.String("reason", "", "remove: why the address may be written to again (recorded)")
	by := fs.String("by", "", "remove: who lifts it (recorded; default cli:<your user name>)")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "remove" {
		if *address == "" || *reason == "" {
			return exitError{code: 2, msg: suppressionsUsage + "\n--address and --reason are required"}
		}
		who := *by
		if who == "" {
			if who = osUser(); who == "" {
				return exitError{code: 2, msg: "lojal suppressions remove: cannot tell who you are; pass --by NAME"}
			}
			who = "cli:" + who
		}
		l, err := st.LiftSuppression(ctx, *channel, *address, who, *reason)
		if errors.Is(err, store.ErrNotFound) {
			return exitError{code: 1, msg: fmt.Sprintf("lojal suppressions remove: %s %s is not suppressed", *channel, *address)}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lifted the %s suppression of %s %s (since %s), recorded as lifted by %s: %s\n",
			l.Reason, l.Channel, l.Address, l.SuppressedAt.Format(time.RFC3339), l.LiftedBy, l.Why)
		return nil
	}
	enc := json.NewEncoder(stdout)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	if *lifted {
		lifts, err := st.Lifts(ctx, *address, 1000)
		if err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintln(tw, "LIFTED\tBY\tCHANNEL\tADDRESS\tWAS\tWHY")
		}
		for _, l := range lifts {
			if *asJSON {
				if err := enc.Encode(l); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.LiftedAt.Format(time.RFC3339), l.LiftedBy, l.Channel, l.Address, l.Reason, l.Why)
		}
		return nil
	}
	if !*asJSON {
		fmt.Fprintln(tw, "CHANNEL\tADDRESS\tREASON\tSINCE\tDETAIL")
	}
	page := store.SuppressionPage{Address: *address, Limit: 1000}
	for {
		list, err := st.Suppressions(ctx, page)
		if err != nil {
			return err
		}
		for _, s := range list {
			if *asJSON {
				if err := enc.Encode(s); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Channel, s.Address, s.Reason, s.CreatedAt.Format(time.RFC3339), s.Detail)
		}
		if len(list) < page.Limit {
			return nil
		}
		page.AfterChannel, page.AfterAddress = list[len(list)-1].Channel, list[len(list)-1].Address
	}
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
