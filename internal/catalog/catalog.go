// Package catalog loads a journeys directory (schema.yaml, policy.yaml,
// journey files and templates/) and checks that its parts fit together:
// journeys against the schema, templates against the journeys that use them.
package catalog

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
)

// Well-known file names in a journeys directory.
const (
	SchemaFile   = "schema.yaml"
	PolicyFile   = "policy.yaml"
	TemplatesDir = "templates"
)

// Catalog is a validated journeys directory.
type Catalog struct {
	// Dir names the directory in messages.
	Dir       string
	Schema    *journey.Schema
	Rules     *policy.Rules
	Journeys  []*journey.Journey
	Templates *render.Set

	byID map[string]*journey.Journey
	// broken holds the locales of each template whose file failed to
	// parse: reported once, for what is wrong in it.
	broken map[string][]string
}

// Journey returns a journey by id.
func (c *Catalog) Journey(id string) (*journey.Journey, bool) {
	j, ok := c.byID[id]
	return j, ok
}

// Topics lists the topics of the journeys, sorted, each once: what a
// customer can opt out of.
func (c *Catalog) Topics() []string {
	var out []string
	for _, j := range c.Journeys {
		if !slices.Contains(out, j.Topic) {
			out = append(out, j.Topic)
		}
	}
	slices.Sort(out)
	return out
}

// Load reads and validates every file in fsys, whose root is the journeys
// directory named dir (used only in messages). It returns every problem
// found.
func Load(fsys fs.FS, dir string) (*Catalog, error) {
	return load(fsys, dir, nil)
}

// LoadFiles validates only the named journey files (relative to fsys),
// with the schema, policy and templates of the directory they are in.
func LoadFiles(fsys fs.FS, dir string, files []string) (*Catalog, error) {
	return load(fsys, dir, files)
}

// Inspect reads a journeys directory as Load does, but keeps what is
// valid when some of it is not: the schema and policy when they parse,
// every journey that parses, every template file that parses. It returns
// that partial catalog with every problem found, for tools that show a
// directory while it is being edited (lojal studio). Nothing may run from
// a catalog with errors.
func Inspect(fsys fs.FS, dir string) (*Catalog, journey.ErrorList) {
	c, errs := build(fsys, dir, nil)
	errs.Sort()
	return c, errs
}

func load(fsys fs.FS, dir string, only []string) (*Catalog, error) {
	c, errs := build(fsys, dir, only)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func build(fsys fs.FS, dir string, only []string) (*Catalog, journey.ErrorList) {
	c := &Catalog{Dir: dir, Templates: render.NewSet(), byID: map[string]*journey.Journey{}, broken: map[string][]string{}}
	var errs journey.ErrorList
	name := func(f string) string { return path.Join(dir, f) }
	read := func(f string) ([]byte, bool) {
		b, err := readLimited(fsys, f, journey.MaxFileSize)
		if err != nil {
			errs = append(errs, journey.Error{File: name(f), Msg: err.Error()})
			return nil, false
		}
		return b, true
	}
	if src, ok := read(SchemaFile); ok {
		var es journey.ErrorList
		c.Schema, es = journey.ParseSchema(name(SchemaFile), src)
		errs = append(errs, es...)
	}
	if src, ok := read(PolicyFile); ok {
		var es journey.ErrorList
		c.Rules, es = journey.ParseRules(name(PolicyFile), src)
		errs = append(errs, es...)
	}
	errs = append(errs, c.loadTemplates(fsys, dir)...)
	if c.Schema == nil || c.Rules == nil {
		// Without a schema nothing else can be checked meaningfully.
		return c, errs
	}

	files := only
	if files == nil {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			errs = append(errs, journey.Error{File: dir, Msg: err.Error()})
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || n == SchemaFile || n == PolicyFile || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				continue
			}
			files = append(files, n)
		}
	}
	sort.Strings(files)
	firstFile := map[string]string{}
	for _, f := range files {
		src, ok := read(f)
		if !ok {
			continue
		}
		j, es := journey.Parse(name(f), src, c.Schema, c.Rules.Location)
		errs = append(errs, es...)
		if j == nil {
			continue
		}
		if prev, dup := firstFile[j.ID]; dup {
			errs = append(errs, journey.Error{File: name(f), Line: 1, Col: 1, Msg: fmt.Sprintf("duplicate journey id %q (also in %s)", j.ID, prev)})
			continue
		}
		firstFile[j.ID] = name(f)
		errs = append(errs, c.checkTemplates(j)...)
		errs = append(errs, c.checkBasis(j)...)
		c.Journeys = append(c.Journeys, j)
		c.byID[j.ID] = j
	}
	slices.SortFunc(c.Journeys, func(a, b *journey.Journey) int { return strings.Compare(a.ID, b.ID) })
	return c, dedupe(errs)
}

