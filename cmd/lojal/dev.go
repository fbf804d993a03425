package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/config"
	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/httpserver"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/studio"
)

// devStack is what `lojal dev` runs: embedded services unless the
// environment names real ones.
type devStack struct {
	pg      *devstack.Postgres
	tmp     *devstack.Temporal
	catcher *mailcatch.Server
	mailDir string
	// removeMail is set when mailDir is a temporary directory of ours.
	removeMail bool
}

func (s *devStack) stop() {
	if s.catcher != nil {
		s.catcher.Close()
	}
	if s.removeMail {
		os.RemoveAll(s.mailDir)
	}
	if s.tmp != nil {
		s.tmp.Stop()
	}
	if s.pg != nil {
		s.pg.Stop()
	}
}

func startDevStack(ctx context.Context, cfg *Config, mailDir string, log *slog.Logger, out io.Writer) (*devStack, error) {
	s := &devStack{}
	if cfg.DatabaseURL == "" {
		fmt.Fprintln(out, "starting a throw-away PostgreSQL cluster ...")
		pg, err := devstack.StartPostgres(ctx, log, devstack.PostgresOptions{})
		if err != nil {
			return s, err
		}
		s.pg, cfg.DatabaseURL = pg, pg.URL
	}
	if os.Getenv("TEMPORAL_ADDRESS") == "" && cfg.TemporalAddress == defaultConfig().TemporalAddress {
		fmt.Fprintln(out, "starting the Temporal dev server ...")
		t, err := devstack.StartTemporal(ctx, log, devstack.TemporalOptions{UI: true})
		if err != nil {
			return s, err
		}
		s.tmp, cfg.TemporalAddress = t, t.Address
	}
	if cfg.SMTPURL == "" {
		dir := mailDir
		if dir == "" {
			// Removed when lojal dev stops, like everything else it
			// started; --mail-dir keeps the messages.
			var err error
			if dir, err = devstack.TempDir("lojal-mail-"); err != nil {
				return s, err
			}
			s.mailDir, s.removeMail = dir, true
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return s, err
		}
		c, err := mailcatch.Start(log, mailcatch.Options{Dir: dir})
		if err != nil {
			return s, err
		}
		s.catcher, s.mailDir, cfg.SMTPURL = c, dir, "smtp://"+c.Addr
	}
	if cfg.LinkKey == "" {
		var b [24]byte
		_, _ = rand.Read(b[:])
		cfg.LinkKey = hex.EncodeToString(b[:])
	}
	if cfg.VAPIDPrivateKey == "" {
		priv, pub, err := channel.GenerateVAPIDKeys()
		if err != nil {
			return s, err
		}
		cfg.VAPIDPrivateKey, cfg.VAPIDPublicKey = priv, pub
	}
	return s, nil
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	cfg.LogLevel = "warn"
	// Links point at the local API over http.
	cfg.DevMode = true
	fs := newFlagSet("dev", stderr)
	exitAfter := fs.Bool("exit-after-report", false, "print the report and stop (for scripts and CI)")
	settle := fs.Duration("settle", 7*time.Second, "how long the ledger must be quiet before the report is printed (longer than the 5s a normal-priority message waits before its first ask)")
	mailDir := fs.String("mail-dir", "", "keep every message the embedded SMTP server receives here, after lojal dev stops (default: a temporary directory, removed on exit)")
	studioAddr := fs.String("studio-addr", "127.0.0.1:0", "where lojal studio listens (loopback; port 0 picks a free one; empty turns it off)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(cfg.Journeys)
	if err != nil {
		return err
	}
	customers, events, err := loadDemo(filepath.Join(cfg.Journeys, "demo"), cat)
	if err != nil {
		return err
	}

	stack, err := startDevStack(ctx, &cfg, *mailDir, log, stdout)
	defer stack.stop()
	if err != nil {
		return err
	}
	if _, err := store.Migrate(ctx, store.Config{URL: cfg.DatabaseURL}); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := dialTemporal(cfg, log)
	if err != nil {
		return err
	}
	defer tc.Close()
	// Replies and bounces come back to the inbound listener: every email
	// carries a reply address at the bounce domain.
	if cfg.BounceAddress == "" {
		cfg.BounceAddress = "bounces@" + messageDomain(cfg.MailFrom)
	}
	mux, email, err := senders(cfg, log)
	if err != nil {
		return err
	}
	defer email.Close()
	// The API and preference centre, so the links in the demo's messages
	// work.
	apiListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if os.Getenv("LOJAL_PUBLIC_URL") == "" {
		cfg.PublicURL = "http://" + apiListener.Addr().String()
	}
	signer, err := links.NewSigner([]byte(cfg.LinkKey), cfg.PublicURL, 0)
	if err != nil {
		return err
	}
	verp, err := newVERP(cfg)
	if err != nil {
		return err
	}
	w := newWorker(tc, workerDeps{Store: st, Catalog: cat, Sender: mux, Links: signer, VERP: verp,
		Domain: email.Domain(), Log: log, StopTimeout: 5 * time.Second, ReorderWindow: cfg.ReorderWindow,
		Webhooks: channel.NewWebhook(egress(cfg), 15*time.Second)})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log, ReorderWindow: cfg.ReorderWindow}
	m := metrics.New()
	// The inbound SMTP listener, as the worker runs it: bounces,
	// complaints, unsubscribes by email and replies.
	inbound, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("inbound smtp: %w", err)
	}
	intake := &bounce.Intake{Store: st, VERP: verp, Log: log, MessageDomain: email.Domain(),
		Topics: func() []string { return cat.Topics() }}
	if replies := newReplies(st, verp, cat, tc, d, email.Domain(), log, m); replies != nil {
		intake.Replies = replies
	}
	go func() {
		if err := intake.ServeSMTP(inbound, bounce.SMTPOptions{}); err != nil {
			log.Error("inbound smtp stopped", "err", err)
		}
	}()
	defer inbound.Close()

	fmt.Fprintf(stdout, "\nlojal dev is running\n")
	fmt.Fprintf(stdout, "  postgres  %s\n", redactHost(cfg.DatabaseURL))
	fmt.Fprintf(stdout, "  temporal  %s", cfg.TemporalAddress)
	if stack.tmp != nil && stack.tmp.UIAddress != "" {
		fmt.Fprintf(stdout, "  (web UI %s)", stack.tmp.UIAddress)
	}
	fmt.Fprintln(stdout)
	if stack.catcher != nil {
		kept := "until lojal dev stops; --mail-dir DIR keeps them"
		if !stack.removeMail {
			kept = "after lojal dev stops"
		}
		fmt.Fprintf(stdout, "  smtp      %s  (every message is kept in %s, %s)\n", stack.catcher.Addr, stack.mailDir, kept)
	} else {
		fmt.Fprintf(stdout, "  smtp      %s\n", redactHost(cfg.SMTPURL))
	}
	fmt.Fprintf(stdout, "  inbound   %s  (SMTP: bounces, complaints, unsubscribes and replies to reply+…@%s)\n",
		inbound.Addr(), messageDomain(cfg.BounceAddress))
	fmt.Fprintf(stdout, "  journeys  %d from %s: %s\n", len(cat.Journeys), cfg.Journeys, journeyIDs(cat))
	if *studioAddr != "" {
		url, err := startDevStudio(ctx, cfg.Journeys, *studioAddr, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  studio    %s  (journeys as diagrams, messages as customers see them, simulate, diff)\n", url)
	}

	start := time.Now().Add(-time.Second)
	token, err := devToken(ctx, st)
	if err != nil {
		return err
	}
	apiSrv := devServer((&api.Server{Store: st, Dispatcher: d, Catalog: cat, Links: signer, Metrics: m, Log: log,
		Bounces: &bounce.Intake{Store: st, VERP: verp, Log: log}, PushEgress: egress(cfg),
		Replies: newReplies(st, verp, cat, tc, d, email.Domain(), log, m)}).Handler())
	go func() { _ = apiSrv.Serve(apiListener) }()
	defer apiSrv.Close()
	// Like `lojal worker`: the sweeper and the schedulers of scheduled
	// journeys run as Temporal workflows.
	go keepSchedules(ctx, tc, cat, log)
	fmt.Fprintf(stdout, "  api       %s  (bearer token %s)\n\n", cfg.PublicURL, token)
	for _, c := range customers {
		if _, err := d.Customer(ctx, c); err != nil {
			return fmt.Errorf("demo customer %s: %w", c.ID, err)
		}
	}
	started, dups := 0, 0
	for _, e := range events {
		res, err := d.Event(ctx, e)
		if err != nil {
			return fmt.Errorf("demo event %s: %w", e.ID, err)
		}
		if res.Duplicate {
			dups++
		}
		for _, o := range res.Journeys {
			if o.Action == "started" {
				started++
			}
		}
	}
	fmt.Fprintf(stdout, "loaded %d demo customers and sent %d events (%d redelivered on purpose and ignored); %d journey runs started\n",
		len(customers), len(events), dups, started)
	fmt.Fprintf(stdout, "waiting for the worker to settle ...\n\n")
	if err := waitQuiet(ctx, st, start, *settle, 90*time.Second); err != nil {
		return err
	}
	who := newDirectory(st, customers)
	if err := printReport(ctx, stdout, st, cat, who, start); err != nil {
		return err
	}
	demo := &replyDemo{st: st, d: d, cat: cat, verp: verp, inbound: inbound.Addr().String(), catcher: stack.catcher,
		api: "http://" + apiListener.Addr().String(), token: token}
	if err := demo.run(ctx, stdout); err != nil {
		// The demo shows the loop; lojal dev itself still runs without it.
		fmt.Fprintf(stdout, "  (the reply demo stopped: %v)\n", err)
	}
	fmt.Fprintln(stdout)
	if len(customers) > 0 {
		fmt.Fprintf(stdout, "explain any customer's messages (while lojal dev runs):\n  %s\n", whyCommand(cfg.DatabaseURL, stack.pg != nil, selfPath(), customers[0].ID))
	}
	if len(customers) > 0 {
		_, prefs := signer.For(customers[0].ID, "", "", time.Now())
		fmt.Fprintf(stdout, "\n%s's preference centre: %s\n", customerName(customers[0]), prefs)
		fmt.Fprintf(stdout, "try: curl -H 'Authorization: Bearer %s' %s/v1/customers/%s/history\n", token, cfg.PublicURL, customers[0].ID)
	}
	if *exitAfter {
		return nil
	}
	fmt.Fprintf(stdout, "\nstill running: deferred messages go out when the policy allows. Ctrl-C stops everything.\n")
	return followSends(ctx, stdout, st, cat, who, time.Now())
}

