package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/deploy"
	"github.com/lojal/lojal/internal/gitfs"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/simulate"
	"github.com/lojal/lojal/workflows"
)

func runJourneys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return exitError{code: 2, msg: journeysUsage}
	}
	switch args[0] {
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(args[1:], stdout, stderr)
	case "diff":
		return runDiff(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrateRuns(ctx, args[1:], stdout, stderr)
	case "render":
		return runRender(args[1:], stdout, stderr)
	case "deploy":
		return runDeploy(ctx, args[1:], stdout, stderr)
	case "bundle":
		return runBundle(args[1:], stdout, stderr)
	}
	return exitError{code: 2, msg: fmt.Sprintf("lojal journeys: unknown command %q\n%s", args[0], journeysUsage)}
}

const journeysUsage = "usage: lojal journeys validate|simulate|render|diff|deploy|migrate|bundle ..."

// runValidate validates journeys directories or single journey files (with
// the schema, policy and templates of the directory they are in). Every
// error is printed as file:line:col: message.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("journeys validate", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return exitError{code: 2, msg: "usage: lojal journeys validate PATH..."}
	}
	var failed bool
	journeys, dirs := 0, 0
	// Single files are grouped by directory so each directory loads once.
	files := map[string][]string{}
	var order []string
	for _, p := range fs.Args() {
		info, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", p, errors.Unwrap(err))
			failed = true
			continue
		}
		if info.IsDir() {
			c, err := catalog.Load(os.DirFS(p), filepath.Clean(p))
			if err != nil {
				fmt.Fprintln(stdout, err)
				failed = true
				continue
			}
			journeys += len(c.Journeys)
			dirs++
			continue
		}
		dir := filepath.Dir(p)
		if _, ok := files[dir]; !ok {
			order = append(order, dir)
		}
		files[dir] = append(files[dir], filepath.Base(p))
	}
	for _, dir := range order {
		c, err := catalog.LoadFiles(os.DirFS(dir), filepath.Clean(dir), files[dir])
		if err != nil {
			fmt.Fprintln(stdout, err)
			failed = true
			continue
		}
		journeys += len(c.Journeys)
	}
	if failed {
		return exitError{code: 1}
	}
	places := dirs + len(order)
	fmt.Fprintf(stdout, "ok: %d journeys valid in %d %s (schema, policy, conditions, templates)\n", journeys, places,
		map[bool]string{true: "place", false: "places"}[places == 1])
	return nil
}

// journeyFromFile loads one journey file with the schema, policy and
// templates of its directory.
func journeyFromFile(path string) (*catalog.Catalog, *journey.Journey, error) {
	dir := filepath.Dir(path)
	c, err := catalog.LoadFiles(os.DirFS(dir), filepath.Clean(dir), []string{filepath.Base(path)})
	if err != nil {
		return nil, nil, err
	}
	if len(c.Journeys) != 1 {
		return nil, nil, fmt.Errorf("%s: not a journey file", path)
	}
	return c, c.Journeys[0], nil
}

