// Package catalog loads a journeys directory (schema.yaml, policy.yaml,
// journey files and templates/) and checks that its parts fit together:
// journeys against the schema, templates against the journeys that use them.
package catalog

import (
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

func load(fsys fs.FS, dir string, only []string) (*Catalog, error) {
	c := &Catalog{Dir: dir, Templates: render.NewSet(), byID: map[string]*journey.Journey{}}
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
		return nil, errs.Err()
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
		c.Journeys = append(c.Journeys, j)
		c.byID[j.ID] = j
	}
	slices.SortFunc(c.Journeys, func(a, b *journey.Journey) int { return strings.Compare(a.ID, b.ID) })
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
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
	names, err := fs.ReadDir(fsys, TemplatesDir)
	if err != nil {
		if !strings.Contains(err.Error(), "not exist") {
			errs = append(errs, journey.Error{File: path.Join(dir, TemplatesDir), Msg: err.Error()})
		}
		return errs
	}
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		locales, err := fs.ReadDir(fsys, path.Join(TemplatesDir, n.Name()))
		if err != nil {
			errs = append(errs, journey.Error{File: path.Join(dir, TemplatesDir, n.Name()), Msg: err.Error()})
			continue
		}
		for _, l := range locales {
			locale, ok := strings.CutSuffix(l.Name(), ".yaml")
			if l.IsDir() || !ok {
				continue
			}
			rel := path.Join(TemplatesDir, n.Name(), l.Name())
			file := path.Join(dir, rel)
			src, err := readLimited(fsys, rel, render.MaxTemplateSize)
			if err != nil {
				errs = append(errs, journey.Error{File: file, Msg: err.Error()})
				continue
			}
			t, err := render.Parse(file, n.Name(), locale, src)
			if err != nil {
				errs = append(errs, journey.Error{Msg: err.Error()})
				continue
			}
			c.Templates.Add(t)
		}
	}
	return errs
}

// checkTemplates checks the templates a journey sends: they exist, have the
// fallback locale, carry the parts their channel needs and refer only to
// declared data.
func (c *Catalog) checkTemplates(j *journey.Journey) journey.ErrorList {
	var errs journey.ErrorList
	tmpls := j.Templates()
	for _, name := range slices.Sorted(maps.Keys(tmpls)) {
		at := templateUse(j, name)
		locales := c.Templates.Locales(name)
		if len(locales) == 0 {
			errs = append(errs, journey.Error{File: j.File, Line: at.Line, Col: at.Col,
				Msg: fmt.Sprintf("template %q has no files (want %s/%s/%s.yaml)", name, TemplatesDir, name, render.FallbackLocale)})
			continue
		}
		if !slices.Contains(locales, render.FallbackLocale) {
			errs = append(errs, journey.Error{File: j.File, Line: at.Line, Col: at.Col,
				Msg: fmt.Sprintf("template %q has no %s.yaml, the fallback locale every template needs (has %s)", name, render.FallbackLocale, strings.Join(locales, ", "))})
		}
		for _, locale := range locales {
			t, _ := c.Templates.Get(name, locale)
			for _, ch := range slices.Compact(slices.Sorted(slices.Values(tmpls[name]))) {
				if err := t.Supports(ch); err != nil {
					errs = append(errs, journey.Error{Msg: err.Error()})
				}
			}
			for _, ref := range t.Refs() {
				if msg := c.checkRef(j, ref); msg != "" {
					errs = append(errs, journey.Error{File: t.File, Msg: fmt.Sprintf("{{ .%s }}: %s (used by journey %s)", ref, msg, j.ID)})
				}
			}
		}
	}
	return errs
}

func (c *Catalog) checkRef(j *journey.Journey, ref string) string {
	root, field, _ := strings.Cut(ref, ".")
	switch root {
	case "Customer":
		if field != "" {
			if _, ok := c.Schema.Customer[field]; !ok {
				return fmt.Sprintf("customer has no field %q in %s", field, c.Schema.File)
			}
		}
	case "Event":
		if j.Trigger.Event == "" {
			return "this journey is not started by an event, so there is no .Event"
		}
		if field != "" {
			if _, ok := c.Schema.Events[j.Trigger.Event][field]; !ok {
				return fmt.Sprintf("event %s has no field %q in %s", j.Trigger.Event, field, c.Schema.File)
			}
		}
	case "Links":
		if field != "" && field != "Unsubscribe" && field != "Preferences" {
			return "links are .Links.Unsubscribe and .Links.Preferences"
		}
	default:
		return "unknown value; templates see .Customer, .Event and .Links"
	}
	return ""
}

func templateUse(j *journey.Journey, name string) *journey.Step {
	for _, s := range j.Steps {
		if s.Send != nil && s.Send.Template == name {
			return s
		}
	}
	return &journey.Step{}
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