// devServer serves the demo API with the same limits as the real one: it
// listens on loopback, but a browser or script may still hang on to it.
func devServer(h http.Handler) *http.Server { return httpserver.New("", h, httpserver.API) }

// devToken creates a bearer token for the demo API.
func devToken(ctx context.Context, st *store.Store) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "lj_dev_" + hex.EncodeToString(b[:])
	_, err := st.CreateToken(ctx, "lojal dev", token)
	return token, err
}

// waitQuiet waits until the ledger has not changed for quiet, or until max.
func waitQuiet(ctx context.Context, st *store.Store, since time.Time, quiet, max time.Duration) error {
	deadline := time.Now().Add(max)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		ds, err := st.DecisionsSince(ctx, since)
		if err != nil {
			return err
		}
		n := len(ds)
		for _, d := range ds {
			if d.Status == "sent" {
				n += 1000
			}
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if n > 0 && time.Since(lastChange) >= quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// directory finds the customers the report names: the demo's, and any
// created through the API while lojal dev runs, read from the store.
type directory struct {
	known  map[string]journey.Customer
	lookup func(ctx context.Context, id string) (journey.Customer, error)
}

func newDirectory(st *store.Store, demo []journey.Customer) *directory {
	d := &directory{known: map[string]journey.Customer{}, lookup: st.Customer}
	for _, c := range demo {
		d.known[c.ID] = c
	}
	return d
}

// get returns a customer, or one with only the id when it cannot be read.
func (d *directory) get(ctx context.Context, id string) journey.Customer {
	if c, ok := d.known[id]; ok {
		return c
	}
	c, err := d.lookup(ctx, id)
	if err != nil {
		return journey.Customer{ID: id}
	}
	d.known[id] = c
	return c
}

func printReport(ctx context.Context, out io.Writer, st *store.Store, cat *catalog.Catalog, who *directory, since time.Time) error {
	sent, err := st.SentSince(ctx, since)
	if err != nil {
		return err
	}
	decisions, err := st.DecisionsSince(ctx, since)
	if err != nil {
		return err
	}
	writeReport(out, sent, decisions, func(id string) journey.Customer { return who.get(ctx, id) }, cat.Rules.Location)
	return nil
}

// writeReport prints what was sent and what the policy held back, by
// customer, each time in the customer's own zone, named.
func writeReport(out io.Writer, sent []store.Sent, decisions []store.Decision, who func(string) journey.Customer, defaultLoc *time.Location) {
	fmt.Fprintln(out, "Messages sent (in each customer's local time)")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CUSTOMER\tLOCALE\tJOURNEY\tCHANNEL\tSENT\tSUBJECT")
	reached := map[string]bool{}
	for _, m := range sent {
		c := who(m.CustomerID)
		reached[m.CustomerID] = true
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", customerName(c), m.Locale, m.JourneyID, m.Channel, localTime(m.SentAt, c, defaultLoc), m.Subject)
	}
	if len(sent) == 0 {
		fmt.Fprintln(tw, "  (none yet)")
	}
	tw.Flush()

	// The latest decision per message, for those not sent, grouped by
	// customer in the order they were first held.
	latest := map[string]store.Decision{}
	var order []string
	for _, d := range decisions {
		k := d.CustomerID + "|" + d.JourneyID + "|" + d.StepID
		if _, ok := latest[k]; !ok {
			order = append(order, k)
		}
		latest[k] = d
	}
	held := map[string][]store.Decision{}
	var customers []string
	deferred, suppressed := 0, 0
	for _, k := range order {
		d := latest[k]
		switch d.Decision {
		case "defer":
			deferred++
		case "suppress":
			suppressed++
		default:
			continue
		}
		if _, ok := held[d.CustomerID]; !ok {
			customers = append(customers, d.CustomerID)
		}
		held[d.CustomerID] = append(held[d.CustomerID], d)
	}
	fmt.Fprintln(out, "\nHeld back by the relationship policy")
	if len(customers) == 0 {
		fmt.Fprintln(out, "  (nothing)")
	}
	for _, id := range customers {
		c := who(id)
		loc := customerLoc(c, defaultLoc)
		fmt.Fprintf(out, "  %s, %s\n", customerName(c), journey.ZoneName(loc, time.Now()))
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		for _, d := range held[id] {
			what := "suppressed"
			if d.Decision == "defer" {
				what = "deferred"
				if d.DeferUntil != nil {
					what += " until " + journey.LocalTime(*d.DeferUntil, loc)
				}
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", d.JourneyID, d.Channel, what, explain(d.Reason))
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "\n%d customers received a message: %d sent, %d waiting, %d suppressed.\n",
		len(reached), len(sent), deferred, suppressed)
}

func followSends(ctx context.Context, out io.Writer, st *store.Store, cat *catalog.Catalog, who *directory, since time.Time) error {
	seen := 0
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping ...")
			return nil
		case <-time.After(5 * time.Second):
		}
		sent, err := st.SentSince(ctx, since)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, m := range sent[seen:] {
			c := who.get(ctx, m.CustomerID)
			fmt.Fprintf(out, "sent %s/%s to %s at %s: %s\n", m.JourneyID, m.StepID, customerName(c), localTime(m.SentAt, c, cat.Rules.Location), m.Subject)
		}
		seen = len(sent)
	}
}

func explain(reason string) string { return policy.Explain(policy.Reason(reason)) }

func customerName(c journey.Customer) string {
	fn, _ := c.Attributes["first_name"].(string)
	ln, _ := c.Attributes["last_name"].(string)
	name := strings.TrimSpace(fn + " " + ln)
	if name == "" {
		return c.ID
	}
	return fmt.Sprintf("%s (%s)", name, c.ID)
}

// customerLoc is a customer's zone, or the policy's default.
func customerLoc(c journey.Customer, defaultLoc *time.Location) *time.Location {
	if c.Timezone != "" {
		if l, err := journey.LoadLocation(c.Timezone); err == nil {
			return l
		}
	}
	if defaultLoc == nil {
		return time.UTC
	}
	return defaultLoc
}

// localTime writes t in the customer's zone, the zone named:
// "Sun 01 Mar 07:00 UTC-3 (America/Sao_Paulo)".
func localTime(t time.Time, c journey.Customer, defaultLoc *time.Location) string {
	loc := customerLoc(c, defaultLoc)
	s := journey.LocalTime(t, loc)
	if loc != time.UTC && loc.String() != "UTC" {
		s += " (" + loc.String() + ")"
	}
	return s
}

// whyCommand is a command line that explains a customer while lojal dev
// runs: with the embedded database's URL (it has no password) or, for a
// database of the user's own, their DATABASE_URL.
func whyCommand(dbURL string, embedded bool, self, customer string) string {
	if embedded {
		return fmt.Sprintf("DATABASE_URL='%s' %s why --customer %s", dbURL, self, customer)
	}
	return fmt.Sprintf("%s why --customer %s   (with your DATABASE_URL set)", self, customer)
}

// selfPath is how to run this binary from the current directory:
// bin/lojal after make dev, the path given otherwise.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "lojal"
	}
	return relativeTo(exe, ".")
}

