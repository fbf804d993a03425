package stacktest

import (
	"context"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// DBRoundTrips runs f in a trace of its own and returns the round trips
// to Postgres it made, as the store names them ("db insert-events", "db
// batch set-run-id"): each query or batch the store sends is a span.
func DBRoundTrips(ctx context.Context, f func(ctx context.Context)) []string {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tctx, root := tp.Tracer("stacktest").Start(ctx, "round trips")
	f(tctx)
	root.End()
	var trips []string
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "db ") {
			trips = append(trips, s.Name)
		}
	}
	return trips
}
