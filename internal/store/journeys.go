package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RecordRunGroup records which group of its journey's holdout a run is
// in: held out (kept out of the journey's sends) or treated.
func (s *Store) RecordRunGroup(ctx context.Context, journeyID, entryID string, heldOut bool) error {
	if _, err := s.pool.Exec(ctx, s.q.RecordRunGroup, journeyID, entryID, heldOut); err != nil {
		return fmt.Errorf("record run group: %w", err)
	}
	return nil
}

// ClaimEntry is a run's claim, when it starts, on the run row its entry
// recorded: the row takes the run's (first) run id unless the entry's run
// has ended or is another run. owned is false only when the row exists
// and did not take it: the run is a second start of an entry whose run is
// over (a replica's start made late), and must do nothing. An
// entry without a row (a run started outside routing) is owned.
func (s *Store) ClaimEntry(ctx context.Context, journeyID, entryID, runID string) (owned bool, err error) {
	var claimed, recorded bool
	if err := s.pool.QueryRow(ctx, s.q.ClaimEntry, journeyID, entryID, runID).Scan(&claimed, &recorded); err != nil {
		return false, fmt.Errorf("claim the run of entry %s of %s: %w", entryID, journeyID, err)
	}
	return claimed || !recorded, nil
}

// HoldoutMessage is a message a held-out run would have sent.
type HoldoutMessage struct {
	// RequestKey is the ledger's request key the message would have had.
	RequestKey, CustomerID, WorkflowID, JourneyID, Version, StepID string
	Template, Channel, Topic, Purpose, Priority                    string
	At                                                             time.Time
}

// RecordHoldoutMessage records what a held-out run would have sent. It is
// never a ledger row: nothing counts it as contact and nothing delivers
// it. Recording the same message twice (a retried activity) keeps one row.
func (s *Store) RecordHoldoutMessage(ctx context.Context, m HoldoutMessage) error {
	_, err := s.pool.Exec(ctx, s.q.InsertHoldoutMessage, m.RequestKey, m.CustomerID, m.WorkflowID, m.JourneyID, m.Version,
		m.StepID, m.Template, m.Channel, m.Topic, m.Purpose, m.Priority, m.At)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation: the customer was deleted
		return fmt.Errorf("record held-out message: customer %s: %w", m.CustomerID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record held-out message: %w", err)
	}
	return nil
}

// CustomerHoldoutMessages returns the messages a customer's held-out runs
// would have sent, oldest first.
func (s *Store) CustomerHoldoutMessages(ctx context.Context, customerID string) ([]HoldoutMessage, error) {
	rows, err := s.pool.Query(ctx, s.q.CustomerHoldoutMsgs, customerID)
	if err != nil {
		return nil, fmt.Errorf("held-out messages of %s: %w", customerID, err)
	}
	var out []HoldoutMessage
	var m HoldoutMessage
	_, err = pgx.ForEachRow(rows, []any{&m.JourneyID, &m.StepID, &m.Template, &m.Channel, &m.At}, func() error {
		m.CustomerID = customerID
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("held-out messages of %s: %w", customerID, err)
	}
	return out, nil
}

// JourneyGroup is one group of a journey's entrants in a period.
type JourneyGroup struct {
	Entrants int64
	Goals    int64
}

// JourneyStats is what the journeys report shows of one journey over a
// period: entrants treated and held out and how many reached the goal,
// messages sent (and those held-out runs would have sent), and
// unsubscribes and complaints attributed to the journey's messages.
type JourneyStats struct {
	JourneyID     string
	Treated       JourneyGroup
	HeldOut       JourneyGroup
	Messages      int64
	WouldHaveSent int64
	Unsubscribes  int64
	Complaints    int64
}

// UnsubscribeAttribution is how far back an unsubscribe that names no
// message (the preference centre, links made before links named their
// message) looks for the message it is attributed to: the customer's last
// before it. One that names its message is that message's.
const UnsubscribeAttribution = 30 * 24 * time.Hour

// JourneyReport returns per-journey statistics for runs started and
// messages decided in [from, to), sorted by journey id.
func (s *Store) JourneyReport(ctx context.Context, from, to time.Time) ([]JourneyStats, error) {
	by := map[string]*JourneyStats{}
	get := func(id string) *JourneyStats {
		if st, ok := by[id]; ok {
			return st
		}
		st := &JourneyStats{JourneyID: id}
		by[id] = st
		return st
	}
	rows, err := s.pool.Query(ctx, s.q.JourneyEntrants, from, to)
	if err != nil {
		return nil, fmt.Errorf("journey report: entrants: %w", err)
	}
	var (
		id       string
		held     bool
		n, goals int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &held, &n, &goals}, func() error {
		g := &get(id).Treated
		if held {
			g = &get(id).HeldOut
		}
		g.Entrants += n
		g.Goals += goals
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journey report: entrants: %w", err)
	}
	counts := []struct {
		what  string
		query string
		args  []any
		into  func(*JourneyStats) *int64
	}{
		{"messages", s.q.JourneyMessages, []any{from, to}, func(st *JourneyStats) *int64 { return &st.Messages }},
		{"would-have-sent", s.q.JourneyWouldHaveSent, []any{from, to}, func(st *JourneyStats) *int64 { return &st.WouldHaveSent }},
		{"complaints", s.q.JourneyComplaints, []any{from, to}, func(st *JourneyStats) *int64 { return &st.Complaints }},
		{"unsubscribes", s.q.JourneyUnsubscribes, []any{from, to, from.Add(-UnsubscribeAttribution)}, func(st *JourneyStats) *int64 { return &st.Unsubscribes }},
	}
	for _, c := range counts {
		rows, err := s.pool.Query(ctx, c.query, c.args...)
		if err != nil {
			return nil, fmt.Errorf("journey report: %s: %w", c.what, err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
			*c.into(get(id)) += n
			return nil
		}); err != nil {
			return nil, fmt.Errorf("journey report: %s: %w", c.what, err)
		}
	}
	out := make([]JourneyStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JourneyID < out[j].JourneyID })
	return out, nil
}
