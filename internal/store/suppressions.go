package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SentMessage is a message in the contact ledger that lojal sent, or
// began sending, to an address.
type SentMessage struct {
	LedgerID   int64
	CustomerID string
	MessageID  string
	// Address, Topic and At are set by MessageByID.
	Address string
	Topic   string
	At      time.Time
}

// MessageByID finds the email lojal sent (or may have sent: uncertain)
// with Message-ID messageID.
func (s *Store) MessageByID(ctx context.Context, messageID string) (SentMessage, bool, error) {
	var m SentMessage
	err := s.pool.QueryRow(ctx, s.q.MessageByID, messageID).Scan(&m.LedgerID, &m.CustomerID, &m.MessageID, &m.Address, &m.Topic, &m.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return SentMessage{}, false, nil
	}
	if err != nil {
		return SentMessage{}, false, fmt.Errorf("message %s: %w", messageID, err)
	}
	return m, true, nil
}

// SentTo finds the message with Message-ID messageID or idempotency key
// key (either may be empty) that lojal sent to address. Bounce and
// complaint reports are applied only to such a message's recipient.
func (s *Store) SentTo(ctx context.Context, address, messageID, key string) (SentMessage, bool, error) {
	match := func(q, arg string) (SentMessage, bool, error) {
		rows, err := s.pool.Query(ctx, q, arg)
		if err != nil {
			return SentMessage{}, false, err
		}
		var row, match SentMessage
		var to string
		found := false
		_, err = pgx.ForEachRow(rows, []any{&row.LedgerID, &row.CustomerID, &row.MessageID, &to}, func() error {
			if !found && strings.EqualFold(strings.TrimSpace(to), strings.TrimSpace(address)) {
				match, found = row, true
			}
			return nil
		})
		if err != nil || !found {
			return SentMessage{}, false, err
		}
		return match, true, nil
	}
	if key != "" {
		m, ok, err := match(s.q.SentByKey, key)
		if err != nil || ok {
			return m, ok, wrap("sent to "+address, err)
		}
	}
	if messageID != "" {
		m, ok, err := match(s.q.SentByMessageID, messageID)
		return m, ok, wrap("sent to "+address, err)
	}
	return SentMessage{}, false, nil
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Suppression is an address nothing may be sent to.
type Suppression struct {
	Channel   string    `json:"channel"`
	Address   string    `json:"address"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// SuppressionPage selects suppressions: all, or one address; after the
// (Channel, Address) of the last one seen.
type SuppressionPage struct {
	Address      string
	AfterChannel string
	AfterAddress string
	Limit        int
}

// Suppressions lists suppressions in (channel, address) order.
func (s *Store) Suppressions(ctx context.Context, p SuppressionPage) ([]Suppression, error) {
	if p.Limit <= 0 || p.Limit > 1000 {
		p.Limit = 1000
	}
	rows, err := s.pool.Query(ctx, s.q.ListSuppressions, p.Address, p.AfterChannel, p.AfterAddress, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Suppression])
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	return out, nil
}

// Lift is the audit record of a lifted suppression.
type Lift struct {
	ID           int64     `json:"id"`
	Channel      string    `json:"channel"`
	Address      string    `json:"address"`
	Reason       string    `json:"reason"`
	Detail       string    `json:"detail,omitempty"`
	SuppressedAt time.Time `json:"suppressed_at"`
	LiftedBy     string    `json:"lifted_by"`
	Why          string    `json:"why"`
	LiftedAt     time.Time `json:"lifted_at"`
}

// LiftSuppression removes a suppression and records who lifted it and
// why, atomically. It returns ErrNotFound when the address is not
// suppressed.
func (s *Store) LiftSuppression(ctx context.Context, channel, address, by, why string) (Lift, error) {
	if strings.TrimSpace(by) == "" || strings.TrimSpace(why) == "" {
		return Lift{}, errors.New("lift suppression: who lifts it and why are required")
	}
	rows, err := s.pool.Query(ctx, s.q.LiftSuppression, channel, address, by, why)
	if err != nil {
		return Lift{}, fmt.Errorf("lift suppression of %s: %w", address, err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Lift])
	if errors.Is(err, pgx.ErrNoRows) {
		return Lift{}, fmt.Errorf("%s %s is not suppressed: %w", channel, address, ErrNotFound)
	}
	if err != nil {
		return Lift{}, fmt.Errorf("lift suppression of %s: %w", address, err)
	}
	return l, nil
}

// Lifts lists lifted suppressions, newest first: all, or one address.
func (s *Store) Lifts(ctx context.Context, address string, limit int) ([]Lift, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, s.q.ListLifts, address, limit)
	if err != nil {
		return nil, fmt.Errorf("list lifted suppressions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Lift])
	if err != nil {
		return nil, fmt.Errorf("list lifted suppressions: %w", err)
	}
	return out, nil
}