func relativeTo(exe, dir string) string {
	wd, err := filepath.Abs(dir)
	if err != nil {
		return exe
	}
	rel, err := filepath.Rel(wd, exe)
	if err != nil || strings.HasPrefix(rel, "..") {
		if _, err := os.Stat(filepath.Join(wd, "bin", "lojal")); err == nil {
			return "bin/lojal"
		}
		return exe
	}
	if !strings.Contains(rel, string(filepath.Separator)) {
		return "." + string(filepath.Separator) + rel
	}
	return rel
}

// startDevStudio serves lojal studio for the demo's journeys until ctx
// ends and returns its URL.
func startDevStudio(ctx context.Context, dir, addr string, log *slog.Logger) (string, error) {
	if err := studio.CheckAddr(addr); err != nil {
		return "", err
	}
	s, err := studio.New(studio.Options{Dir: dir, Log: log})
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("studio: %w", err)
	}
	go func() {
		if err := serveStudio(ctx, s, ln); err != nil {
			log.Error("studio stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

func journeyIDs(cat *catalog.Catalog) string {
	ids := make([]string, len(cat.Journeys))
	for i, j := range cat.Journeys {
		ids[i] = j.ID
	}
	return strings.Join(ids, ", ")
}

// redactHost shows where a service is: a URL's host and what follows, or
// a key=value DSN with its secrets masked.
func redactHost(u string) string {
	if !strings.Contains(u, "://") {
		return config.MaskURL(u)
	}
	u = config.MaskURL(u)
	if i := strings.LastIndex(u, "@"); i >= 0 {
		return u[i+1:]
	}
	return strings.TrimPrefix(u, "smtp://")
}

// loadDemo reads demo customers and events. Event times are moved so the
// first event happens now; timestamp fields in event data move with them,
// so "renews in ten days" stays ten days ahead.
func loadDemo(dir string, cat *catalog.Catalog) ([]journey.Customer, []journey.Event, error) {
	b, err := os.ReadFile(filepath.Join(dir, "customers.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("demo customers: %w", err)
	}
	var customers []journey.Customer
	if err := json.Unmarshal(b, &customers); err != nil {
		return nil, nil, fmt.Errorf("demo customers: %w", err)
	}
	events, err := readEvents(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	if len(events) > 0 {
		shift := time.Since(events[0].At).Truncate(time.Second)
		for i := range events {
			events[i] = shiftEvent(events[i], shift, cat.Schema)
		}
	}
	return customers, events, nil
}

func shiftEvent(e journey.Event, d time.Duration, s *journey.Schema) journey.Event {
	e.At = e.At.Add(d)
	data := make(map[string]any, len(e.Data))
	for k, v := range e.Data {
		if s.Events[e.Type][k] == journey.Timestamp {
			if str, ok := v.(string); ok {
				if t, err := time.Parse(time.RFC3339, str); err == nil {
					v = t.Add(d).Format(time.RFC3339)
				}
			}
		}
		data[k] = v
	}
	e.Data = data
	return e
}

// readEvents reads a .jsonl file of events, one per line, naming the line
// of any that does not parse.
func readEvents(path string) ([]journey.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer f.Close()
	var out []journey.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var e journey.Event
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.SortStableFunc(out, func(a, b journey.Event) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	return out, nil
}
