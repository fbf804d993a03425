// Package sender says which DNS records a sending domain needs before
// mailbox providers accept lojal's email in bulk — DKIM, SPF and DMARC, as
// Gmail and Yahoo have required since 2024 and Outlook since May 2025 —
// and checks what the DNS publishes.
package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"

	"github.com/lojal/lojal/internal/channel"
)

// Resolver is the part of *net.Resolver the check uses; tests give a stub.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Config is what lojal sends as.
type Config struct {
	// From is the From address (LOJAL_MAIL_FROM; "Name <address>" is fine).
	From string
	// ReturnPath is the envelope sender's mailbox (LOJAL_BOUNCE_ADDRESS);
	// empty: the From address.
	ReturnPath string
	// DKIM signs the mail; nil when lojal does not sign.
	DKIM *channel.DKIM
	// Relay is the SMTP relay's host (from SMTP_URL), for the SPF hint.
	Relay string
	// DMARCReports is the address aggregate DMARC reports go to; empty:
	// dmarc-reports@<From domain>.
	DMARCReports string
}

// Kinds of record.
const (
	KindDKIM  = "DKIM"
	KindSPF   = "SPF"
	KindDMARC = "DMARC"
	KindMX    = "MX"
)

// Record is one DNS record to publish.
type Record struct {
	Kind string
	// Name is the DNS name it goes at.
	Name string
	// Type is TXT or MX.
	Type string
	// Value is what to publish; <...> marks a part only you know.
	Value string
	// Note says what to fill in or why.
	Note string
}

// Finding is what the DNS publishes for one record.
type Finding struct {
	Record
	// Status is StatusOK, StatusMissing, StatusWrong, StatusWarning or
	// StatusUnchecked.
	Status string
	Detail string
}

// Statuses of a finding. Missing and wrong records stop mail from being
// accepted; a warning is worth fixing; unchecked means DNS did not answer.
const (
	StatusOK        = "ok"
	StatusMissing   = "MISSING"
	StatusWrong     = "WRONG"
	StatusWarning   = "warning"
	StatusUnchecked = "unchecked"
)

// Failed reports whether a finding keeps mail from being accepted.
func (f Finding) Failed() bool { return f.Status == StatusMissing || f.Status == StatusWrong }

type domains struct {
	from, fromAddr, envelope string
}

func parse(cfg Config) (domains, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return domains{}, fmt.Errorf("LOJAL_MAIL_FROM %q: %w", cfg.From, err)
	}
	d := domains{fromAddr: from.Address, from: domainOf(from.Address), envelope: domainOf(from.Address)}
	if cfg.ReturnPath != "" {
		rp, err := mail.ParseAddress(cfg.ReturnPath)
		if err != nil {
			return domains{}, fmt.Errorf("LOJAL_BOUNCE_ADDRESS %q: %w", cfg.ReturnPath, err)
		}
		d.envelope = domainOf(rp.Address)
	}
	if d.from == "" {
		return domains{}, fmt.Errorf("LOJAL_MAIL_FROM %q has no domain", cfg.From)
	}
	return d, nil
}

func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

