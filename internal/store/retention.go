package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lojal/lojal/internal/policy"
)

// Retention says how long lojal keeps what grows without bound (see
// docs/retention.md). Zero fields take the defaults.
type Retention struct {
	// Ledger is how long the contact ledger keeps a decision, counted
	// from the end of the month it was taken in: the policy's memory,
	// every report and each customer's history (default 400 days, so a
	// year can be compared with the one before).
	Ledger time.Duration
	// Events is how long accepted events and their routes are kept, and
	// how long a redelivered event id is recognised (default 90 days).
	Events time.Duration
	// Runs is how long a journey run that ended and was followed by
	// another of the same journey, customer and key is kept (default 400
	// days). The latest run is kept whatever its age: reentry rules read
	// it.
	Runs time.Duration
	// Consent is how long a consent-ledger entry is kept after it stopped
	// being evidence of anything: a grant a later entry of the same scope
	// replaced, or the entries of a customer deleted (default 5 years).
	// Withdrawals and soft opt-ins of a customer who still exists are
	// kept whatever their age. It must be longer than Ledger: the consent
	// ledger proves that the messages the contact ledger holds were
	// lawful (docs/consent.md).
	Consent time.Duration
	// Ahead is how many months of partitions exist beyond the current one
	// (default 3), so inserts never find their month missing even when
	// the retention job has not run for a while.
	Ahead int
}

// Default retention.
const (
	DefaultRetainLedger  = 400 * 24 * time.Hour
	DefaultRetainEvents  = 90 * 24 * time.Hour
	DefaultRetainRuns    = 400 * 24 * time.Hour
	DefaultRetainConsent = 5 * 365 * 24 * time.Hour
	DefaultAhead         = 3
)

// WithDefaults fills the zero fields.
func (r Retention) WithDefaults() Retention {
	if r.Ledger <= 0 {
		r.Ledger = DefaultRetainLedger
	}
	if r.Events <= 0 {
		r.Events = DefaultRetainEvents
	}
	if r.Runs <= 0 {
		r.Runs = DefaultRetainRuns
	}
	if r.Consent <= 0 {
		r.Consent = DefaultRetainConsent
	}
	if r.Ahead <= 0 {
		r.Ahead = DefaultAhead
	}
	return r
}

// Check refuses a retention shorter than what lojal must remember. A
// decision reads the contacts of its longest cap window, minimum gap or
// purpose window, and a deferred message is asked again for up to
// max_defer after its first ask, finding its earlier decisions; each of
// those reads decisions up to ContactSlack older. A ledger kept for less
// would let the policy forget contacts it must count, and send more than
// the caps allow. Events and runs must outlive max_defer: a run waits
// that long on a deferred message, and a redelivery of its trigger event
// must still be recognised meanwhile. Consent evidence must outlive the
// ledger whose messages it justifies. names gives each field's setting,
// for the message.
func (r Retention) Check(rules policy.Rules, names map[string]string) error {
	r = r.WithDefaults()
	type window struct {
		what string
		d    time.Duration
		// at is where policy.yaml sets it (file:line:col), when it does.
		at string
	}
	deferral := window{"max_defer", rules.MaxDefer, rules.Where["max_defer"]}
	if rules.MaxDefer <= 0 {
		deferral = window{"max_defer (default)", policy.DefaultMaxDefer, ""}
	}
	longest := deferral
	for i, c := range rules.Caps {
		if c.Window > longest.d {
			longest = window{fmt.Sprintf("the cap of %d per %s", c.Max, days(c.Window)), c.Window, rules.Where[fmt.Sprintf("caps[%d]", i)]}
		}
	}
	pw := window{"purpose_window", rules.PurposeWindow, rules.Where["purpose_window"]}
	if pw.d <= 0 {
		pw = window{"purpose_window (default)", policy.DefaultPurposeWindow, ""}
	}
	if pw.d > longest.d {
		longest = pw
	}
	if rules.MinGap > longest.d {
		longest = window{"min_gap", rules.MinGap, rules.Where["min_gap"]}
	}
	var errs []error
	for _, f := range []struct {
		field string
		d     time.Duration
		by    window
	}{{"ledger", r.Ledger, longest}, {"events", r.Events, deferral}, {"runs", r.Runs, deferral}} {
		need := f.by.d + ContactSlack
		if f.d >= need {
			continue
		}
		name := names[f.field]
		if name == "" {
			name = f.field + " retention"
		}
		err := fmt.Errorf("%s is %s, shorter than %s in policy.yaml (%s) plus %s of slack: "+
			"lojal would forget what it must still count or recognise. Set %s to at least %s, or shorten %s",
			name, days(f.d), f.by.what, days(f.by.d), days(ContactSlack), name, days(need), f.by.what)
		if f.by.at != "" {
			err = fmt.Errorf("%s: %w", f.by.at, err)
		}
		errs = append(errs, err)
	}
	// A month of the contact ledger goes only when all of it is past the
	// ledger's retention, so decisions stay up to a month longer: consent
	// evidence must outlast that month too.
	if need := r.Ledger + monthSlack; r.Consent < need {
		consent, ledger := names["consent"], names["ledger"]
		if consent == "" {
			consent = "consent retention"
		}
		if ledger == "" {
			ledger = "ledger retention"
		}
		errs = append(errs, fmt.Errorf("%s is %s, not longer than %s (%s) plus the %s a month of the ledger may outlive it: "+
			"consent evidence would be deleted while the messages it proves lawful are still in the contact ledger. Set %s to at least %s",
			consent, days(r.Consent), ledger, days(r.Ledger), days(monthSlack), consent, days(need)))
	}
	return errors.Join(errs...)
}