func readCustomer(path string) (journey.Customer, error) {
	var c journey.Customer
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// runSimulate is a dry run of one journey for one customer in virtual time.
func runSimulate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("journeys simulate", stderr)
	file := fs.String("journey", "", "journey file (schema.yaml, policy.yaml and templates/ are read from its directory)")
	custFile := fs.String("customer", "", "customer JSON file")
	eventsFile := fs.String("events", "", "events, one JSON object per line")
	days := fs.Int("days", 60, "how many days of virtual time to simulate")
	start := fs.String("start", "", "virtual start time, RFC 3339 (default: the first event's time)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *custFile == "" {
		return exitError{code: 2, msg: "usage: lojal journeys simulate --journey FILE --customer FILE.json [--events FILE.jsonl] [--days N] [--json]"}
	}
	cat, j, err := journeyFromFile(*file)
	if err != nil {
		return err
	}
	cust, err := readCustomer(*custFile)
	if err != nil {
		return err
	}
	var events []journey.Event
	if *eventsFile != "" {
		if events, err = readEvents(*eventsFile); err != nil {
			return err
		}
	}
	opts := simulate.Options{Journey: j, Rules: *cat.Rules, Templates: cat.Templates, Customer: cust, Events: events, Days: *days}
	if *start != "" {
		if opts.Start, err = time.Parse(time.RFC3339, *start); err != nil {
			return fmt.Errorf("--start: %w", err)
		}
	}
	// A run that fails still shows its timeline up to the failure.
	lines, runErr := simulate.Run(opts)
	if runErr != nil && len(lines) == 0 {
		return runErr
	}
	if runErr != nil {
		runErr = exitError{code: 1, msg: "simulation stopped: " + runErr.Error()}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return runErr
	}
	loc := j.CustomerLocation(cust)
	fmt.Fprintf(stdout, "%s (version %s) for %s, times in %s\n\n", j.ID, j.Version, customerName(cust), loc)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, l := range lines {
		what := l.Kind
		switch l.Kind {
		case "wait", "wait_for":
			what = fmt.Sprintf("%s until %s", l.Kind, l.Until.In(loc).Format("Mon 02 Jan 15:04"))
			if l.Event != "" {
				what += " or " + l.Event
			}
		case "send":
			what = fmt.Sprintf("send %s %s: %s", l.Channel, l.Template, l.Decision)
			if l.Until != nil {
				what += " until " + l.Until.In(loc).Format("Mon 02 Jan 15:04")
			}
			if l.Reason != "ok" {
				what += " (" + explain(l.Reason) + ")"
			}
			if l.Facts != "" {
				what += " [" + l.Facts + "]"
			}
			if l.Subject != "" {
				what += fmt.Sprintf(" [%s] %q", l.Locale, l.Subject)
			}
		case "event":
			what = "event " + l.Event
		case "done":
			what = "done: " + l.Reason
		}
		if l.Note != "" {
			what += " - " + l.Note
		}
		step := l.Step
		if l.Key != "" {
			step = "[" + l.Key + "] " + step
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.At.In(loc).Format("Mon 02 Jan 15:04 MST"), step, what)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return runErr
}

// runDiff shows what changes when OLD is replaced by NEW: two journey
// files, two journeys directories, or directories at git revisions
// (HEAD:journeys). Like diff(1) it exits 0 when nothing changed, 1 when
// something did and 2 when it could not compare.
func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("journeys diff", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return exitError{code: 2, msg: "usage: lojal journeys diff OLD NEW (journey files, journeys directories, or REV:DIR such as HEAD:journeys)"}
	}
	old, err := diffSide(ctx, fs.Arg(0))
	if err != nil {
		return exitError{code: 2, msg: "lojal journeys diff: " + err.Error()}
	}
	nw, err := diffSide(ctx, fs.Arg(1))
	if err != nil {
		return exitError{code: 2, msg: "lojal journeys diff: " + err.Error()}
	}
	d := catalog.Compare(old, nw)
	if len(old.Journeys) == 1 && len(nw.Journeys) == 1 && old.Journeys[0].ID != nw.Journeys[0].ID {
		// Two files: compare them whatever their ids.
		o, n := old.Journeys[0], nw.Journeys[0]
		d.Journeys = []catalog.JourneyDiff{{ID: n.ID, Status: "changed", OldVersion: o.Version, NewVersion: n.Version, Changes: journey.Diff(o, n)}}
	}
	if d.Empty() {
		fmt.Fprintln(stdout, "no changes")
		return nil
	}
	for _, l := range d.Lines() {
		fmt.Fprintln(stdout, l)
	}
	breaks := false
	for _, j := range d.Journeys {
		for _, c := range j.Changes {
			breaks = breaks || c.Breaks
		}
	}
	if len(d.Journeys) > 0 {
		fmt.Fprintln(stdout, "\nCustomers already in a journey keep its old version until they finish; new entrants get the new one.")
		if breaks {
			fmt.Fprintln(stdout, "Steps marked ! do not exist in the new version: to move runs waiting there, map them with")
			fmt.Fprintln(stdout, "  lojal journeys migrate --journey NEW.yaml --map OLD-STEP=NEW-STEP [--apply]")
		} else {
			fmt.Fprintln(stdout, "Every step of the old versions exists in the new ones: runs can be moved with")
			fmt.Fprintln(stdout, "  lojal journeys migrate --journey NEW.yaml [--apply]")
		}
	}
	return exitError{code: 1}
}

// diffSide reads one side of a diff: a journey file (with the schema,
// policy and templates of its directory), a directory, or REV:DIR. A side
// that does not validate is still compared: what parses is shown.
func diffSide(ctx context.Context, arg string) (*catalog.Catalog, error) {
	if gitfs.IsSpec(arg) {
		fsys, err := gitfs.Open(ctx, ".", arg)
		if err != nil {
			return nil, err
		}
		c, _ := catalog.Inspect(fsys, arg)
		return c, nil
	}
	info, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		c, _ := catalog.Inspect(os.DirFS(arg), filepath.Clean(arg))
		return c, nil
	}
	cat, _, err := journeyFromFile(arg)
	return cat, err
}

