// Package store keeps lojal's state in Postgres through pgx/v5: customers,
// consent, events, journey runs and the contact ledger.
//
// SQL lives in queries/*.sql, one named query per block, and is prepared on
// every new connection, so a query that does not match the schema fails when
// the store opens rather than when a customer's message is on its way.
package store

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lojal/lojal/internal/telemetry"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// queries holds the name of every prepared statement; a call passes the
// name where pgx expects SQL. Field tags name blocks in queries/*.sql.
type queries struct {
	UpsertCustomer        string `query:"upsert-customer"`
	GetCustomer           string `query:"get-customer"`
	GetCustomerToSend     string `query:"get-customer-to-send"`
	LockCustomer          string `query:"lock-customer"`
	Relationship          string `query:"relationship"`
	SuppressAddress       string `query:"suppress-address"`
	UpsertPushSub         string `query:"upsert-push-subscription"`
	PushSubs              string `query:"push-subscriptions"`
	DeletePushSub         string `query:"delete-push-subscription"`
	InsertEvent           string `query:"insert-event"`
	MarkEventDispatch     string `query:"mark-event-dispatched"`
	LatestRun             string `query:"latest-run"`
	InsertRun             string `query:"insert-run"`
	LatestRunOrRecord     string `query:"latest-run-or-record"`
	FinishRun             string `query:"finish-run"`
	RecordRunGroup        string `query:"record-run-group"`
	ClaimEntry            string `query:"claim-entry"`
	InsertHoldoutMessage  string `query:"insert-holdout-message"`
	JourneyEntrants       string `query:"journey-entrants"`
	JourneyMessages       string `query:"journey-messages"`
	JourneyWouldHaveSent  string `query:"journey-would-have-sent"`
	JourneyComplaints     string `query:"journey-complaints"`
	JourneyUnsubscribes   string `query:"journey-unsubscribes"`
	PruneHoldoutMessages  string `query:"prune-holdout-messages"`
	PruneEngagements      string `query:"prune-engagements"`
	PruneConversations    string `query:"prune-conversations"`
	PruneReplies          string `query:"prune-replies"`
	PruneAnswers          string `query:"prune-answers"`
	CustomerHoldoutMsgs   string `query:"customer-holdout-messages"`
	OpenRuns              string `query:"open-runs"`
	InsertEvents          string `query:"insert-events"`
	CustomersExist        string `query:"customers-exist"`
	EventsDiffer          string `query:"events-differ"`
	RedeliveredUnrouted   string `query:"redelivered-unrouted"`
	MarkDispatchedMany    string `query:"mark-events-dispatched"`
	ClaimDueEvents        string `query:"claim-due-events"`
	ExtendClaims          string `query:"extend-claims"`
	EventsBlocked         string `query:"events-blocked"`
	EventFailed           string `query:"event-failed"`
	UpsertRoute           string `query:"upsert-route"`
	ParkedForWorkflow     string `query:"parked-for-workflow"`
	WaitingRoutes         string `query:"waiting-routes"`
	EventRoutes           string `query:"event-routes"`
	EventByID             string `query:"event-by-id"`
	DeadEvents            string `query:"dead-events"`
	RetryEvent            string `query:"retry-event"`
	DropEvent             string `query:"drop-event"`
	DispatchStats         string `query:"dispatch-stats"`
	UndispatchedEvents    string `query:"undispatched-events"`
	RunByEntry            string `query:"run-by-entry"`
	SetRunID              string `query:"set-run-id"`
	ReachOutcome          string `query:"reach-outcome"`
	CloseRun              string `query:"close-run"`
	RunsToCheck           string `query:"runs-to-check"`
	MarkRunsChecked       string `query:"mark-runs-checked"`
	RecordFiring          string `query:"record-firing"`
	RecentFirings         string `query:"recent-firings"`
	InsertToken           string `query:"insert-token"`
	TokenByHash           string `query:"token-by-hash"`
	RevokeToken           string `query:"revoke-token"`
	InsertDeployment      string `query:"insert-deployment"`
	LatestDeployment      string `query:"latest-deployment"`
	LatestDeploymentID    string `query:"latest-deployment-id"`
	CustomersPage         string `query:"customers-page"`
	CustomerTimezones     string `query:"customer-timezones"`
	LedgerByKey           string `query:"ledger-by-key"`
	ContactWindow         string `query:"contact-window"`
	WaitingForCustomer    string `query:"waiting-for-customer"`
	InsertDecision        string `query:"insert-decision"`
	UpsertWaiting         string `query:"upsert-waiting"`
	DeleteWaiting         string `query:"delete-waiting"`
	DeliveryByKey         string `query:"delivery-by-key"`
	BeginSend             string `query:"begin-send"`
	MarkUncertain         string `query:"mark-uncertain"`
	SendAttempt           string `query:"send-attempt"`
	MarkSent              string `query:"mark-sent"`
	MarkRefused           string `query:"mark-refused"`
	MarkFailed            string `query:"mark-failed"`
	UncertainSince        string `query:"uncertain-since"`
	LedgerStatus          string `query:"ledger-status"`
	PushDeliveries        string `query:"push-deliveries"`
	RecordPush            string `query:"record-push"`
	HoldSend              string `query:"hold-send"`
	OrphanedPushSends     string `query:"orphaned-push-sends"`
	CustomerHistory       string `query:"customer-history"`
	RecentSent            string `query:"recent-sent"`
	RecentDecisions       string `query:"recent-decisions"`
	PressurePerWeek       string `query:"pressure-per-week"`
	DecisionsByCaps       string `query:"decisions-by-caps"`
	CountCustomers        string `query:"count-customers"`
	SpamPerDay            string `query:"spam-per-day"`
	SpamSince             string `query:"spam-since"`
	RecordComplaint       string `query:"record-complaint"`
	SentByKey             string `query:"sent-by-key"`
	SentByMessageID       string `query:"sent-by-message-id"`
	MessageByID           string `query:"message-by-id"`
	ListSuppressions      string `query:"list-suppressions"`
	LiftSuppression       string `query:"lift-suppression"`
	ListLifts             string `query:"list-suppression-lifts"`
	ConsentEntries        string `query:"consent-entries"`
	InsertConsentEntry    string `query:"insert-consent-entry"`
	CustomerExists        string `query:"customer-exists"`
	InsertConsentRequest  string `query:"insert-consent-request"`
	ConsentRequest        string `query:"consent-request"`
	ConsentRequestsOf     string `query:"consent-requests-of"`
	ConfirmConsentRequest string `query:"confirm-consent-request"`
	ConsentMessages       string `query:"consent-messages"`
	MessagesPerBasis      string `query:"messages-per-basis"`
	AllowConsentPurge     string `query:"allow-consent-purge"`
	PurgeConsent          string `query:"purge-consent"`
	RepliedMessage        string `query:"replied-message"`
	OpenConversation      string `query:"open-conversation"`
	InsertReply           string `query:"insert-reply"`
	ConversationState     string `query:"conversation-state"`
	LastEngaged           string `query:"last-engaged"`
	InsertEngagement      string `query:"insert-engagement"`
	RecordClick           string `query:"record-click"`
	CustomerEngagements   string `query:"customer-engagements"`
	ConversationByID      string `query:"conversation-by-id"`
	AnswerConversation    string `query:"answer-conversation"`
	MarkEscalated         string `query:"mark-escalated"`
	ReplyByID             string `query:"reply-by-id"`
	CustomerReplies       string `query:"customer-replies"`
	CustomerConvs         string `query:"customer-conversations"`
	InsertSurveyAnswer    string `query:"insert-survey-answer"`
	SurveyAnswer          string `query:"survey-answer"`
	InsertSurveyChange    string `query:"insert-survey-change"`
	SetSurveyText         string `query:"set-survey-text"`
	CustomerSurveyAns     string `query:"customer-survey-answers"`
	PartitionedTables     string `query:"partitioned-tables"`
	EnsurePartitions      string `query:"ensure-partitions"`
	ExpiredPartitions     string `query:"expired-partitions"`
	Partitions            string `query:"partitions"`
	PruneEventIDs         string `query:"prune-event-ids"`
	PrunePushDeliveries   string `query:"prune-push-deliveries"`
	PruneScheduleFirings  string `query:"prune-schedule-firings"`
	PruneRuns             string `query:"prune-runs"`
	ResetRunsCursor       string `query:"reset-runs-cursor"`
	DecideTimeouts        string `query:"decide-timeouts"`
	GenericPlans          string `query:"generic-plans"`
}

