package telemetry

import (
	"context"
	"log/slog"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler adds the trace and span ids of the span in a record's
// context (trace_id, span_id) to every record logged with one
// (InfoContext, WarnContext...), so a log line of a traced piece of work
// leads to its trace, and a trace to its log lines.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	masked := false
	r.Attrs(func(a slog.Attr) bool {
		masked = masked || addressKeys[a.Key]
		return !masked
	})
	if masked {
		out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			out.AddAttrs(maskAddress(a))
			return true
		})
		r = out
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = maskAddress(a)
	}
	return logHandler{h.Handler.WithAttrs(out)}
}

// addressKeys are the attributes that hold a person's email address.
// Logged whole, an address outlives the customer's erasure in every log
// store; masked, the domain (which provider bounced) is kept.
var addressKeys = map[string]bool{"address": true, "email": true, "from": true, "to": true, "mail_from": true, "rcpt_to": true}

// maskAddress masks the local part of an address attribute:
// kari@example.no is k***@example.no.
func maskAddress(a slog.Attr) slog.Attr {
	if !addressKeys[a.Key] {
		return a
	}
	switch v := a.Value.Any().(type) {
	case string:
		return slog.String(a.Key, mask(v))
	case []string: // an SMTP session's recipients
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = mask(s)
		}
		return slog.Any(a.Key, out)
	}
	return a
}

func mask(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	if at == 0 {
		return "***" + s[at:]
	}
	first, _ := utf8.DecodeRuneInString(s)
	return string(first) + "***" + s[at:]
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
