package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/lojal/lojal/internal/sender"
)

// runSender prints the DNS records the configured sender needs and, where
// DNS answers, checks what is published.
func runSender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return exitError{code: 2, msg: "usage: lojal sender check [--no-dns] [--dmarc-reports ADDRESS]"}
	}
	cfg := defaultConfig()
	fs := newFlagSet("sender check", stderr)
	noDNS := fs.Bool("no-dns", false, "print the records to publish without looking them up")
	reports := fs.String("dmarc-reports", "", "address DMARC aggregate reports go to (default dmarc-reports@<From domain>)")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	sc, err := senderConfig(cfg, *reports)
	if err != nil {
		return err
	}
	var r sender.Resolver
	if !*noDNS {
		r = net.DefaultResolver
	}
	return senderCheck(ctx, stdout, sc, r)
}

func senderConfig(cfg Config, reports string) (sender.Config, error) {
	d, err := loadDKIM(cfg)
	if err != nil {
		return sender.Config{}, err
	}
	sc := sender.Config{From: cfg.MailFrom, ReturnPath: cfg.BounceAddress, DKIM: d, DMARCReports: reports}
	if u, err := url.Parse(cfg.SMTPURL); err == nil {
		sc.Relay = u.Hostname()
	}
	return sc, nil
}

// senderCheck prints the records and, with a resolver, what DNS has. It
// fails (exit status 1) when a record is missing or wrong.
func senderCheck(ctx context.Context, out io.Writer, sc sender.Config, r sender.Resolver) error {
	recs, err := sender.Records(sc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Sending as %s", sc.From)
	if sc.ReturnPath != "" {
		fmt.Fprintf(out, ", bounces to %s", sc.ReturnPath)
	}
	fmt.Fprintf(out, ".\n\nPublish these DNS records:\n\n")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, rec := range recs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%q\n", rec.Kind, rec.Name, rec.Type, rec.Value)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, rec := range recs {
		fmt.Fprintf(out, "  %s: %s\n", rec.Kind, rec.Note)
	}
	if r == nil {
		return nil
	}
	findings, err := sender.Check(ctx, r, sc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWhat DNS publishes now:\n\n")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	var failed, unchecked []string
	for _, f := range findings {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Status, f.Kind, f.Name, f.Detail)
		if f.Failed() {
			failed = append(failed, f.Kind)
		}
		if f.Status == sender.StatusUnchecked {
			unchecked = append(unchecked, f.Kind)
		}
	}
	tw.Flush()
	if len(unchecked) > 0 {
		fmt.Fprintf(out, "\nDNS did not answer for %s: check again where it is reachable.\n", strings.Join(unchecked, ", "))
	}
	if len(failed) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("lojal sender check: %s missing or wrong; mailbox providers will refuse or junk bulk mail until they are fixed",
			strings.Join(failed, ", "))}
	}
	fmt.Fprintln(out, "\nEverything lojal can check from here is in place.")
	return nil
}
