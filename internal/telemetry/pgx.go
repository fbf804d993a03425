package telemetry

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// QueryTracer makes a client span for each query and batch a traced piece
// of work sends to Postgres (pgx's ConnConfig.Tracer), named after the
// prepared statement: "db insert-events". Arguments are never recorded:
// they are customers' data.
type QueryTracer struct{}

type querySpan struct{}

var dbSystem = attribute.String("db.system.name", "postgresql")

func (QueryTracer) start(ctx context.Context, name string, attrs ...attribute.KeyValue) context.Context {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx
	}
	ctx, span := parent.TracerProvider().Tracer(Scope).Start(ctx, "db "+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(attrs, dbSystem)...))
	return context.WithValue(ctx, querySpan{}, span)
}

func end(ctx context.Context, err error) {
	if span, ok := ctx.Value(querySpan{}).(trace.Span); ok {
		End(span, err)
	}
}

// statement names a query: lojal passes prepared statements' names where
// pgx takes SQL; anything else (BEGIN, COMMIT) is named by its first word.
func statement(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexAny(sql, " \t\n"); i >= 0 {
		return strings.ToUpper(sql[:i])
	}
	return sql
}

// TraceQueryStart implements pgx.QueryTracer.
func (t QueryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	name := statement(data.SQL)
	return t.start(ctx, name, attribute.String("db.operation.name", name))
}

// TraceQueryEnd implements pgx.QueryTracer.
func (QueryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.Err)
}

// batchPreamble are the statements that only set up a batch's
// transaction (decide-timeouts: a decision's lock and statement
// timeouts; generic-plans), never what a batch is named by.
func batchPreamble(st string) bool { return st == "decide-timeouts" || st == "generic-plans" }

// TraceBatchStart implements pgx.BatchTracer.
func (t QueryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	// A batch is named by its first prepared statement, the one that says
	// what it is for (lock-customer: a policy decision), not by a BEGIN or
	// the transaction's settings before it; its statements are events.
	name := "batch"
	for _, q := range data.Batch.QueuedQueries {
		if st := statement(q.SQL); st != strings.ToUpper(st) && !batchPreamble(st) {
			name += " " + st
			break
		}
	}
	return t.start(ctx, name, attribute.Int("db.operation.batch.size", data.Batch.Len()))
}

// TraceBatchQuery implements pgx.BatchTracer: each statement of the batch
// is an event on its span.
func (QueryTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if span, ok := ctx.Value(querySpan{}).(trace.Span); ok {
		attrs := []attribute.KeyValue{attribute.String("db.operation.name", statement(data.SQL))}
		if data.Err != nil {
			attrs = append(attrs, attribute.String("error", data.Err.Error()))
		}
		span.AddEvent("query", trace.WithAttributes(attrs...))
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (QueryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	end(ctx, data.Err)
}
