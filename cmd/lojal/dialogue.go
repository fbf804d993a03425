package main

import (
	"context"
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// newReplies builds the reply intake: replies become message.replied
// events, routed like any event, and a Conversation workflow forwards
// them to their helper. Nil without a VERP (no reply addresses).
func newReplies(st *store.Store, verp *bounce.VERP, cat catalog.Source, tc client.Client, d *ingest.Dispatcher,
	domain string, log *slog.Logger, m *metrics.Metrics) *dialogue.Intake {
	if verp == nil {
		return nil
	}
	return &dialogue.Intake{Store: st, VERP: verp, Catalog: cat, Temporal: tc, TaskQueue: workflows.TaskQueue,
		MessageDomain: domain, Log: log, Metrics: m,
		Ingest: func(ctx context.Context, e journey.Event) error {
			_, err := d.Event(ctx, e)
			return err
		}}
}