// runMigrateRuns previews, and with --apply performs, moving a journey's
// unfinished runs to the version in FILE.
func runMigrateRuns(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("journeys migrate", stderr)
	file := fs.String("journey", "", "the new version of the journey file")
	mapping := fs.String("map", "", "step renames, OLD=NEW[,OLD=NEW...]")
	apply := fs.Bool("apply", false, "signal the runs (without it, only show what would move)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if *file == "" {
		return exitError{code: 2, msg: "usage: lojal journeys migrate --journey FILE [--map OLD=NEW,...] [--apply]"}
	}
	_, j, err := journeyFromFile(*file)
	if err != nil {
		return err
	}
	steps := map[string]string{}
	for _, pair := range strings.Split(*mapping, ",") {
		if pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--map %q: want OLD=NEW", pair)
		}
		if _, exists := j.Step(to); !exists {
			return fmt.Errorf("--map %s: the new version has no step %q", pair, to)
		}
		steps[from] = to
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
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
	runs, err := st.OpenRuns(ctx, j.ID)
	if err != nil {
		return err
	}
	sig := workflows.MigrateSignal{Bundle: j.Bundle(), Version: j.Version, Steps: steps}
	moved, refused := 0, 0
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tVERSION\tSTEP\tPLAN")
	for _, r := range runs {
		v, err := tc.QueryWorkflow(ctx, r.WorkflowID, "", workflows.QueryState)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t?\tskip: %v\n", r.WorkflowID, r.Version, err)
			continue
		}
		var info workflows.RunInfo
		if err := v.Get(&info); err != nil {
			return err
		}
		cur := info.State.Current.Step
		target := cur
		if to, ok := steps[cur]; ok {
			target = to
		}
		plan := "move to " + target
		if _, ok := j.Step(target); !ok || info.Version == j.Version {
			plan, refused = "stays: no step "+target+" in the new version (add --map "+cur+"=NEW)", refused+1
			if info.Version == j.Version {
				plan = "already on this version"
			}
		} else {
			moved++
			if *apply {
				if err := tc.SignalWorkflow(ctx, r.WorkflowID, "", workflows.SignalMigrate, sig); err != nil {
					plan = "signal failed: " + err.Error()
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.WorkflowID, info.Version, cur, plan)
	}
	tw.Flush()
	verb := "would move"
	if *apply {
		verb = "asked to move"
	}
	fmt.Fprintf(stdout, "\n%d runs %s to version %s; %d stay on their version.\n", moved, verb, j.Version, refused)
	return nil
}

// runRender previews a message: the locale the fallback chain picks, the
// headers a reader sees, the text and HTML parts (or the notification), as
// the customer reads them; with --raw, exactly as sent (MIME, or the push
// payload). Nothing is sent.
func runRender(args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("journeys render", stderr)
	dir := fs.String("dir", "journeys", "journeys directory")
	tmpl := fs.String("template", "", "template name (a directory under templates/)")
	custFile := fs.String("customer", "", "customer JSON file")
	eventFile := fs.String("event", "", "events file (.jsonl); the first event is .Event")
	receivedFile := fs.String("received", "", "events a wait_for got (.jsonl), for .Received (the last of each type)")
	ch := fs.String("channel", "email", "email or push")
	raw := fs.Bool("raw", false, "print the message as sent: MIME (email) or the JSON payload (push)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if *tmpl == "" || *custFile == "" || (*ch != "email" && *ch != "push") {
		return exitError{code: 2, msg: "usage: lojal journeys render [--dir journeys] --template T --customer FILE.json [--event FILE.jsonl] [--received FILE.jsonl] [--channel email|push] [--raw]"}
	}
	cat, err := loadCatalog(*dir)
	if err != nil {
		return err
	}
	cust, err := readCustomer(*custFile)
	if err != nil {
		return err
	}
	if cust, err = cat.Schema.CheckCustomer(cust); err != nil {
		return fmt.Errorf("customer: %w", err)
	}
	var ev *journey.Event
	if *eventFile != "" {
		evs, err := readEvents(*eventFile)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return fmt.Errorf("%s: no events", *eventFile)
		}
		ev = &evs[0]
	}
	var received map[string]*journey.Event
	if *receivedFile != "" {
		evs, err := readEvents(*receivedFile)
		if err != nil {
			return err
		}
		received = map[string]*journey.Event{}
		for i := range evs {
			if _, err := cat.Schema.CheckEvent(evs[i]); err != nil {
				return fmt.Errorf("%s: event %s: %w", *receivedFile, evs[i].ID, err)
			}
			received[evs[i].Type] = &evs[i]
		}
	}
	// Preview links are signed with a throw-away key: they look like the
	// real ones but do not work.
	signer, err := links.NewSigner([]byte("preview-only-key-not-for-real-links"), cfg.PublicURL, 0)
	if err != nil {
		return err
	}
	domain := messageDomain(cfg.MailFrom)
	env, err := activities.Compose(cat, signer, activities.Message{Template: *tmpl, Channel: *ch, Topic: "preview", Customer: cust,
		Trigger: ev, Received: received, IdempotencyKey: "preview", MessageID: activities.MessageID("preview", domain)}, time.Now())
	if err != nil {
		return err
	}
	msg := env.Message
	fmt.Fprintf(stderr, "template %s, locale %s (customer locale %q, fallback chain %v)\n\n", *tmpl, msg.Locale, cust.Locale, render.Chain(cust.Locale))
	if !*raw {
		printMessage(stdout, cfg.MailFrom, env)
		return nil
	}
	if *ch == "push" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(channel.Payload{Title: msg.Title, Body: msg.Body, URL: msg.URL, MessageID: env.MessageID, Locale: msg.Locale})
	}
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://preview.invalid:25", From: cfg.MailFrom}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	m, err := email.Build(env)
	if err != nil {
		return err
	}
	_, err = m.WriteTo(stdout)
	return err
}

