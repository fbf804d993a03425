package studio

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/diagram"
	"github.com/lojal/lojal/internal/gitfs"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/simulate"
)

var pages = template.Must(template.New("studio").Funcs(template.FuncMap{
	"join": strings.Join,
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en" data-version="{{.Version}}"><head><meta charset="utf-8">
<title>{{.Title}} · lojal studio</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#0f172a;background:#f8fafc}
header{display:flex;gap:24px;align-items:center;padding:10px 20px;background:#1e293b;color:#f8fafc}
header a{color:#cbd5e1;text-decoration:none;margin-right:16px}header a.on{color:#fff;font-weight:bold}
header .dir{margin-left:auto;color:#94a3b8;font-size:12px}
main{padding:16px 20px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:17px;margin:24px 0 6px}h3{font-size:15px;margin:16px 0 6px}
section.journey{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px 16px 16px;margin-bottom:18px;overflow-x:auto}
.problems{background:#fef2f2;border:1px solid #fecaca;border-radius:6px;padding:8px 12px;color:#991b1b}
.problems li{font-family:ui-monospace,monospace;font-size:12px}
.ok{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:6px;padding:6px 12px;color:#166534}
.muted{color:#64748b;font-size:12px}
.sample textarea{width:100%;font:12px ui-monospace,monospace;box-sizing:border-box}
.sample{display:grid;grid-template-columns:1fr 1fr;gap:12px;background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px}
.sample .wide{grid-column:1/3}
button{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:6px 14px;font-size:14px;cursor:pointer}
.locales{display:flex;flex-direction:column;gap:14px}
.locale{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px 14px}
.email{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.email iframe{width:100%;height:320px;border:1px solid #cbd5e1;border-radius:4px;background:#fff}
.email pre{white-space:pre-wrap;margin:0;border:1px solid #cbd5e1;border-radius:4px;padding:8px;background:#fff;font:13px ui-monospace,monospace;max-height:320px;overflow:auto}
.subject{font-weight:bold;margin:4px 0}
.push{display:flex;gap:10px;width:360px;background:#334155;color:#f8fafc;border-radius:14px;padding:12px 14px;box-shadow:0 2px 6px #0003}
.push .icon{width:36px;height:36px;border-radius:8px;background:#38bdf8;flex:none}
.push .title{font-weight:bold}.push .app{font-size:11px;color:#cbd5e1}
.error{color:#b91c1c;font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%}td,th{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-size:12px}
tr.allow td.decision{color:#166534;font-weight:bold}tr.defer td.decision{color:#b45309;font-weight:bold}tr.suppress td.decision{color:#b91c1c;font-weight:bold}
tr.defer{background:#fffbeb}tr.suppress{background:#fef2f2}
.pressure{background:#fff7ed;color:#9a3412;border-left:4px solid #ea580c}
.inflight{background:#eff6ff;color:#1e3a8a;border-left:4px solid #2563eb}
.tag{display:inline-block;font-size:11px;border-radius:4px;padding:0 5px;margin-right:4px}
.tag.pressure{border:0;background:#ea580c;color:#fff}.tag.inflight{border:0;background:#2563eb;color:#fff}.tag.breaks{background:#dc2626;color:#fff}
.old{color:#991b1b;background:#fef2f2;font-family:ui-monospace,monospace;white-space:pre-wrap}
.new{color:#166534;background:#f0fdf4;font-family:ui-monospace,monospace;white-space:pre-wrap}
.diffline{font:12px ui-monospace,monospace;white-space:pre-wrap;margin:0}
input[type=text]{font:13px ui-monospace,monospace;width:22em}
</style>
<script src="/studio.js" defer></script>
</head><body>
<header><b>lojal studio</b><nav>
<a href="/" {{if eq .Page "journeys"}}class="on"{{end}}>Journeys</a>
<a href="/templates" {{if eq .Page "templates"}}class="on"{{end}}>Messages</a>
<a href="/simulate" {{if eq .Page "simulate"}}class="on"{{end}}>Simulate</a>
<a href="/diff" {{if eq .Page "diff"}}class="on"{{end}}>Diff</a></nav>
<span class="dir">{{.Dir}} · read {{.Loaded}} · reloads when a file changes</span></header><main>
{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "journeys"}}{{template "head" .}}
<h1>Journeys in {{.Dir}}</h1>
{{if .Other}}<div class="problems"><b>{{len .Other}} problems outside the journeys' steps</b><ul>{{range .Other}}<li>{{.}}</li>{{end}}</ul></div>
{{else if not .Count}}<p class="ok">Every journey, the schema, the policy and the templates are valid.</p>{{end}}
{{range .Journeys}}<section class="journey" id="j-{{.ID}}">
<h2>{{if .Name}}{{.Name}}{{else}}{{.File}}{{end}} <span class="muted">{{.ID}} · {{.File}}{{if .Version}} · version {{.Version}}{{end}}</span></h2>
{{if .Problems}}<div class="problems"><ul>{{range .Problems}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
{{.SVG}}
</section>{{end}}
{{template "foot" .}}{{end}}

{{define "sampleform"}}<form method="post" action="/sample" class="sample">
<input type="hidden" name="back" value="{{.Back}}">
<label>Customer (JSON, as the API takes it)<textarea name="customer" rows="12">{{.Sample.Customer}}</textarea></label>
<label>Events (one JSON object a line){{if .ForTemplates}}: the trigger event is .Event, events a wait_for gets are .Received; missing ones are made from the schema{{end}}<textarea name="events" rows="12">{{.Sample.Events}}</textarea></label>
{{if .Picks}}<label>or pick a customer from the customer file <select name="pick"><option value="">…</option>{{range .Picks}}<option value="{{.ID}}">{{.Name}}</option>{{end}}</select></label>{{end}}
{{if .ShowDays}}<label>Days to simulate <input type="number" name="days" value="{{.Sample.Days}}" min="1" max="400"></label>
<label class="wide">Customer file for the audience preview (JSON array or one customer a line)<textarea name="customers" rows="4">{{.Sample.Customers}}</textarea></label>{{end}}
<div class="wide"><button type="submit">Show</button> {{if .SampleError}}<span class="error">{{.SampleError}}</span>{{end}}</div>
</form>{{end}}

{{define "templates"}}{{template "head" .}}
<h1>Messages as customers see them</h1>
{{template "sampleform" .}}
{{range .Templates}}<h2 id="t-{{.Name}}">{{.Name}} <span class="muted">{{if .UsedBy}}sent by {{join .UsedBy ", "}}{{else}}not sent by any journey{{end}}</span></h2>
<div class="locales">{{range .Locales}}<div class="locale" data-template="{{.Template}}" data-locale="{{.Locale}}">
<h3>{{.Locale}}</h3>
{{range .Errors}}<p class="error">{{.}}</p>{{end}}
{{if .Email}}<p class="subject">Subject: {{.Email.Subject}}</p>
<div class="email"><iframe title="{{.Template}} {{.Locale}} HTML" sandbox srcdoc="{{.Email.HTML}}"></iframe><pre>{{.Email.Text}}</pre></div>{{end}}
{{if .Push}}<div class="push"><div class="icon"></div><div><div class="app">lojal · now</div><div class="title">{{.Push.Title}}</div><div>{{.Push.Body}}</div>{{if .Push.URL}}<div class="app">{{.Push.URL}}</div>{{end}}</div></div>{{end}}
</div>{{end}}</div>{{end}}
{{template "foot" .}}{{end}}

{{define "simulate"}}{{template "head" .}}
<h1>Simulate every journey at once</h1>
{{template "sampleform" .}}
{{if .Error}}<p class="problems">{{.Error}}</p>{{end}}
{{if .Customer}}<h2>What {{.Customer}} gets, in {{.Zone}}</h2>
<p class="muted">Every journey runs for this customer with one relationship policy between them, as in production: sent, deferred (and until when) and suppressed, with the reason. Nothing is sent.</p>
<table class="timeline"><tr><th>Local time</th><th>Journey</th><th>Step</th><th>What</th><th>Decision</th><th>Why</th></tr>
{{range .Lines}}<tr class="{{.Class}}"><td>{{.At}}</td><td>{{.Journey}}</td><td>{{.Step}}</td><td>{{.What}}</td><td class="decision">{{.Decision}}</td><td>{{.Why}}</td></tr>{{end}}
</table>{{end}}
<h2>Audience preview</h2>
<p class="muted">How many customers of the customer file each journey's audience lets in, today.</p>
<table class="audience"><tr><th>Journey</th><th>Audience</th><th>Matched</th><th>Who</th></tr>
{{range .Audience}}<tr><td>{{.Journey}}</td><td><code>{{if .Audience}}{{.Audience}}{{else}}(everyone){{end}}</code></td><td>{{.Matched}} of {{.Total}}{{if .Undecided}}, {{.Undecided}} undecided{{end}}</td><td>{{join .Names ", "}}{{range .Problems}}<div class="error">{{.}}</div>{{end}}</td></tr>{{end}}
</table>
{{template "foot" .}}{{end}}

{{define "diff"}}{{template "head" .}}
<h1>What changes</h1>
<form method="get" action="/diff">Old <input type="text" name="old" value="{{.Old}}"> New <input type="text" name="new" value="{{.New}}"> <button type="submit">Compare</button>
<p class="muted">A directory, or a directory at a git revision: HEAD:journeys, main~3:journeys. Journeys are versioned: runs in flight keep their version, so a journey's changes reach new entrants. Templates and the policy are read when a message goes out: <span class="tag inflight">in flight</span> marks what reaches customers already in a journey at once. <span class="tag pressure">pressure</span> marks what can bring customers more messages.</p></form>
{{if .Error}}<p class="problems">{{.Error}}</p>{{end}}
{{if .Done}}{{if .Empty}}<p class="ok">No changes.</p>{{end}}
{{range .Journeys}}<h2>journey {{.ID}} <span class="muted">{{.Status}}{{if .OldVersion}} · version {{.OldVersion}}{{end}}{{if .NewVersion}} → {{.NewVersion}}{{end}}</span></h2>
{{if .Changes}}<table><tr><th>Where</th><th>Field</th><th>Old</th><th>New</th><th>Matters</th></tr>
{{range .Changes}}<tr class="{{.Class}}"><td>{{.Where}}</td><td>{{.Field}}</td><td class="old">{{.Old}}</td><td class="new">{{.New}}</td><td>{{if .Breaks}}<span class="tag breaks">runs waiting here</span> cannot move to the new version without --map{{end}}{{if .Pressure}}<span class="tag pressure">pressure</span>{{.Pressure}}{{end}}</td></tr>{{end}}
</table>{{end}}{{end}}
{{if .Policy}}<h2>policy <span class="tag inflight">in flight</span></h2><table><tr><th>Field</th><th>Old</th><th>New</th><th>Matters</th></tr>
{{range .Policy}}<tr class="inflight {{if .Pressure}}pressure{{end}}"><td>{{.Field}}</td><td class="old">{{.Old}}</td><td class="new">{{.New}}</td><td>{{if .Pressure}}<span class="tag pressure">pressure</span>{{.Pressure}}{{end}}</td></tr>{{end}}</table>{{end}}
{{if .Schema}}<h2>schema</h2><table><tr><th>Field</th><th>Old</th><th>New</th></tr>
{{range .Schema}}<tr><td>{{.Field}}</td><td class="old">{{.Old}}</td><td class="new">{{.New}}</td></tr>{{end}}</table>{{end}}
{{range .Templates}}<h3>template {{.Template}}/{{.Locale}} {{.Part}} <span class="tag inflight">in flight</span> <span class="muted">{{if .UsedBy}}sent by {{join .UsedBy ", "}}{{end}}</span></h3>
<div class="inflight">{{range .Lines}}<pre class="diffline {{.Class}}">{{.Text}}</pre>{{end}}</div>{{end}}
{{end}}
{{template "foot" .}}{{end}}
`))

// frame is what every page's head shows.
type frame struct {
	Title, Page, Dir, Loaded, Version string
}

func (s *Studio) frame(title, page string) frame {
	sn := s.current()
	return frame{Title: title, Page: page, Dir: s.dir, Loaded: sn.loadedAt.Format("15:04:05"), Version: sn.hash}
}

func (s *Studio) execute(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("studio: page", "page", name, "err", err)
	}
}

type journeyView struct {
	ID, Name, File, Version string
	Problems                []string
	SVG                     template.HTML
}

func (s *Studio) journeysPage(w http.ResponseWriter, r *http.Request) {
	sn := s.current()
	steps, whole, other := sn.problemsByStep()
	var views []journeyView
	for _, o := range sn.outlines {
		v := journeyView{ID: o.ID, Name: o.Name, File: o.File, Problems: whole[o.File]}
		if j, ok := sn.journey(o.ID); ok && j.File == o.File {
			v.Version = j.Version
		}
		for i, st := range o.Steps {
			for _, p := range steps[o.File][i] {
				v.Problems = append(v.Problems, "step "+st.ID+": "+p)
			}
		}
		// Diagrams are built here, escaped as they are built.
		v.SVG = template.HTML(diagram.SVG(o, steps[o.File], whole[o.File])) //nolint:gosec // every string in it is escaped by diagram.SVG
		views = append(views, v)
	}
	var others []string
	for _, e := range other {
		others = append(others, e.Error())
	}
	s.execute(w, "journeys", struct {
		frame
		Journeys []journeyView
		Other    []string
		Count    int
	}{s.frame("Journeys", "journeys"), views, others, len(sn.errs)})
}

func (sn *snapshot) journey(id string) (*journey.Journey, bool) {
	if sn.cat == nil {
		return nil, false
	}
	for _, j := range sn.cat.Journeys {
		if j.ID == id {
			return j, true
		}
	}
	return nil, false
}

// diagram serves one journey's diagram as an SVG file.
func (s *Studio) diagram(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("id"), ".svg")
	sn := s.current()
	steps, whole, _ := sn.problemsByStep()
	for _, o := range sn.outlines {
		if o.ID == id {
			w.Header().Set("Content-Type", "image/svg+xml")
			_, _ = w.Write([]byte(diagram.SVG(o, steps[o.File], whole[o.File])))
			return
		}
	}
	http.NotFound(w, r)
}

type pick struct{ ID, Name string }

type sampleForm struct {
	Sample       sample
	Back         string
	Picks        []pick
	ShowDays     bool
	ForTemplates bool
	SampleError  string
}

func (s *Studio) sampleForm(back string) sampleForm {
	smp := s.currentSample()
	f := sampleForm{Sample: smp, Back: back}
	cs, err := parseCustomers(smp.Customers)
	if err != nil {
		f.SampleError = err.Error()
	}
	for _, c := range cs {
		name := c.ID
		if fn, ok := c.Attributes["first_name"].(string); ok {
			ln, _ := c.Attributes["last_name"].(string)
			name = strings.TrimSpace(fn+" "+ln) + " (" + c.ID + ")"
		}
		f.Picks = append(f.Picks, pick{c.ID, name})
	}
	return f
}

type localeView struct {
	Template, Locale string
	Email            *render.Message
	Push             *render.Message
	Errors           []string
}

type templateView struct {
	Name    string
	UsedBy  []string
	Locales []localeView
}

func (s *Studio) templatesPage(w http.ResponseWriter, r *http.Request) {
	sn := s.current()
	form := s.sampleForm("/templates")
	form.ForTemplates = true
	var views []templateView
	cust, events, err := s.sampleData()
	if err != nil {
		form.SampleError = err.Error()
	}
	if sn.cat != nil && sn.cat.Schema != nil && err == nil {
		for _, name := range sn.cat.Templates.Names() {
			tv := templateView{Name: name}
			var users []*journey.Journey
			for _, j := range sn.cat.Journeys {
				if _, ok := j.Templates()[name]; ok {
					users = append(users, j)
					tv.UsedBy = append(tv.UsedBy, j.ID)
				}
			}
			for _, l := range sn.cat.Templates.Locales(name) {
				t, _ := sn.cat.Templates.Get(name, l)
				tv.Locales = append(tv.Locales, s.renderLocale(sn.cat, t, users, cust, events))
			}
			views = append(views, tv)
		}
	}
	s.execute(w, "templates", struct {
		frame
		sampleForm
		Templates []templateView
	}{s.frame("Messages", "templates"), form, views})
}

// sampleData parses the sample customer and events.
func (s *Studio) sampleData() (journey.Customer, []journey.Event, error) {
	smp := s.currentSample()
	c, err := parseCustomer(smp.Customer)
	if err != nil {
		return c, nil, err
	}
	evs, err := parseEvents(smp.Events)
	return c, evs, err
}

// renderLocale renders one template file for the sample customer, in the
// file's own locale, on each channel it has the parts for.
func (s *Studio) renderLocale(cat *catalog.Catalog, t *render.Template, users []*journey.Journey, cust journey.Customer, events []journey.Event) localeView {
	v := localeView{Template: t.Name, Locale: t.Locale}
	cust.Locale = t.Locale
	checked, err := cat.Schema.CheckCustomer(cust)
	if err != nil {
		v.Errors = append(v.Errors, "customer: "+err.Error())
		return v
	}
	cv, err := cat.Schema.CustomerVars(checked)
	if err != nil {
		v.Errors = append(v.Errors, err.Error())
		return v
	}
	loc := cat.Rules.Location
	if checked.Timezone != "" {
		if l, err := journey.LoadLocation(checked.Timezone); err == nil {
			loc = l
		}
	}
	find := func(typ string) *journey.Event {
		for i := range events {
			if events[i].Type == typ {
				e := events[i]
				return &e
			}
		}
		e := exampleEvent(cat, typ, cust.ID, s.now())
		return &e
	}
	data := render.Data{Customer: cv, Location: loc,
		Links: render.Links{Unsubscribe: "http://preview.invalid/u/example", Preferences: "http://preview.invalid/p/example"}}
	if len(users) > 0 {
		j := users[0]
		if j.Trigger.Event != "" {
			if data.Event, err = cat.Schema.EventVars(find(j.Trigger.Event)); err != nil {
				v.Errors = append(v.Errors, err.Error())
			}
		}
		received := map[string]*journey.Event{}
		for _, st := range j.Steps {
			if st.WaitFor != nil {
				received[st.WaitFor.Event] = find(st.WaitFor.Event)
			}
		}
		if data.Received, err = cat.Schema.ReceivedVars(received); err != nil {
			v.Errors = append(v.Errors, err.Error())
		}
	}
	if len(t.Missing(policy.Email)) == 0 {
		m, err := t.Render(policy.Email, data)
		if err != nil {
			v.Errors = append(v.Errors, "email: "+err.Error())
		} else {
			v.Email = &m
		}
	}
	if len(t.Missing(policy.Push)) == 0 {
		m, err := t.Render(policy.Push, data)
		if err != nil {
			v.Errors = append(v.Errors, "push: "+err.Error())
		} else {
			v.Push = &m
		}
	}
	return v
}

type lineView struct {
	At, Journey, Step, What, Decision, Why, Class string
}

func (s *Studio) simulatePage(w http.ResponseWriter, r *http.Request) {
	sn := s.current()
	form := s.sampleForm("/simulate")
	form.ShowDays = true
	page := struct {
		frame
		sampleForm
		Customer, Zone, Error string
		Lines                 []lineView
		Audience              []simulate.AudienceCount
	}{frame: s.frame("Simulate", "simulate"), sampleForm: form}
	cust, events, err := s.sampleData()
	switch {
	case sn.cat == nil || sn.cat.Schema == nil || sn.cat.Rules == nil:
		page.Error = "the schema or policy has problems (see Journeys): nothing can be simulated until they are fixed"
	case err != nil:
		page.Error = err.Error()
	default:
		if len(sn.errs) > 0 {
			page.Error = fmt.Sprintf("%d problems in the directory (see Journeys): journeys with problems are left out", len(sn.errs))
		}
		s.simulateInto(sn.cat, cust, events, form.Sample.Days, &page.Customer, &page.Zone, &page.Lines, &page.Error)
		customers, err := parseCustomers(form.Sample.Customers)
		if err != nil {
			page.Error = err.Error()
		}
		page.Audience = simulate.Audience(sn.cat.Journeys, customers, s.now())
	}
	s.execute(w, "simulate", page)
}

func (s *Studio) simulateInto(cat *catalog.Catalog, cust journey.Customer, events []journey.Event, days int, name, zone *string, out *[]lineView, errMsg *string) {
	if len(cat.Journeys) == 0 {
		*errMsg = "no valid journey to simulate"
		return
	}
	opts := simulate.Options{Journeys: cat.Journeys, Rules: *cat.Rules, Templates: cat.Templates, Customer: cust, Events: events, Days: days}
	if len(events) == 0 {
		opts.Start = s.now()
	}
	lines, err := simulate.Run(opts)
	if err != nil {
		*errMsg = "simulation stopped: " + err.Error()
	}
	loc := cat.Journeys[0].CustomerLocation(cust)
	*name = displayName(cust)
	start := s.now()
	if len(lines) > 0 {
		start = lines[0].At
	}
	*zone = journey.ZoneName(loc, start)
	for _, l := range lines {
		v := lineView{At: journey.LocalTime(l.At, loc), Journey: l.Journey, Step: l.Step, Class: l.Decision}
		switch l.Kind {
		case "send":
			v.What = fmt.Sprintf("%s on %s", l.Template, l.Channel)
			if l.Subject != "" {
				v.What += fmt.Sprintf(": %q", l.Subject)
			}
			v.Decision = map[string]string{"allow": "sent", "defer": "deferred", "suppress": "suppressed"}[l.Decision]
			if l.Until != nil {
				v.Decision += " until " + journey.LocalTime(*l.Until, loc)
			}
			if l.Reason != string(policy.ReasonOK) {
				v.Why = policy.Explain(policy.Reason(l.Reason))
			}
		case "wait", "wait_for":
			v.What = "waits until " + journey.LocalTime(*l.Until, loc)
			if l.Event != "" {
				v.What += " or " + l.Event
			}
		case "event":
			v.What = "event " + l.Event
		case "done":
			v.What = "run ends: " + l.Reason
		default:
			v.What = l.Kind
		}
		if l.Note != "" {
			v.Why = strings.TrimPrefix(strings.TrimSpace(v.Why+" "+l.Note), " ")
		}
		*out = append(*out, v)
	}
}

func displayName(c journey.Customer) string {
	fn, _ := c.Attributes["first_name"].(string)
	ln, _ := c.Attributes["last_name"].(string)
	if n := strings.TrimSpace(fn + " " + ln); n != "" {
		return n + " (" + c.ID + ")"
	}
	return c.ID
}

type changeView struct {
	Where, Field, Old, New, Pressure, Class string
	Breaks                                  bool
}

type diffLineView struct{ Text, Class string }

type templateDiffView struct {
	catalog.TemplateChange
	Lines []diffLineView
}

type journeyDiffView struct {
	catalog.JourneyDiff
	Changes []changeView
}

func (s *Studio) diffPage(w http.ResponseWriter, r *http.Request) {
	page := struct {
		frame
		Old, New, Error string
		Done, Empty     bool
		Journeys        []journeyDiffView
		Policy          []catalog.FieldChange
		Schema          []catalog.FieldChange
		Templates       []templateDiffView
	}{frame: s.frame("Diff", "diff"), Old: r.URL.Query().Get("old"), New: r.URL.Query().Get("new")}
	if page.Old == "" {
		page.Old = "HEAD:" + filepath.ToSlash(s.dir)
	}
	if page.New == "" {
		page.New = s.dir
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	old, err := s.side(ctx, page.Old)
	if err == nil {
		var nw *catalog.Catalog
		if nw, err = s.side(ctx, page.New); err == nil {
			d := catalog.Compare(old, nw)
			page.Done, page.Empty = true, d.Empty()
			page.Policy, page.Schema = d.Policy, d.Schema
			for _, j := range d.Journeys {
				jv := journeyDiffView{JourneyDiff: j}
				for _, c := range j.Changes {
					cv := changeView{Field: c.Field, Old: c.Old, New: c.New, Pressure: c.Pressure, Breaks: c.Breaks}
					cv.Where = "journey"
					if c.Step != "" {
						cv.Where = "step " + c.Step
					}
					switch c.Kind {
					case "added", "removed", "renamed":
						cv.Field = "step " + c.Kind
						if c.Kind == "renamed" {
							cv.Old, cv.New = c.Step, c.To
						}
					}
					if c.Pressure != "" {
						cv.Class = "pressure"
					}
					jv.Changes = append(jv.Changes, cv)
				}
				page.Journeys = append(page.Journeys, jv)
			}
			for _, t := range d.Templates {
				tv := templateDiffView{TemplateChange: t}
				for _, l := range catalog.LineDiff(t.Old, t.New) {
					cls := map[byte]string{'-': "old", '+': "new", ' ': ""}[l.Op]
					tv.Lines = append(tv.Lines, diffLineView{Text: string(l.Op) + " " + l.Text, Class: cls})
				}
				page.Templates = append(page.Templates, tv)
			}
		}
	}
	if err != nil {
		page.Error = err.Error()
	}
	s.execute(w, "diff", page)
}

// side reads one side of a diff: a directory, or REV:DIR.
func (s *Studio) side(ctx context.Context, spec string) (*catalog.Catalog, error) {
	if gitfs.IsSpec(spec) {
		fsys, err := gitfs.Open(ctx, ".", spec)
		if err != nil {
			return nil, err
		}
		c, _ := catalog.Inspect(fsys, spec)
		return c, nil
	}
	st, err := os.Stat(spec)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory, nor REV:DIR", spec)
	}
	c, _ := catalog.Inspect(os.DirFS(spec), filepath.Clean(spec))
	return c, nil
}
