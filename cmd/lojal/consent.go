package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/evidence"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

const consentUsage = `usage:
  lojal consent export --customer ID [--html]   one customer's consent evidence, as JSON or a page
  lojal consent report [--days N] [--json]      messages sent per legal basis`

// runConsent prints consent evidence: one customer's, for a data-subject
// request or a consumer authority, or how many messages relied on each
// legal basis.
func runConsent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "report") {
		return exitError{code: 2, msg: consentUsage}
	}
	cfg := defaultConfig()
	fs := newFlagSet("consent "+args[0], stderr)
	customer := fs.String("customer", "", "export: the customer's id")
	html := fs.Bool("html", false, "export: print a page a person reads instead of JSON")
	days := fs.Int("days", 30, "report: period to count, ending now")
	asJSON := fs.Bool("json", false, "report: print JSON")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	if args[0] == "export" && *customer == "" {
		return exitError{code: 2, msg: consentUsage + "\n--customer is required"}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "report" {
		return consentReport(ctx, st, *days, *asJSON, stdout)
	}
	cat, err := loadCatalog(cfg.Journeys)
	if err != nil {
		return err
	}
	ev, err := evidence.Build(ctx, st, cat.Rules, *customer, retentionOf(cfg), time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return exitError{code: 1, msg: fmt.Sprintf("lojal consent export: no customer %q and no consent evidence for that id", *customer)}
	}
	if err != nil {
		return err
	}
	if *html {
		return ev.HTML(stdout)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ev)
}

func consentReport(ctx context.Context, st *store.Store, days int, asJSON bool, stdout io.Writer) error {
	to := time.Now()
	from := to.AddDate(0, 0, -days)
	counts, err := st.MessagesPerBasis(ctx, from, to)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"from": from.UTC(), "to": to.UTC(), "counts": counts})
	}
	total := map[policy.Basis]int64{}
	var all int64
	for _, c := range counts {
		total[c.Basis] += c.Count
		all += c.Count
	}
	fmt.Fprintf(stdout, "Messages sent in the last %d days by the legal basis they relied on (%d in all)\n\n", days, all)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BASIS\tMESSAGES")
	for _, b := range []policy.Basis{policy.BasisConsent, policy.BasisSoftOptIn, policy.BasisService, ""} {
		if n, ok := total[b]; ok {
			fmt.Fprintf(tw, "%s\t%d\n", basisName(b), n)
		}
	}
	fmt.Fprintln(tw, "\nBASIS\tCHANNEL\tTOPIC\tMESSAGES")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", basisName(c.Basis), c.Channel, c.Topic, c.Count)
	}
	return tw.Flush()
}

func basisName(b policy.Basis) string {
	switch b {
	case policy.BasisConsent:
		return "consent"
	case policy.BasisSoftOptIn:
		return "soft opt-in"
	case policy.BasisService:
		return "service (no consent needed)"
	}
	return "before the consent ledger"
}
