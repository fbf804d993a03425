// Command lojal is the one binary of lojal: the Temporal worker, the API,
// migrations, the local dev stack and the journey tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/config"
	"github.com/lojal/lojal/internal/deploy"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/telemetry"
	"github.com/lojal/lojal/workflows"
)

const usage = `lojal: customer-relationship messaging orchestrator

Usage:
  lojal worker              run the Temporal worker (journeys, policy, sending)
  lojal api                 run the HTTP API and preference centre (and dispatch events)
  lojal api token create|revoke --name NAME
  lojal migrate             apply database migrations
  lojal dev                 run everything locally with demo customers and journeys
  lojal journeys validate PATH...
  lojal journeys simulate --journey FILE --customer FILE.json [--events FILE.jsonl] [--days N] [--json]
  lojal journeys render --template T --customer FILE.json [--event FILE.jsonl] [--channel email|push] [--raw]
  lojal journeys diff OLD NEW   journey files, directories or REV:DIR (HEAD:journeys): old → new; exit 1 when they differ
  lojal studio [--journeys DIR] [--addr 127.0.0.1:PORT]
                            see journeys as diagrams, messages as customers see them, simulate and diff, in a browser
  lojal journeys migrate --journey FILE [--map OLD=NEW,...] [--apply]
  lojal journeys deploy [DIR]   publish validated journeys; running processes pick them up
  lojal import customers FILE.jsonl   bulk-load customers (progress bar)
  lojal why --customer ID   a customer's contact history, with the reason for every decision
  lojal events show ID | failed | retry ID | drop ID --reason WHY
                            an event's routing, dead letters, and what to do about them
  lojal report pressure [--days N] [--png FILE]
                            messages per customer per week; deferrals and suppressions by reason;
                            spam complaints per 1,000 delivered emails per day
  lojal report journeys [--days N] [--png FILE]
                            per journey: entrants, messages per entrant, goal rate treated vs
                            held out with the uplift and its 95% CI, unsubscribes and complaints
                            per 1,000 messages (docs/holdouts.md)
  lojal bench [--only core,policy,email,ingest,enrol,journey,dispatch,rate,replies,ledger]
                            throughput against baselines measured in the same run
  lojal sender check [--no-dns] [--dmarc-reports ADDRESS]
                            the DNS records (DKIM, SPF, DMARC, MX) the From domain needs, and what DNS publishes
  lojal suppressions list [--address A] [--lifted]
                            suppressed addresses, or the record of lifted ones
  lojal suppressions remove --address A --reason WHY
                            lift a suppression (who and why are recorded)
  lojal consent export --customer ID [--html]
                            one customer's consent evidence, as JSON or a page
  lojal consent report      messages sent per legal basis
  lojal retention           one pass of the retention job now: ledger and event months,
                            old rows, consent evidence (kept longer; docs/retention.md)
  lojal status [--json] [--task-queue Q]
                            the health of a deployment: event backlog and lag, dead letters, uncertain
                            deliveries, the sweeper, scheduled journeys' next firings, workers polling
                            each task queue; exit 1 when something needs a person
  lojal config              print the configuration (secrets masked)

Run 'lojal COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(os.Stderr, ex.msg)
			}
			os.Exit(ex.code)
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "lojal:", config.RedactText(err.Error()))
			os.Exit(1)
		}
	}
}

// exitError ends the program with a status and no "lojal:" prefix.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "worker":
		return runWorker(ctx, rest, stderr)
	case "api":
		return runAPI(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "journeys":
		return runJourneys(ctx, rest, stdout, stderr)
	case "studio":
		return runStudio(ctx, rest, stdout, stderr)
	case "why":
		return runWhy(ctx, rest, stdout, stderr)
	case "report":
		return runReport(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "events":
		return runEvents(ctx, rest, stdout, stderr)
	case "suppressions":
		return runSuppressions(ctx, rest, stdout, stderr)
	case "consent":
		return runConsent(ctx, rest, stdout, stderr)
	case "retention":
		return runRetention(ctx, rest, stdout, stderr)
	case "sender":
		return runSender(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "config":
		cfg, _, err := loadConfig("config", rest, stderr)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, config.String(cfg))
		return nil
	}
	fmt.Fprint(stderr, usage)
	return exitError{code: 2, msg: fmt.Sprintf("lojal: unknown command %q", cmd)}
}

// Config is lojal's configuration, from flags and environment.
type Config struct {
	DatabaseURL       string        `flag:"database-url" env:"DATABASE_URL" secret:"url" usage:"Postgres URL"`
	TemporalAddress   string        `flag:"temporal-address" env:"TEMPORAL_ADDRESS" usage:"Temporal frontend host:port"`
	TemporalNamespace string        `flag:"temporal-namespace" env:"LOJAL_TEMPORAL_NAMESPACE" usage:"Temporal namespace"`
	TemporalGzip      bool          `flag:"temporal-gzip" env:"LOJAL_TEMPORAL_GZIP" usage:"gzip requests to Temporal (for a Temporal reached over a slow or metered link; off: requests are a few KB and gzip costs both sides CPU)"`
	SMTPURL           string        `flag:"smtp-url" env:"SMTP_URL" secret:"url" usage:"smtp://[user:pass@]host:port[?tls=starttls|tls|none]"`
	MailFrom          string        `flag:"mail-from" env:"LOJAL_MAIL_FROM" usage:"sender of every email"`
	Journeys          string        `flag:"journeys" env:"LOJAL_JOURNEYS" usage:"journeys directory"`
	PublicURL         string        `flag:"public-url" env:"LOJAL_PUBLIC_URL" usage:"public base URL of the API, for links in messages (https; http only in development mode)"`
	DevMode           bool          `flag:"dev-mode" env:"LOJAL_DEV_MODE" usage:"development mode: accept an http:// public URL; for local use and tests only, never in production"`
	LinkKey           string        `flag:"link-key" env:"LOJAL_LINK_KEY" secret:"true" usage:"secret for signing unsubscribe and preference links (32+ characters)"`
	BounceAddress     string        `flag:"bounce-address" env:"LOJAL_BOUNCE_ADDRESS" usage:"envelope sender (Return-Path) bounces go to"`
	BounceSMTPAddr    string        `flag:"bounce-smtp-addr" env:"LOJAL_BOUNCE_SMTP_ADDR" usage:"worker: listen here for bounces and feedback reports (inbound SMTP)"`
	BounceSMTPConns   int           `flag:"bounce-smtp-max-conns" env:"LOJAL_BOUNCE_SMTP_MAX_CONNS" usage:"worker: connections the bounce intake serves at once; more are told to try later"`
	BounceSMTPSession time.Duration `flag:"bounce-smtp-session-timeout" env:"LOJAL_BOUNCE_SMTP_SESSION_TIMEOUT" usage:"worker: longest an inbound SMTP connection may last"`
	DKIMKeyFile       string        `flag:"dkim-key-file" env:"LOJAL_DKIM_KEY_FILE" usage:"PEM private key to DKIM-sign email with (RSA or Ed25519)"`
	DKIMSelector      string        `flag:"dkim-selector" env:"LOJAL_DKIM_SELECTOR" usage:"DKIM selector (its TXT record is <selector>._domainkey.<from domain>)"`
	VAPIDPublicKey    string        `flag:"vapid-public-key" env:"LOJAL_VAPID_PUBLIC_KEY" usage:"Web Push VAPID public key (base64url)"`
	VAPIDPrivateKey   string        `flag:"vapid-private-key" env:"LOJAL_VAPID_PRIVATE_KEY" secret:"true" usage:"Web Push VAPID private key (base64url)"`
	VAPIDSubject      string        `flag:"vapid-subject" env:"LOJAL_VAPID_SUBJECT" usage:"contact for push services, mailto: or https:"`
	PushProviderURL   string        `flag:"push-provider-url" env:"LOJAL_PUSH_PROVIDER_URL" secret:"url" usage:"HTTP push provider endpoint (JSON POST)"`
	PushProviderToken string        `flag:"push-provider-token" env:"LOJAL_PUSH_PROVIDER_TOKEN" secret:"true" usage:"bearer token for the HTTP push provider"`
	PushHosts         string        `flag:"push-hosts" env:"LOJAL_PUSH_HOSTS" usage:"comma-separated Web Push service hosts lojal may contact (*.example.com for subdomains); empty: any public host"`
	PushAllowLoopback bool          `flag:"push-allow-loopback" env:"LOJAL_PUSH_ALLOW_LOOPBACK" usage:"accept Web Push endpoints on loopback addresses: for tests and local development only, never in production"`
	HTTPAddr          string        `flag:"http-addr" env:"LOJAL_HTTP_ADDR" usage:"listen address for the API, or the worker's health checks"`
	MetricsAddr       string        `flag:"metrics-addr" env:"LOJAL_METRICS_ADDR" usage:"listen address for /metrics, apart from the API; empty turns metrics off (the same as the API's address needs LOJAL_METRICS_TOKEN)"`
	MetricsToken      string        `flag:"metrics-token" env:"LOJAL_METRICS_TOKEN" secret:"true" usage:"bearer token /metrics requires, when set"`
	LogFormat         string        `flag:"log-format" env:"LOJAL_LOG_FORMAT" usage:"text or json"`
	LogLevel          string        `flag:"log-level" env:"LOJAL_LOG_LEVEL" usage:"debug, info, warn or error"`
	ShutdownTimeout   time.Duration `flag:"shutdown-timeout" env:"LOJAL_SHUTDOWN_TIMEOUT" usage:"how long to drain in-flight work on shutdown"`
	ReorderWindow     time.Duration `flag:"reorder-window" env:"LOJAL_REORDER_WINDOW" usage:"api: hold accepted events this long so close ones dispatch in the order they happened"`
	BulkRate          float64       `flag:"bulk-rate" env:"LOJAL_BULK_RATE" usage:"worker: most enrolment events of scheduled journeys the sweeper routes a second (runs started beside live traffic; 0: 200; negative: no bound)"`
	EmailRate         float64       `flag:"email-rate" env:"LOJAL_EMAIL_RATE" usage:"worker: most emails a second all workers together hand to the SMTP relay, held by the Temporal server (the relay's limit; 0: no limit; the same on every worker)"`
	PushRate          float64       `flag:"push-rate" env:"LOJAL_PUSH_RATE" usage:"worker: most push messages a second all workers together send (0: no limit; the same on every worker)"`
	ActivitySlots     int           `flag:"activity-slots" env:"LOJAL_ACTIVITY_SLOTS" usage:"worker: activities each of the worker's task queues runs at once (the database pool is sized from it)"`
	DBMaxConns        int           `flag:"db-max-conns" env:"LOJAL_DB_MAX_CONNS" usage:"most Postgres connections this process opens (0: a quarter of the activity slots plus 5; see docs/retention.md)"`
	DecideLockTimeout time.Duration `flag:"decide-lock-timeout" env:"LOJAL_DECIDE_LOCK_TIMEOUT" usage:"worker: longest a decision waits for the customer's lock before it fails, to be retried"`
	DecideTimeout     time.Duration `flag:"decide-statement-timeout" env:"LOJAL_DECIDE_STATEMENT_TIMEOUT" usage:"worker: longest each round trip of a decision may take before it fails, to be retried"`
	RetainLedgerDays  int           `flag:"retain-ledger-days" env:"LOJAL_RETAIN_LEDGER_DAYS" usage:"days the contact ledger keeps a decision (at least policy.yaml's longest window plus 7; see docs/retention.md)"`
	RetainEventsDays  int           `flag:"retain-events-days" env:"LOJAL_RETAIN_EVENTS_DAYS" usage:"days events and their routes are kept and their ids recognised (at least max_defer plus 7)"`
	RetainRunsDays    int           `flag:"retain-runs-days" env:"LOJAL_RETAIN_RUNS_DAYS" usage:"days an ended journey run that a later one superseded is kept (at least max_defer plus 7)"`
	RetainConsentDays int           `flag:"retain-consent-days" env:"LOJAL_RETAIN_CONSENT_DAYS" usage:"days consent evidence is kept after it stops being needed (longer than the ledger's; see docs/retention.md)"`
	SendTimeout       time.Duration `flag:"send-timeout" env:"LOJAL_SEND_TIMEOUT" usage:"worker: how long one message may take to go out, retries included, before its run asks the policy again (0: the reservation's 15 minutes plus one)"`
}

func defaultConfig() Config {
	return Config{
		TemporalAddress:   "127.0.0.1:7233",
		TemporalNamespace: "default",
		MailFrom:          "lojal <hello@lojal.example>",
		Journeys:          "journeys",
		PublicURL:         "http://127.0.0.1:8080",
		HTTPAddr:          ":8080",
		MetricsAddr:       ":9090",
		LogFormat:         "text",
		LogLevel:          "info",
		ShutdownTimeout:   30 * time.Second,
		BounceSMTPConns:   100,
		BounceSMTPSession: 5 * time.Minute,
		ReorderWindow:     2 * time.Second,
		VAPIDSubject:      "mailto:postmaster@lojal.example",
		ActivitySlots:     200,
		DecideLockTimeout: 2 * time.Second,
		DecideTimeout:     5 * time.Second,
		RetainLedgerDays:  int(store.DefaultRetainLedger / (24 * time.Hour)),
		RetainEventsDays:  int(store.DefaultRetainEvents / (24 * time.Hour)),
		RetainRunsDays:    int(store.DefaultRetainRuns / (24 * time.Hour)),
		RetainConsentDays: int(store.DefaultRetainConsent / (24 * time.Hour)),
	}
}

// senders builds the email and push channels from the configuration; the
// caller closes the returned Email.
func senders(cfg Config, log *slog.Logger) (channel.Mux, *channel.Email, error) {
	ec := channel.EmailConfig{URL: cfg.SMTPURL, From: cfg.MailFrom, ReturnPath: cfg.BounceAddress}
	var err error
	if ec.DKIM, err = loadDKIM(cfg); err != nil {
		return nil, nil, err
	}
	email, err := channel.NewEmail(ec, log)
	if err != nil {
		return nil, nil, err
	}
	pc := channel.PushConfig{VAPIDPublicKey: cfg.VAPIDPublicKey, VAPIDPrivateKey: cfg.VAPIDPrivateKey,
		Subject: cfg.VAPIDSubject, ProviderURL: cfg.PushProviderURL, ProviderToken: cfg.PushProviderToken, Egress: *egress(cfg)}
	if pc.VAPIDPrivateKey != "" {
		if err := channel.CheckVAPID(pc); err != nil {
			email.Close()
			return nil, nil, err
		}
	}
	return channel.Mux{"email": email, "push": channel.NewPush(pc, log)}, email, nil
}

// unsignedMailWarning is what a worker says at start when its email goes
// out without a DKIM signature, or "".
func unsignedMailWarning(cfg Config) string {
	if cfg.DKIMKeyFile != "" || cfg.DevMode {
		return ""
	}
	return "email is sent without a DKIM signature: Gmail, Yahoo and Outlook require one of bulk senders; " +
		"set LOJAL_DKIM_KEY_FILE and LOJAL_DKIM_SELECTOR (lojal sender check gives the DNS record)"
}

// loadDKIM reads the DKIM signing key, or returns nil when none is
// configured.
func loadDKIM(cfg Config) (*channel.DKIM, error) {
	if cfg.DKIMKeyFile == "" {
		return nil, nil
	}
	if cfg.DKIMSelector == "" {
		return nil, errors.New("LOJAL_DKIM_KEY_FILE is set but LOJAL_DKIM_SELECTOR is not")
	}
	pemBytes, err := os.ReadFile(cfg.DKIMKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	return channel.LoadDKIM(messageDomain(cfg.MailFrom), cfg.DKIMSelector, pemBytes)
}

// egress is where push endpoints may point, for the API (registration)
// and the worker (dialling) alike.
func egress(cfg Config) *channel.Egress {
	e := &channel.Egress{AllowLoopback: cfg.PushAllowLoopback}
	for _, h := range strings.Split(cfg.PushHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			e.Hosts = append(e.Hosts, h)
		}
	}
	return e
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lojal "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// loadInto parses args into cfg; commands add their own flags to fs first.
func loadInto(fs *flag.FlagSet, args []string, cfg *Config) error {
	return config.Load(fs, args, cfg)
}

func loadConfig(name string, args []string, stderr io.Writer) (Config, *flag.FlagSet, error) {
	cfg := defaultConfig()
	fs := newFlagSet(name, stderr)
	err := loadInto(fs, args, &cfg)
	return cfg, fs, err
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	// Every line passes the redactor: a secret that finds its way into an
	// error message (a connection string in a parse error, a provider URL
	// with its key) is masked before it is written.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: config.NewRedactor(cfg).ReplaceAttr}
	// Lines logged in a traced piece of work carry its trace_id and span_id.
	switch cfg.LogFormat {
	case "json":
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts))), nil
	case "text":
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", cfg.LogFormat)
}

func openStore(ctx context.Context, cfg Config) (*store.Store, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("no database: set DATABASE_URL (or --database-url)")
	}
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, MaxConns: poolSize(cfg),
		Decide: store.DecideTimeouts{Lock: cfg.DecideLockTimeout, Statement: cfg.DecideTimeout}})
	if err != nil {
		return nil, fmt.Errorf("database (DATABASE_URL): %w", err)
	}
	return st, nil
}

// poolSize is the most Postgres connections the process opens. An
// activity holds a connection only for its round trips (a decision: two,
// about a millisecond each), so a quarter of the activity slots serves
// them all with room to spare, and 5 more serve the loops beside them
// (sweeper, retention, bounce intake, health checks, schedules). pgx's
// default, max(4, CPUs), made 200 slots queue for 4 connections.
func poolSize(cfg Config) int32 {
	if cfg.DBMaxConns > 0 {
		return int32(cfg.DBMaxConns)
	}
	return int32(max(cfg.ActivitySlots, 1)/4 + 5)
}

// retention is the configured retention.
func retentionOf(cfg Config) store.Retention {
	day := 24 * time.Hour
	return store.Retention{Ledger: time.Duration(cfg.RetainLedgerDays) * day, Events: time.Duration(cfg.RetainEventsDays) * day,
		Runs: time.Duration(cfg.RetainRunsDays) * day, Consent: time.Duration(cfg.RetainConsentDays) * day}
}

// dialTemporal connects to Temporal; opts adjust the client's options
// (observability.client: the SDK's metrics and tracing).
func dialTemporal(cfg Config, log *slog.Logger, opts ...func(*client.Options)) (client.Client, error) {
	return temporalClient(cfg, log, client.Dial, opts...)
}

// temporalClient makes a client of Temporal with dial: client.Dial, which
// fails when Temporal does not answer, or client.NewLazyClient, which
// connects on the first call.
func temporalClient(cfg Config, log *slog.Logger, dial func(client.Options) (client.Client, error), opts ...func(*client.Options)) (client.Client, error) {
	co := client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(log.With("component", "temporal")),
		ConnectionOptions: workflows.Connection(cfg.TemporalGzip),
	}
	for _, o := range opts {
		o(&co)
	}
	c, err := dial(co)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s: %w", cfg.TemporalAddress, err)
	}
	return c, nil
}

// loadCatalog loads a journeys directory, or a bundle file made by
// `lojal journeys bundle` (how Kubernetes ships journeys in a ConfigMap).
func loadCatalog(path string) (*catalog.Catalog, error) {
	fsys := os.DirFS(path)
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if fsys, err = deploy.ReadBundle(b); err != nil {
			return nil, fmt.Errorf("journeys bundle %s: %w", path, err)
		}
	}
	c, err := catalog.Load(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("journeys in %s are not valid:\n%w", path, err)
	}
	return c, nil
}

// checkPublicURL refuses a public URL that messages cannot carry: the
// one-click unsubscribe in every email is built on it, RFC 8058 requires it
// to be https, and Gmail, Yahoo and Outlook ignore one that is not. Only
// development mode, asked for explicitly, accepts http.
func checkPublicURL(cfg Config) error {
	const fix = "set LOJAL_PUBLIC_URL (or --public-url) to the https address the API is reached at, such as https://lojal.example.com"
	u, err := url.Parse(cfg.PublicURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("LOJAL_PUBLIC_URL %q is not an absolute URL: %s", cfg.PublicURL, fix)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("LOJAL_PUBLIC_URL %q has user information, a query or a fragment; links are built by appending paths to it: %s", cfg.PublicURL, fix)
	case u.Scheme != "https" && !cfg.DevMode:
		return fmt.Errorf("LOJAL_PUBLIC_URL %q must be https: the unsubscribe link in every email is built on it, and RFC 8058 one-click "+
			"unsubscribe (which Gmail, Yahoo and Outlook require of bulk senders) works only over https; %s "+
			"(LOJAL_DEV_MODE=true accepts http for local development, never for production)", cfg.PublicURL, fix)
	}
	return nil
}

func newSigner(cfg Config) (*links.Signer, error) {
	if len(cfg.LinkKey) < 32 {
		return nil, errors.New("set LOJAL_LINK_KEY to a random secret of 32+ characters, the same on api and workers " +
			"(it signs the unsubscribe and preference links in every message)")
	}
	return links.NewSigner([]byte(cfg.LinkKey), cfg.PublicURL, 0)
}

// newVERP returns the signer of per-message Return-Paths, or nil when no
// bounce address is configured (bounces then go to the From address, which
// lojal does not read).
func newVERP(cfg Config) (*bounce.VERP, error) {
	if cfg.BounceAddress == "" {
		return nil, nil
	}
	v, err := bounce.NewVERP([]byte(cfg.LinkKey), cfg.BounceAddress)
	if err != nil {
		return nil, fmt.Errorf("LOJAL_BOUNCE_ADDRESS: %w", err)
	}
	return v, nil
}

func messageDomain(from string) string {
	if i := strings.LastIndex(from, "@"); i >= 0 {
		return strings.TrimRight(from[i+1:], "> ")
	}
	return ""
}

// liveCatalog loads the journeys directory and follows deployments made
// with `lojal journeys deploy`.
func liveCatalog(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*deploy.Live, error) {
	base, err := loadCatalog(cfg.Journeys)
	if err != nil {
		return nil, err
	}
	live, err := deploy.NewLive(ctx, st, base, log)
	if err != nil {
		return nil, err
	}
	go live.Watch(ctx, 5*time.Second)
	return live, nil
}

// services are the connections the long-running commands share: the store,
// the journeys in force (following deployments) and Temporal.
type services struct {
	st  *store.Store
	cat *deploy.Live
	tc  client.Client
}

// connect opens the store, loads the journeys and makes a client of
// Temporal with dial (with opts, as temporalClient).
func connect(ctx context.Context, cfg Config, log *slog.Logger, dial func(client.Options) (client.Client, error),
	opts ...func(*client.Options)) (*services, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cat, err := liveCatalog(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	tc, err := temporalClient(cfg, log, dial, opts...)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &services{st: st, cat: cat, tc: tc}, nil
}

// Close closes the connections.
func (s *services) Close() {
	s.tc.Close()
	s.st.Close()
}
