package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of engagement recorded in the engagements table. Replies, answers
// and goals reached by a journey run are read from where they are already
// recorded; EngagedReply and the others exist for signals that arrive some
// other way (a helpdesk reporting a phone call back, say).
const (
	EngagedClick  = "click"
	EngagedReply  = "reply"
	EngagedAnswer = "answer"
	EngagedGoal   = "goal"
)

// Engagement is one thing a customer did with a message.
type Engagement struct {
	CustomerID string
	// MessageKey is the ledger idempotency key of the message, or empty.
	MessageKey string
	Kind       string
	At         time.Time
}

// RecordEngagement stores an engagement signal; recording the same one
// twice changes nothing.
func (s *Store) RecordEngagement(ctx context.Context, e Engagement) error {
	if _, err := s.pool.Exec(ctx, s.q.InsertEngagement, e.CustomerID, e.MessageKey, e.Kind, e.At); err != nil {
		return fmt.Errorf("record %s by %s: %w", e.Kind, e.CustomerID, err)
	}
	return nil
}

// RecordClick records a click on a tracked link in the message messageKey:
// one row per message, whose time is the latest click. first says whether
// it is the message's first click. A customer who is not there (erased)
// is ErrNotFound.
func (s *Store) RecordClick(ctx context.Context, customerID, messageKey string, at time.Time) (first bool, err error) {
	err = s.pool.QueryRow(ctx, s.q.RecordClick, customerID, messageKey, at).Scan(&first)
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("record click: customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("record click by %s: %w", customerID, err)
	}
	return first, nil
}

// Engagements lists a customer's recorded engagement signals, newest
// first.
func (s *Store) Engagements(ctx context.Context, customerID string) ([]Engagement, error) {
	rows, err := s.pool.Query(ctx, s.q.CustomerEngagements, customerID)
	if err != nil {
		return nil, err
	}
	var e Engagement
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Engagement, error) {
		err := row.Scan(&e.CustomerID, &e.MessageKey, &e.Kind, &e.At)
		return e, err
	})
}