// runDeploy validates a journeys directory and publishes it: running
// workers and API processes switch to it within seconds, new entrants get
// the new versions, runs in flight keep theirs.
func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("journeys deploy", stderr)
	by := fs.String("by", os.Getenv("USER"), "who deploys (recorded)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	dir := cfg.Journeys
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	prev, _ := st.LatestDeployment(ctx)
	d, cat, err := deploy.Publish(ctx, st, os.DirFS(dir), filepath.Clean(dir), *by)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return exitError{code: 1, msg: "lojal journeys deploy: not deployed"}
	}
	fmt.Fprintf(stdout, "deployment %d (%s): %d journeys from %s\n", d.ID, d.Hash, len(cat.Journeys), dir)
	var old *catalog.Catalog
	if prev.ID != 0 {
		old, _ = deploy.Load(prev)
	}
	for _, j := range cat.Journeys {
		status := "new"
		if old != nil {
			if o, ok := old.Journey(j.ID); ok {
				status = "unchanged"
				if o.Version != j.Version {
					status = "new version (was " + o.Version + "; runs in flight keep it)"
				}
			}
		}
		fmt.Fprintf(stdout, "  %-24s %s  %s\n", j.ID, j.Version, status)
	}
	return nil
}

// runBundle validates a journeys directory and prints it as a Kubernetes
// ConfigMap holding one bundle file (deploy/k8s/journeys.yaml is made with
// it: make k8s).
func runBundle(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("journeys bundle", stderr)
	name := fs.String("name", "lojal-journeys", "ConfigMap name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := "journeys"
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	if _, err := loadCatalog(dir); err != nil {
		return err
	}
	files, err := deploy.Files(os.DirFS(dir))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(deploy.Bundle{Files: files}, "    ", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# Generated by `lojal journeys bundle %s` (make k8s); do not edit.\n", dir)
	fmt.Fprintf(stdout, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: lojal\n    lojal/journeys-hash: %q\n", *name, deploy.Hash(files))
	fmt.Fprintf(stdout, "data:\n  journeys.json: |\n    %s\n", b)
	return nil
}

// printMessage shows a rendered message as its reader sees it: decoded
// headers, then each part as written.
func printMessage(w io.Writer, from string, env channel.Envelope) {
	m := env.Message
	if env.Channel == "push" {
		fmt.Fprintf(w, "Title:  %s\nBody:   %s\n", m.Title, m.Body)
		if m.URL != "" {
			fmt.Fprintf(w, "Opens:  %s\n", m.URL)
		}
		return
	}
	to := env.To
	if env.ToName != "" {
		to = fmt.Sprintf("%s <%s>", env.ToName, env.To)
	}
	fmt.Fprintf(w, "From:     %s\nTo:       %s\nSubject:  %s\n", from, to, m.Subject)
	if env.Unsubscribe != "" {
		fmt.Fprintf(w, "List-Unsubscribe: <%s> (one click)\n", env.Unsubscribe)
	}
	fmt.Fprintf(w, "\n--- text (%s) ---\n%s\n", m.Locale, strings.TrimRight(m.Text, "\n"))
	fmt.Fprintf(w, "\n--- html (%s) ---\n%s\n", m.Locale, strings.TrimRight(m.HTML, "\n"))
}