// Records lists the DNS records to publish for cfg.
func Records(cfg Config) ([]Record, error) {
	d, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	var out []Record
	if cfg.DKIM != nil {
		txt, err := cfg.DKIM.Record()
		if err != nil {
			return nil, err
		}
		out = append(out, Record{Kind: KindDKIM, Name: cfg.DKIM.RecordName(), Type: "TXT", Value: txt,
			Note: "the public half of LOJAL_DKIM_KEY_FILE; a TXT string holds 255 characters, so split a longer value into several quoted strings (DNS joins them)"})
	} else {
		out = append(out, Record{Kind: KindDKIM, Name: "<selector>._domainkey." + d.from, Type: "TXT", Value: "v=DKIM1; k=rsa; p=<public key>",
			Note: "lojal does not sign yet: make a key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem), " +
				"set LOJAL_DKIM_KEY_FILE and LOJAL_DKIM_SELECTOR, and run this again for the exact record"})
	}
	spf := Record{Kind: KindSPF, Name: d.envelope, Type: "TXT", Value: "v=spf1 include:<your SMTP relay's SPF domain> -all",
		Note: "SPF is checked for the envelope sender's domain (the Return-Path); name every server that sends for it, with the include: " +
			"your relay's provider documents, or ip4:/ip6: with its addresses"}
	if cfg.Relay != "" {
		spf.Note += "; SMTP_URL sends through " + cfg.Relay
	}
	out = append(out, spf)
	rua := cfg.DMARCReports
	if rua == "" {
		rua = "dmarc-reports@" + d.from
	}
	out = append(out, Record{Kind: KindDMARC, Name: "_dmarc." + d.from, Type: "TXT", Value: "v=DMARC1; p=none; rua=mailto:" + rua,
		Note: "p=none is the least the providers accept; aggregate reports to rua show who sends as your domain. Move to quarantine, then reject, once the reports are clean"})
	if cfg.ReturnPath != "" {
		out = append(out, Record{Kind: KindMX, Name: d.envelope, Type: "MX", Value: "10 <the host where lojal worker listens on LOJAL_BOUNCE_SMTP_ADDR>",
			Note: "bounces, complaints and unsubscribes by email come back to " + cfg.ReturnPath + "'s domain and must reach the worker's intake"})
	}
	return out, nil
}

// Check looks each record up and says what is missing or wrong. DNS that
// does not answer makes a record unchecked, not missing.
func Check(ctx context.Context, r Resolver, cfg Config) ([]Finding, error) {
	recs, err := Records(cfg)
	if err != nil {
		return nil, err
	}
	d, _ := parse(cfg)
	out := make([]Finding, 0, len(recs))
	for _, rec := range recs {
		f := Finding{Record: rec}
		switch rec.Kind {
		case KindDKIM:
			f.Status, f.Detail = checkDKIM(ctx, r, cfg, rec)
		case KindSPF:
			f.Status, f.Detail = checkSPF(ctx, r, rec, d)
		case KindDMARC:
			f.Status, f.Detail = checkDMARC(ctx, r, d)
		case KindMX:
			f.Status, f.Detail = checkMX(ctx, r, rec)
		}
		out = append(out, f)
	}
	return out, nil
}

// lookup returns the TXT records at name; notFound is true when the name
// or its TXT records do not exist, and err is set when DNS did not answer.
func lookup(ctx context.Context, r Resolver, name string) (txts []string, err error) {
	txts, err = r.LookupTXT(ctx, name)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, nil
	}
	return txts, err
}

func unchecked(err error) (string, string) {
	return StatusUnchecked, "DNS did not answer: " + err.Error()
}

