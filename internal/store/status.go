package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UncertainSince counts, per channel, the messages handed over since
// since with no answer (lojal status): each is one a person may want to
// look at (docs/operations.md, "Uncertain deliveries").
func (s *Store) UncertainSince(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, s.q.UncertainSince, since, since.Add(-ContactSlack))
	if err != nil {
		return nil, fmt.Errorf("uncertain deliveries: %w", err)
	}
	out := map[string]int64{}
	var channel string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&channel, &n}, func() error {
		out[channel] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("uncertain deliveries: %w", err)
	}
	return out, nil
}