// monthSlack is how long past the ledger's retention a monthly partition
// of it may be kept: it is dropped once its whole month is past.
const monthSlack = 31 * 24 * time.Hour

// days prints a duration in days when it is whole days.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Retained is what one retention pass did.
type Retained struct {
	Created []string `json:"created,omitempty"`
	Dropped []string `json:"dropped,omitempty"`
	// EventIDs, PushDeliveries, Firings and Runs count rows deleted.
	EventIDs       int64 `json:"event_ids"`
	PushDeliveries int64 `json:"push_deliveries"`
	Firings        int64 `json:"schedule_firings"`
	Runs           int64 `json:"runs"`
	// HoldoutMessages counts messages held-out runs would have sent,
	// deleted with the ledger's retention.
	HoldoutMessages int64 `json:"holdout_messages"`
	// Engagements counts engagement signals (clicks and the like) deleted
	// with the ledger's retention.
	Engagements int64 `json:"engagements"`
	// Conversations answered (with their replies), Replies in no
	// conversation and one-click Answers, deleted with the ledger's
	// retention; open conversations are kept.
	Conversations int64 `json:"conversations"`
	Replies       int64 `json:"replies"`
	Answers       int64 `json:"answers"`
	Consent       int64 `json:"consent_entries"`
}

// Deleted is how many rows the pass deleted, whatever the table.
func (r Retained) Deleted() int64 {
	return r.EventIDs + r.PushDeliveries + r.Firings + r.Runs + r.HoldoutMessages + r.Engagements + r.Conversations + r.Replies +
		r.Answers + r.Consent
}

// retentionBatch is how many rows one delete of the retention job takes:
// small enough that each is a short transaction.
const retentionBatch = 5000

