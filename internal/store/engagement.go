package store

import (
	"context"
	"fmt"
	"time"
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