// dedupe drops repeated errors: a template that several journeys use is
// checked once for each.
func dedupe(errs journey.ErrorList) journey.ErrorList {
	seen := make(map[journey.Error]bool, len(errs))
	out := errs[:0]
	for _, e := range errs {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

func readLimited(fsys fs.FS, f string, limit int64) ([]byte, error) {
	st, err := fs.Stat(fsys, f)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", unwrapPath(err))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("file is %d bytes; the limit is %d", st.Size(), limit)
	}
	b, err := fs.ReadFile(fsys, f)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", unwrapPath(err))
	}
	return b, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

func (c *Catalog) loadTemplates(fsys fs.FS, dir string) journey.ErrorList {
	var errs journey.ErrorList
	at := func(rel, format string, args ...any) {
		errs = append(errs, journey.Error{File: path.Join(dir, rel), Line: 1, Col: 1, Msg: fmt.Sprintf(format, args...)})
	}
	names, err := fs.ReadDir(fsys, TemplatesDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, journey.Error{File: path.Join(dir, TemplatesDir), Msg: err.Error()})
		}
		return errs
	}
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".") {
			continue
		}
		if !n.IsDir() {
			at(path.Join(TemplatesDir, n.Name()), "a template is a directory of one file per locale: %s/<template>/%s.yaml", TemplatesDir, render.FallbackLocale)
			continue
		}
		locales, err := fs.ReadDir(fsys, path.Join(TemplatesDir, n.Name()))
		if err != nil {
			errs = append(errs, journey.Error{File: path.Join(dir, TemplatesDir, n.Name()), Msg: err.Error()})
			continue
		}
		for _, l := range locales {
			rel := path.Join(TemplatesDir, n.Name(), l.Name())
			if strings.HasPrefix(l.Name(), ".") || l.IsDir() {
				continue
			}
			locale, ok := strings.CutSuffix(l.Name(), ".yaml")
			if !ok {
				if base, yml := strings.CutSuffix(l.Name(), ".yml"); yml {
					at(rel, "template files end in .yaml: rename it %s.yaml (it is not read as it is)", base)
				} else {
					at(rel, "not a template file: %s/%s/ holds one <locale>.yaml per language (%s.yaml)", TemplatesDir, n.Name(), render.FallbackLocale)
				}
				continue
			}
			if msg := render.CheckLocale(locale); msg != "" {
				at(rel, "%s", msg)
				continue
			}
			file := path.Join(dir, rel)
			src, err := readLimited(fsys, rel, render.MaxTemplateSize)
			if err != nil {
				errs = append(errs, journey.Error{File: file, Msg: err.Error()})
				continue
			}
			t, err := render.Parse(file, n.Name(), locale, src)
			if err != nil {
				// The file is there: say what is wrong with it, and only
				// that (not also that the template lacks the locale).
				c.broken[n.Name()] = append(c.broken[n.Name()], locale)
				var el journey.ErrorList
				if errors.As(err, &el) {
					errs = append(errs, el...)
				} else {
					errs = append(errs, journey.Error{File: file, Msg: err.Error()})
				}
				continue
			}
			c.Templates.Add(t)
		}
	}
	return errs
}