// Retain runs one retention pass at now: creates the partitions of the
// months ahead, drops those wholly older than the retention, and deletes
// the rows of unpartitioned tables that are past it, consent evidence
// included (its own, longer retention). progress is called
// between steps (the activity heartbeats there); it may be nil. Each step
// is safe to interrupt and run again.
func (s *Store) Retain(ctx context.Context, now time.Time, r Retention, progress func(string)) (Retained, error) {
	r = r.WithDefaults()
	if progress == nil {
		progress = func(string) {}
	}
	var out Retained
	created, err := s.EnsurePartitions(ctx, now, r.Ahead)
	out.Created = created
	if err != nil {
		return out, err
	}
	cutoff := map[string]time.Time{
		"contact_ledger": now.Add(-r.Ledger),
		"events":         now.Add(-r.Events),
		"event_routes":   now.Add(-r.Events),
	}
	tables, err := s.partitionedTables(ctx)
	if err != nil {
		return out, err
	}
	for _, t := range tables {
		c, ok := cutoff[t]
		if !ok {
			return out, fmt.Errorf("retain: no retention for partitioned table %s", t)
		}
		progress("drop " + t)
		dropped, err := s.DropPartitionsBefore(ctx, t, c)
		out.Dropped = append(out.Dropped, dropped...)
		if err != nil {
			return out, err
		}
	}
	steps := []struct {
		name string
		n    *int64
		sql  string
		args []any
	}{
		{"event ids", &out.EventIDs, s.q.PruneEventIDs, []any{retentionBatch}},
		{"push deliveries", &out.PushDeliveries, s.q.PrunePushDeliveries, []any{now.Add(-r.Ledger), retentionBatch}},
		{"schedule firings", &out.Firings, s.q.PruneScheduleFirings, []any{now.Add(-r.Runs), retentionBatch}},
		{"held-out messages", &out.HoldoutMessages, s.q.PruneHoldoutMessages, []any{now.Add(-r.Ledger), retentionBatch}},
		{"engagements", &out.Engagements, s.q.PruneEngagements, []any{now.Add(-r.Ledger), retentionBatch}},
		{"answered conversations", &out.Conversations, s.q.PruneConversations, []any{now.Add(-r.Ledger), retentionBatch}},
		{"replies", &out.Replies, s.q.PruneReplies, []any{now.Add(-r.Ledger), retentionBatch}},
		{"answers", &out.Answers, s.q.PruneAnswers, []any{now.Add(-r.Ledger), retentionBatch}},
	}
	for _, st := range steps {
		for {
			progress(st.name)
			tag, err := s.pool.Exec(ctx, st.sql, st.args...)
			if err != nil {
				return out, fmt.Errorf("retain: prune %s: %w", st.name, err)
			}
			*st.n += tag.RowsAffected()
			if tag.RowsAffected() < retentionBatch {
				break
			}
		}
	}
	n, err := s.pruneRuns(ctx, now.Add(-r.Runs), progress)
	out.Runs = n
	if err != nil {
		return out, err
	}
	progress("consent evidence")
	out.Consent, err = s.purgeConsent(ctx, now.Add(-r.Consent))
	return out, err
}

// pruneRuns goes on with the pass over ended journey runs from where the
// last one stopped.
func (s *Store) pruneRuns(ctx context.Context, before time.Time, progress func(string)) (int64, error) {
	var deleted int64
	for {
		progress("journey runs")
		var read, gone int64
		if err := s.pool.QueryRow(ctx, s.q.PruneRuns, before, retentionBatch).Scan(&read, &gone); err != nil {
			return deleted, fmt.Errorf("retain: prune journey runs: %w", err)
		}
		deleted += gone
		if read < retentionBatch {
			// The pass reached the cutoff: the next begins again, for the
			// latest runs it kept may have been superseded since.
			if _, err := s.pool.Exec(ctx, s.q.ResetRunsCursor); err != nil {
				return deleted, fmt.Errorf("retain: reset runs cursor: %w", err)
			}
			return deleted, nil
		}
	}
}

// partitionedTables names the partitioned tables.
func (s *Store) partitionedTables(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.q.PartitionedTables)
	if err != nil {
		return nil, fmt.Errorf("partitioned tables: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("partitioned tables: %w", err)
	}
	return ts, nil
}