// loadQueries parses queries/*.sql and fills q with statement names. It
// fails on a query the struct does not name and on a name with no query.
func loadQueries(q *queries) (map[string]string, error) {
	sqls := map[string]string{}
	files, err := fs.Glob(queryFiles, "queries/*.sql")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := queryFiles.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := splitQueries(f, b, sqls); err != nil {
			return nil, err
		}
	}
	v := reflect.ValueOf(q).Elem()
	used := map[string]bool{}
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("query")
		if _, ok := sqls[name]; !ok {
			return nil, fmt.Errorf("query %q is not in queries/*.sql", name)
		}
		v.Field(i).SetString(name)
		used[name] = true
	}
	for name := range sqls {
		if !used[name] {
			return nil, fmt.Errorf("query %q in queries/*.sql is not used", name)
		}
	}
	return sqls, nil
}

func splitQueries(file string, src []byte, into map[string]string) error {
	var name string
	var body strings.Builder
	flush := func() error {
		if name == "" {
			return nil
		}
		sql := strings.TrimSpace(body.String())
		sql = strings.TrimSuffix(sql, ";")
		if sql == "" {
			return fmt.Errorf("%s: query %q is empty", file, name)
		}
		if _, dup := into[name]; dup {
			return fmt.Errorf("%s: query %q defined twice", file, name)
		}
		into[name] = sql
		body.Reset()
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
			if err := flush(); err != nil {
				return err
			}
			name = strings.TrimSpace(n)
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// Store is lojal's Postgres store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	q    queries
	// sqls is the text of each query by name: the few whose text is
	// written per use (monthBounds) run by text, the rest by name.
	sqls     map[string]string
	timeouts DecideTimeouts
}

// Config says how to reach Postgres.
type Config struct {
	URL string
	// Schema, when set, is the only schema on the search path (tests give
	// each test its own).
	Schema   string
	MaxConns int32
	// Decide bounds how long a decision waits.
	Decide DecideTimeouts
}

// ErrNotMigrated is returned by Open when the schema is missing.
var ErrNotMigrated = errors.New("database schema is missing or out of date: run `lojal migrate`")

// DefaultConnectTimeout bounds establishing a connection when the URL
// sets no connect_timeout: without one, a server that takes the
// connection and never answers holds the caller for good.
const DefaultConnectTimeout = 10 * time.Second

// dialWithTimeouts gives a connection the default connect timeout when
// the URL sets none, and the dialer that gives up on a vanished server
// (dialer): the store's pool and lojal migrate connect alike.
func dialWithTimeouts(cc *pgx.ConnConfig) {
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	cc.DialFunc = dialer(cc.ConnectTimeout)
}

// address is where a connection goes, for errors (never its password).
func address(cc *pgx.ConnConfig) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// Open connects and prepares every query on each new connection.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{timeouts: cfg.Decide.withDefaults()}
	sqls, err := loadQueries(&s.q)
	if err != nil {
		return nil, fmt.Errorf("load queries: %w", err)
	}
	s.sqls = sqls
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.Schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	dialWithTimeouts(pc.ConnConfig)
	// Queries made in a traced piece of work are spans of its trace; the
	// rest cost a context lookup.
	pc.ConnConfig.Tracer = telemetry.QueryTracer{}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range sqls {
			if !yield(n) {
				return
			}
		}
	})
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		for _, name := range names {
			if _, err := conn.Prepare(ctx, name, sqls[name]); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703") {
					return fmt.Errorf("prepare %s: %w (%s)", name, ErrNotMigrated, pgErr.Message)
				}
				return fmt.Errorf("prepare %s: %w", name, err)
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// Acquire once so that a bad URL or a missing schema fails here.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", address(pc.ConnConfig), err)
	}
	conn.Release()
	s.pool = pool
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the database answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool to benchmarks that compare against bare queries.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// nullTime is t, or NULL when it is zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