// checkTemplates checks the templates a journey sends: they exist, have the
// fallback locale and the locales the journey's other templates have,
// carry the parts their channels need, and read only declared data, with
// values that may be missing tested first.
func (c *Catalog) checkTemplates(j *journey.Journey) journey.ErrorList {
	var errs journey.ErrorList
	errorAt := func(file string, line, col int, format string, args ...any) {
		errs = append(errs, journey.Error{File: file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
	}
	sends := map[string][]*journey.Step{}
	var order []string
	for _, s := range j.Steps {
		if s.Send == nil {
			continue
		}
		if _, seen := sends[s.Send.Template]; !seen {
			order = append(order, s.Send.Template)
		}
		sends[s.Send.Template] = append(sends[s.Send.Template], s)
	}
	// Every locale some template of the journey speaks, so a customer
	// does not get one message in their language and the next in English.
	var spoken []string
	for _, name := range order {
		for _, l := range c.Templates.Locales(name) {
			if !slices.Contains(spoken, l) {
				spoken = append(spoken, l)
			}
		}
	}
	slices.Sort(spoken)
	for _, name := range order {
		use := sends[name][0]
		pos := use.Send.TemplatePos
		locales := c.Templates.Locales(name)
		broken := c.broken[name]
		if len(locales) == 0 {
			if len(broken) == 0 {
				all := slices.Concat(c.Templates.Names(), slices.Collect(maps.Keys(c.broken)))
				errorAt(j.File, pos.Line, pos.Col, "template %q has no files (want %s/%s/%s.yaml)%s", name, TemplatesDir, name, render.FallbackLocale, journey.Suggest(name, all))
			}
			continue
		}
		if !slices.Contains(locales, render.FallbackLocale) && !slices.Contains(broken, render.FallbackLocale) {
			errorAt(j.File, pos.Line, pos.Col, "template %q has no %s.yaml, the fallback locale every template needs (has %s)", name, render.FallbackLocale, strings.Join(locales, ", "))
		}
		for _, l := range spoken {
			if l == render.FallbackLocale || slices.Contains(broken, l) {
				continue
			}
			if t, err := c.Templates.Resolve(name, l); err == nil && t.Locale == render.FallbackLocale {
				other := ""
				for _, o := range order {
					if slices.Contains(c.Templates.Locales(o), l) {
						other = o
						break
					}
				}
				errorAt(j.File, pos.Line, pos.Col, "template %q has no %s.yaml, but template %q in this journey has: customers who read %s would get one message in %s and this one in English (add %s/%s/%s.yaml)",
					name, l, other, l, l, TemplatesDir, name, l)
			}
		}
		for _, locale := range locales {
			t, _ := c.Templates.Get(name, locale)
			var chans []string
			implied := false // email, only as a push's fallback
			for _, s := range sends[name] {
				chans = append(chans, s.Send.Channel)
				chans = append(chans, s.Send.Fallback...)
				if s.Send.Channel == policy.Push && len(s.Send.Fallback) == 0 {
					// A push that reaches no device goes by email.
					implied = true
				}
			}
			if implied && !slices.Contains(chans, policy.Email) && !slices.Contains(chans, "preferred") {
				if missing := t.Missing(policy.Email); len(missing) > 0 {
					errorAt(t.File, t.Line, t.Col, "journey %s sends this template on push (%s:%d:%d), and on email when push reaches no device, which needs %s; this file has no %s",
						j.ID, j.File, pos.Line, pos.Col, partsFor(policy.Email), strings.Join(missing, " or "))
				}
			}
			slices.Sort(chans)
			for _, ch := range slices.Compact(chans) {
				if missing := t.Missing(ch); len(missing) > 0 {
					errorAt(t.File, t.Line, t.Col, "journey %s sends this template on %s (%s:%d:%d), which needs %s; this file has no %s",
						j.ID, ch, j.File, pos.Line, pos.Col, partsFor(ch), strings.Join(missing, " or "))
				}
				if ch == "push" || ch == "preferred" {
					if msg := t.PushTooLong(); msg != "" {
						errorAt(t.File, t.Line, t.Col, "%s (journey %s sends it on push, %s:%d:%d)", msg, j.ID, j.File, pos.Line, pos.Col)
					}
				}
			}
			for _, s := range sends[name] {
				for _, ref := range t.Refs() {
					if col, msg := c.checkRef(j, s, ref); msg != "" {
						errorAt(t.File, ref.Line, col, "{{ .%s }}%s (used by journey %s, step %s)", ref.Path, msg, j.ID, s.ID)
					}
				}
			}
		}
	}
	return errs
}

func partsFor(channel string) string {
	switch channel {
	case policy.Email:
		return "subject and text"
	case policy.Push:
		return "title and body"
	}
	return "subject and text (email) and title and body (push)"
}

// hasMethods reports whether a value of type t has methods a template may
// call (a timestamp's .Year, a duration's .Hours), which validation does
// not check.
func hasMethods(t journey.Type) bool { return t == journey.Timestamp || t == journey.Duration }

// templateRoots are what a template can read.
var templateRoots = []string{"Customer", "Event", "Received", "Links"}

// checkRef checks one use of data in a template sent at step s: the field
// exists, and a value that may be missing is tested first. It returns the
// column to report at and the problem, or "".
func (c *Catalog) checkRef(j *journey.Journey, s *journey.Step, ref render.Ref) (int, string) {
	parts := strings.Split(ref.Path, ".")
	// The journey's own has() tests on the way to the step count too:
	// the message is rendered moments after them (a deferred message
	// that finds the value gone by then fails, it is not sent with a
	// hole in it).
	var journeyKnown []string
	for _, p := range j.PresentAt(s.ID) {
		root, rest, _ := strings.Cut(p, ".")
		journeyKnown = append(journeyKnown, strings.ToUpper(root[:1])+root[1:]+"."+rest)
	}
	// covered reports whether the value at parts[:n] may be read here: it
	// is tested by the ref itself (only the last part) or by a guard.
	covered := func(n int) bool {
		p := strings.Join(parts[:n], ".")
		return (ref.Test && n == len(parts)) || slices.Contains(ref.Known, p) || slices.Contains(journeyKnown, p)
	}
	guard := func(n int) string {
		p := "." + strings.Join(parts[:n], ".")
		return fmt.Sprintf("test it first ({{ with %s }}…{{ end }} or {{ default \"…\" %s }})", p, p)
	}
	switch parts[0] {
	case "Customer":
		if len(parts) < 2 {
			return ref.Col, ""
		}
		field := parts[1]
		if _, ok := c.Schema.Customer[field]; !ok {
			return ref.ColOf(1), fmt.Sprintf(": customer has no field %q in %s%s", field, c.Schema.File, journey.Suggest(field, c.Schema.Customer.Names()))
		}
		if len(parts) > 2 && !hasMethods(c.Schema.Customer[field]) {
			return ref.ColOf(2), fmt.Sprintf(": customer field %s is a %s, which has no fields", field, c.Schema.Customer[field])
		}
		if c.Schema.FieldOptional("", field) && !covered(2) {
			return ref.ColOf(1), fmt.Sprintf(" may be missing, and the message then fails: %s, or declare it required in %s (%s: required %s)",
				guard(2), c.Schema.File, field, c.Schema.Customer[field])
		}
	case "Event":
		if j.Trigger.Event == "" {
			return ref.Col, ": this journey is not started by an event, so there is no .Event (its trigger is a schedule or segment entry)"
		}
		if len(parts) < 2 {
			return ref.Col, ""
		}
		field := parts[1]
		fields := c.Schema.Events[j.Trigger.Event]
		if _, ok := fields[field]; !ok {
			return ref.ColOf(1), fmt.Sprintf(": event %s has no field %q in %s%s", j.Trigger.Event, field, c.Schema.File, journey.Suggest(field, fields.Names()))
		}
		if len(parts) > 2 && !hasMethods(fields[field]) {
			return ref.ColOf(2), fmt.Sprintf(": event field %s is a %s, which has no fields", field, fields[field])
		}
		if c.Schema.FieldOptional(j.Trigger.Event, field) && !covered(2) {
			return ref.ColOf(1), fmt.Sprintf(" may be missing, and the message then fails: %s; %s declares it optional", guard(2), c.Schema.File)
		}
	case "Received":
		if len(parts) < 2 {
			return ref.Col, ""
		}
		name := parts[1]
		ev := j.ReceivedEvent(name)
		if ev == "" {
			var waited []string
			for _, st := range j.Steps {
				if st.WaitFor != nil {
					waited = append(waited, strings.ReplaceAll(st.WaitFor.Event, ".", "_"))
				}
			}
			return ref.ColOf(1), fmt.Sprintf(": journey %s has no wait_for that gets %q (.Received.<name> is the event a wait_for got, its type with _ for .)%s", j.ID, name, journey.Suggest(name, waited))
		}
		if !covered(2) {
			return ref.ColOf(1), fmt.Sprintf(" may be missing: step %s can be reached without the wait_for getting %s (on a timeout); %s", s.ID, ev, guard(2))
		}
		if len(parts) < 3 {
			return ref.Col, ""
		}
		field := parts[2]
		fields := c.Schema.Events[ev]
		if _, ok := fields[field]; !ok {
			return ref.ColOf(2), fmt.Sprintf(": event %s has no field %q in %s%s", ev, field, c.Schema.File, journey.Suggest(field, fields.Names()))
		}
		if len(parts) > 3 && !hasMethods(fields[field]) {
			return ref.ColOf(3), fmt.Sprintf(": event field %s is a %s, which has no fields", field, fields[field])
		}
		if c.Schema.FieldOptional(ev, field) && !covered(3) {
			return ref.ColOf(2), fmt.Sprintf(" may be missing, and the message then fails: %s; %s declares it optional", guard(3), c.Schema.File)
		}
	case "Links":
		if len(parts) > 1 && parts[1] != "Unsubscribe" && parts[1] != "Preferences" {
			return ref.ColOf(1), ": links are .Links.Unsubscribe and .Links.Preferences" + journey.Suggest(parts[1], []string{"Unsubscribe", "Preferences"})
		}
	default:
		return ref.ColOf(0), ": unknown value; templates see .Customer, .Event, .Received and .Links" + journey.Suggest(parts[0], templateRoots)
	}
	return 0, ""
}

// Source hands out the catalog in force. Workers and the API hold a Source
// rather than a Catalog so deployed journeys can replace it while running.
type Source interface {
	Current() *Catalog
}

// Current makes a fixed catalog its own Source.
func (c *Catalog) Current() *Catalog { return c }

// WithJourneys returns a copy of the catalog with other journeys (the same
// schema, policy and templates).
func (c *Catalog) WithJourneys(js []*journey.Journey) *Catalog {
	out := *c
	out.Journeys = js
	out.byID = make(map[string]*journey.Journey, len(js))
	for _, j := range js {
		out.byID[j.ID] = j
	}
	return &out
}