// EnsurePartitions creates the monthly partitions of every partitioned
// table from last month to ahead months after this one, where missing,
// and returns the names of those it created. Creating and attaching a
// partition locks its table only against other schema changes.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time, ahead int) ([]string, error) {
	tables, err := s.partitionedTables(ctx)
	if err != nil {
		return nil, err
	}
	month := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	var created []string
	for _, t := range tables {
		rows, err := s.pool.Query(ctx, s.q.EnsurePartitions, t, month.AddDate(0, -1, 0), month.AddDate(0, ahead+1, 0))
		if err != nil {
			return created, fmt.Errorf("create partitions of %s: %w", t, err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		created = append(created, names...)
		if err != nil {
			return created, fmt.Errorf("create partitions of %s: %w", t, err)
		}
	}
	return created, nil
}

// PartitionedUntil returns until when every partitioned table can take
// rows from now on: the end of the run of partitions without a gap that
// holds now, the earliest over the tables (now itself when a table has no
// partition for now). The retention job keeps it months ahead; when it
// comes near, inserts are about to fail (lojal_partitions_ahead_days).
func (s *Store) PartitionedUntil(ctx context.Context, now time.Time) (time.Time, error) {
	tables, err := s.partitionedTables(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var until time.Time
	for i, t := range tables {
		parts, err := s.Partitions(ctx, t)
		if err != nil {
			return time.Time{}, err
		}
		covered := now
		for _, p := range parts { // oldest first
			if !p.From.After(covered) && p.Before.After(covered) {
				covered = p.Before
			}
		}
		if i == 0 || covered.Before(until) {
			until = covered
		}
	}
	return until, nil
}

// Partition is one partition of a partitioned table.
type Partition struct {
	Name         string
	From, Before time.Time // From is the zero time for the legacy partition
}

// Partitions lists the partitions of a partitioned table, oldest first.
func (s *Store) Partitions(ctx context.Context, table string) ([]Partition, error) {
	rows, err := s.pool.Query(ctx, s.q.Partitions, table)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		var from, before pgtype.Timestamptz
		if err := rows.Scan(&p.Name, &from, &before); err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", table, err)
		}
		if from.InfinityModifier == pgtype.Finite {
			p.From = from.Time
		}
		p.Before = before.Time
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", table, err)
	}
	return out, nil
}

// DropPartitionsBefore drops the partitions of table whose every row is
// older than cutoff, oldest first, and returns their names. Each is first
// detached CONCURRENTLY, which never blocks the decisions and events
// being written: only dropping the detached table takes a lock that
// would, and no one reads it any more. A detach interrupted before (its
// partition is "detach pending") is finished first.
func (s *Store) DropPartitionsBefore(ctx context.Context, table string, cutoff time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.q.ExpiredPartitions, table, cutoff)
	if err != nil {
		return nil, fmt.Errorf("expired partitions of %s: %w", table, err)
	}
	type expired struct {
		Name    string
		Pending bool
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[expired])
	if err != nil {
		return nil, fmt.Errorf("expired partitions of %s: %w", table, err)
	}
	var dropped []string
	for _, p := range parts {
		parent, part := pgx.Identifier{table}.Sanitize(), pgx.Identifier{p.Name}.Sanitize()
		detach := "ALTER TABLE " + parent + " DETACH PARTITION " + part + " CONCURRENTLY"
		if p.Pending {
			detach = "ALTER TABLE " + parent + " DETACH PARTITION " + part + " FINALIZE"
		}
		// DETACH ... CONCURRENTLY cannot run inside a transaction: Exec
		// without arguments sends it alone, in the simple protocol.
		if err := s.ddl(ctx, detach); err != nil {
			return dropped, fmt.Errorf("detach partition %s: %w", p.Name, err)
		}
		if err := s.ddl(ctx, "DROP TABLE "+part); err != nil {
			return dropped, fmt.Errorf("drop partition %s: %w", p.Name, err)
		}
		dropped = append(dropped, p.Name)
	}
	return dropped, nil
}

// ddl runs a schema change on a connection of its own with a short lock
// timeout, trying again while it times out: a schema change queued
// behind a long report would hold every later query of the table behind
// it.
func (s *Store) ddl(ctx context.Context, sql string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET lock_timeout = '1s'"); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout") //nolint:errcheck // the pool resets a broken connection
	return retryLockTimeout(ctx, func() error { _, err := conn.Exec(ctx, sql); return err })
}
