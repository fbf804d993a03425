package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestPushAnswerWrittenAgainLands: the attempt that heard the push
// service writes its answer again while Postgres is away (a write whose
// reply was lost may have landed). Written again, the same final answer
// used to meet "its state is final": the attempt failed and the next one
// recovered the answer from the table, a needless retry. The same answer
// lands; a different one is still refused.
func TestPushAnswerWrittenAgainLands(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	const key = "w@r/s#1.1"
	if err := s.RecordPush(ctx, key, 7, store.PushDelivery{Status: "sending"}); err != nil {
		t.Fatal(err)
	}
	sent := store.PushDelivery{Status: "sent"}
	for range 2 {
		if err := s.RecordPush(ctx, key, 7, sent); err != nil {
			t.Fatalf("the answer written again: %v", err)
		}
	}
	if err := s.RecordPush(ctx, key, 7, store.PushDelivery{Status: "failed", Error: "410"}); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("another answer over a final one: %v, want ErrLedgerConflict", err)
	}
	got, err := s.PushDeliveries(ctx, key)
	if err != nil || got[7].Status != "sent" {
		t.Fatalf("push deliveries %+v %v, want subscription 7 sent", got, err)
	}
}