func checkDKIM(ctx context.Context, r Resolver, cfg Config, rec Record) (string, string) {
	if cfg.DKIM == nil {
		return StatusMissing, "lojal does not DKIM-sign its mail; Gmail, Yahoo and Outlook require it of bulk senders"
	}
	txts, err := lookup(ctx, r, rec.Name)
	if err != nil {
		return unchecked(err)
	}
	want := tagValue(rec.Value, "p")
	var found []string
	for _, t := range txts {
		if p := tagValue(t, "p"); p != "" || strings.Contains(t, "DKIM1") {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return StatusMissing, "no DKIM key at " + rec.Name + ": receivers cannot verify lojal's signature"
	case len(found) > 1:
		return StatusWrong, fmt.Sprintf("%d DKIM records at %s: publish one", len(found), rec.Name)
	case found[0] == "":
		return StatusWrong, "the key at " + rec.Name + " is empty (revoked)"
	case found[0] != want:
		return StatusWrong, "the key at " + rec.Name + " is not the public half of LOJAL_DKIM_KEY_FILE: signatures will fail"
	}
	return StatusOK, "publishes lojal's key"
}

func checkSPF(ctx context.Context, r Resolver, rec Record, d domains) (string, string) {
	txts, err := lookup(ctx, r, rec.Name)
	if err != nil {
		return unchecked(err)
	}
	var spf []string
	for _, t := range txts {
		if f := strings.Fields(strings.ToLower(t)); len(f) > 0 && f[0] == "v=spf1" {
			spf = append(spf, strings.ToLower(t))
		}
	}
	switch {
	case len(spf) == 0:
		return StatusMissing, "no SPF record (v=spf1) at " + rec.Name
	case len(spf) > 1:
		return StatusWrong, fmt.Sprintf("%d SPF records at %s: receivers treat that as an error (RFC 7208 section 4.5); merge them into one", len(spf), rec.Name)
	}
	fields := strings.Fields(spf[0])
	last := fields[len(fields)-1]
	detail := "one SPF record; lojal cannot tell from here whether it names your relay's addresses: send a message to a Gmail address and look for spf=pass in Show original"
	switch {
	case last == "+all" || last == "all":
		return StatusWrong, "the SPF record ends in +all: it lets anyone send as " + rec.Name
	case last != "-all" && last != "~all" && !strings.HasPrefix(last, "redirect="):
		return StatusWarning, "the SPF record does not end in -all or ~all, so it says nothing of other senders; " + detail
	case !aligned(d.envelope, d.from):
		return StatusWarning, fmt.Sprintf("the envelope domain %s is not %s or a domain under it, so SPF does not count for DMARC; DKIM has to", d.envelope, d.from)
	}
	return StatusOK, detail
}

func checkDMARC(ctx context.Context, r Resolver, d domains) (string, string) {
	// Without the public suffix list, look at the From domain and then its
	// parents down to two labels, as the organizational-domain fallback
	// of RFC 7489 section 6.6.3 would find them.
	labels := strings.Split(d.from, ".")
	for i := 0; len(labels)-i >= 2; i++ {
		name := "_dmarc." + strings.Join(labels[i:], ".")
		txts, err := lookup(ctx, r, name)
		if err != nil {
			return unchecked(err)
		}
		var recs []string
		for _, t := range txts {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(t)), "V=DMARC1") {
				recs = append(recs, t)
			}
		}
		if len(recs) == 0 {
			continue
		}
		if len(recs) > 1 {
			return StatusWrong, fmt.Sprintf("%d DMARC records at %s: receivers ignore them all (RFC 7489 section 6.6.3)", len(recs), name)
		}
		rec, err := dmarc.Parse(recs[0])
		if err != nil {
			return StatusWrong, fmt.Sprintf("the DMARC record at %s does not parse: %v", name, err)
		}
		where := ""
		if i > 0 {
			where = " (found at the parent domain, " + name + ")"
		}
		if len(rec.ReportURIAggregate) == 0 {
			return StatusWarning, fmt.Sprintf("p=%s%s but no rua= reporting address: add one to see who sends as %s", rec.Policy, where, d.from)
		}
		return StatusOK, fmt.Sprintf("p=%s, reports to %s%s", rec.Policy, strings.Join(rec.ReportURIAggregate, ", "), where)
	}
	return StatusMissing, "no DMARC record at _dmarc." + d.from + ": Gmail and Yahoo reject bulk mail without one (p=none is enough)"
}

func checkMX(ctx context.Context, r Resolver, rec Record) (string, string) {
	mxs, err := r.LookupMX(ctx, rec.Name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound, err == nil && len(mxs) == 0:
		return StatusMissing, "no MX for " + rec.Name + ": bounces, complaints and unsubscribes by email cannot come back"
	case err != nil:
		return unchecked(err)
	}
	hosts := make([]string, len(mxs))
	for i, mx := range mxs {
		hosts[i] = strings.TrimSuffix(mx.Host, ".")
	}
	return StatusOK, "mail for " + rec.Name + " goes to " + strings.Join(hosts, ", ") + "; make sure that is the worker's intake"
}

// tagValue returns a tag's value in a tag=value; list, whitespace removed.
func tagValue(list, tag string) string {
	for _, kv := range strings.Split(list, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// aligned is DMARC's relaxed alignment, approximated without the public
// suffix list: one domain is the other or under it.
func aligned(a, b string) bool {
	return a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
}
