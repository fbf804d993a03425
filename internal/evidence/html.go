package evidence

import (
	"html/template"
	"io"
	"strings"
	"time"
)

// HTML writes the evidence as a page a person reads: what the customer
// can be sent now and why, then every entry, request and message.
func (e Evidence) HTML(w io.Writer) error { return page.Execute(w, e) }

var page = template.Must(template.New("evidence").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
}).Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Consent evidence for customer {{ .Customer.ID }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1d2733; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: .92rem; }
th, td { border: 1px solid #d5dae1; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f3f6; } td.no { color: #9b2c2c; } td.yes { color: #276749; }
h2 { margin-top: 2rem; } .muted { color: #5a6573; }
</style></head>
<body>
<h1>Consent evidence for customer {{ .Customer.ID }}</h1>
<p class="muted">Generated {{ when .GeneratedAt }} by lojal from its consent ledger, which is append-only: entries are never changed, and the customer's consent is derived from all of them.
{{ .Kept }}.</p>
<table>
<tr><th>Customer</th><td>{{ .Customer.ID }}{{ if .Customer.Deleted }} (deleted; evidence kept){{ end }}</td></tr>
<tr><th>Email</th><td>{{ .Customer.Email }}</td></tr>
<tr><th>Language</th><td>{{ .Customer.Locale }}</td></tr>
<tr><th>Time zone</th><td>{{ .Customer.Timezone }}</td></tr>
</table>

<h2>What the customer can be sent now</h2>
<table>
<tr><th>Topic</th><th>Kind</th><th>Channel</th><th>Basis</th><th>Why</th></tr>
{{ range .Now }}<tr><td>{{ .Topic }}</td><td>{{ .Kind }}</td><td>{{ .Channel }}</td>
{{ if .Basis }}<td class="yes">{{ words (print .Basis) }}</td>{{ else }}<td class="no">none ({{ words (print .Reason) }})</td>{{ end }}<td>{{ .Fact }}</td></tr>
{{ end }}</table>

<h2>Consent ledger ({{ len .Entries }} entries)</h2>
<table>
<tr><th>#</th><th>When</th><th>Channel</th><th>Topic</th><th>Action</th><th>Basis</th><th>Wording as shown</th><th>Captured</th><th>Sale</th><th>Evidence</th></tr>
{{ range .Entries }}<tr><td>{{ .ID }}</td><td>{{ when .At }}<br><span class="muted">recorded {{ when .RecordedAt }}</span></td><td>{{ .Channel }}</td><td>{{ .Topic }}</td>
<td>{{ .Action }}</td><td>{{ words (print .Basis) }}</td>
<td>{{ if .Wording }}“{{ .Wording }}”{{ end }}{{ if .WordingVersion }}<br><span class="muted">version {{ .WordingVersion }}{{ if .Locale }}, {{ .Locale }}{{ end }}</span>{{ end }}</td>
<td>{{ words .Source }}{{ if .Actor }} by {{ .Actor }}{{ end }}</td>
<td>{{ if .SaleID }}{{ .SaleID }}, {{ when .SaleAt }}, product group {{ .ProductGroup }}{{ end }}</td>
<td>{{ .Fact }}{{ if .Evidence }}<br><span class="muted">{{ .Evidence }}</span>{{ end }}</td></tr>
{{ end }}</table>

<h2>Double opt-in requests</h2>
{{ if .Requests }}<table>
<tr><th>#</th><th>Asked</th><th>By</th><th>Sent to</th><th>Wording</th><th>Expires</th><th>Confirmed</th><th>Ledger entry</th></tr>
{{ range .Requests }}<tr><td>{{ .ID }}</td><td>{{ when .RequestedAt }}</td><td>{{ .RequestedBy }}</td><td>{{ .Address }}</td>
<td>“{{ .Wording }}”<br><span class="muted">version {{ .WordingVersion }}</span></td><td>{{ when .ExpiresAt }}</td><td>{{ when .ConfirmedAt }}</td><td>{{ if .EntryID }}{{ .EntryID }}{{ end }}</td></tr>
{{ end }}</table>{{ else }}<p class="muted">None.</p>{{ end }}

<h2>Messages sent ({{ len .Messages }})</h2>
{{ if .Messages }}<table>
<tr><th>Sent</th><th>Journey / step</th><th>Channel</th><th>Topic</th><th>Basis relied on</th><th>Subject</th></tr>
{{ range .Messages }}<tr><td>{{ when .SentAt }}{{ if eq .Status "uncertain" }}<br><span class="muted">possibly delivered</span>{{ end }}</td><td>{{ .Journey }} / {{ .Step }}</td><td>{{ .Channel }}</td><td>{{ .Topic }}</td>
<td>{{ if .Basis }}{{ words (print .Basis) }}: {{ .BasisFact }}{{ else }}<span class="muted">sent before the consent ledger</span>{{ end }}</td><td>{{ .Subject }}</td></tr>
{{ end }}</table>{{ else }}<p class="muted">None kept.</p>{{ end }}
</body></html>
`))
