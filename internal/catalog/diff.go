package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
)

// Diff is what changes when one journeys directory replaces another.
//
// Journeys are versioned: runs in flight keep the version they started
// with, so a journey's changes reach new entrants (and runs moved with
// `lojal journeys migrate`). Templates, the policy and the schema are read
// when a message is sent or an event arrives, so their changes reach
// every customer at once, runs in flight included.
type Diff struct {
	Journeys  []JourneyDiff
	Policy    []FieldChange
	Schema    []FieldChange
	Templates []TemplateChange
}

// JourneyDiff is one journey's changes.
type JourneyDiff struct {
	ID string
	// Status is added, removed or changed.
	Status                 string
	OldVersion, NewVersion string
	Changes                []journey.Change
}

// FieldChange is one changed field of the policy or schema.
type FieldChange struct {
	Field, Old, New string
	// Pressure says how the change can bring customers more messages.
	Pressure string
}

func (c FieldChange) String() string {
	s := fmt.Sprintf("%s: %s → %s", c.Field, orNone(c.Old), orNone(c.New))
	if c.Pressure != "" {
		s += " [pressure: " + c.Pressure + "]"
	}
	return s
}

// TemplateChange is one changed part of a template file. Old is "" for a
// part (or file) added, New "" for one removed.
type TemplateChange struct {
	Template, Locale, Part string
	Old, New               string
	// UsedBy lists the journeys that send the template.
	UsedBy []string
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	return len(d.Journeys)+len(d.Policy)+len(d.Schema)+len(d.Templates) == 0
}

// Compare compares two catalogs. Either may be partial (from Inspect);
// what one lacks counts as absent.
func Compare(old, new *Catalog) Diff {
	var d Diff
	ids := map[string]bool{}
	for _, j := range old.Journeys {
		ids[j.ID] = true
	}
	for _, j := range new.Journeys {
		ids[j.ID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		o, inOld := old.journey(id)
		n, inNew := new.journey(id)
		switch {
		case !inOld:
			d.Journeys = append(d.Journeys, JourneyDiff{ID: id, Status: "added", NewVersion: n.Version})
		case !inNew:
			d.Journeys = append(d.Journeys, JourneyDiff{ID: id, Status: "removed", OldVersion: o.Version})
		case o.Version != n.Version:
			d.Journeys = append(d.Journeys, JourneyDiff{ID: id, Status: "changed", OldVersion: o.Version, NewVersion: n.Version, Changes: journey.Diff(o, n)})
		}
	}
	if old.Rules != nil && new.Rules != nil {
		d.Policy = comparePolicy(*old.Rules, *new.Rules)
	}
	if old.Schema != nil && new.Schema != nil {
		d.Schema = compareSchema(old.Schema, new.Schema)
	}
	d.Templates = compareTemplates(old, new)
	return d
}

func (c *Catalog) journey(id string) (*journey.Journey, bool) {
	for _, j := range c.Journeys {
		if j.ID == id {
			return j, true
		}
	}
	return nil, false
}

func comparePolicy(o, n policy.Rules) []FieldChange {
	var out []FieldChange
	field := func(name, ov, nv, pressure string) {
		if ov != nv {
			out = append(out, FieldChange{Field: name, Old: ov, New: nv, Pressure: pressure})
		}
	}
	field("default_timezone", locName(o), locName(n), "")
	quiet := ""
	switch {
	case o.Quiet != nil && n.Quiet == nil:
		quiet = "no quiet hours: messages may arrive at night"
	case o.Quiet != nil && quietLength(*n.Quiet) < quietLength(*o.Quiet):
		quiet = "shorter quiet hours"
	}
	field("quiet_hours", quietString(o.Quiet), quietString(n.Quiet), quiet)
	gap := ""
	if n.MinGap < o.MinGap {
		gap = "messages may come closer together"
	}
	field("min_gap", dur(o.MinGap), dur(n.MinGap), gap)
	key := func(c policy.Cap) string {
		ch := c.Channel
		if ch == "" {
			ch = "all channels"
		}
		return fmt.Sprintf("caps[%s, %s]", ch, policy.FormatDuration(c.Window))
	}
	oc, nc := map[string]policy.Cap{}, map[string]policy.Cap{}
	for _, c := range o.Caps {
		oc[key(c)] = c
	}
	for _, c := range n.Caps {
		nc[key(c)] = c
	}
	for _, k := range slices.Sorted(maps.Keys(union(oc, nc))) {
		ov, inOld := oc[k]
		nv, inNew := nc[k]
		switch {
		case !inNew:
			field(k, fmt.Sprintf("max %d", ov.Max), "", "a cap removed: more messages may go out")
		case !inOld:
			field(k, "", fmt.Sprintf("max %d", nv.Max), "")
		case nv.Max > ov.Max:
			field(k, fmt.Sprintf("max %d", ov.Max), fmt.Sprintf("max %d", nv.Max), "a higher cap: more messages may go out")
		default:
			field(k, fmt.Sprintf("max %d", ov.Max), fmt.Sprintf("max %d", nv.Max), "")
		}
	}
	field("max_defer", dur(o.MaxDefer), dur(n.MaxDefer), "")
	purpose := ""
	if n.PurposeWindow != 0 && (o.PurposeWindow == 0 || n.PurposeWindow < o.PurposeWindow) && n.PurposeWindow < max(o.PurposeWindow, policy.DefaultPurposeWindow) {
		purpose = "the same purpose may go out again sooner"
	}
	field("purpose_window", dur(o.PurposeWindow), dur(n.PurposeWindow), purpose)
	field("priority_aging", dur(o.AgingStep), dur(n.AgingStep), "")
	critical := ""
	if n.CriticalOutsideCaps && !o.CriticalOutsideCaps {
		critical = "critical messages no longer use up the caps, so more others fit"
	}
	field("critical_counts_toward_caps", fmt.Sprint(!o.CriticalOutsideCaps), fmt.Sprint(!n.CriticalOutsideCaps), critical)
	out = append(out, compareTopics(o.Topics, n.Topics)...)
	return out
}

// compareTopics shows each topic whose kind or product groups changed,
// with what that does to who may be sent it.
func compareTopics(o, n map[string]policy.Topic) []FieldChange {
	var out []FieldChange
	show := func(t policy.Topic, ok bool) string {
		if !ok {
			return ""
		}
		if len(t.ProductGroups) == 0 {
			return string(t.Kind)
		}
		return fmt.Sprintf("%s [%s]", t.Kind, strings.Join(t.ProductGroups, ", "))
	}
	for _, name := range slices.Sorted(maps.Keys(union(o, n))) {
		ot, inOld := o[name]
		nt, inNew := n[name]
		ov, nv := show(ot, inOld), show(nt, inNew)
		if ov == nv {
			continue
		}
		pressure := ""
		switch {
		case inOld && inNew && ot.Kind == policy.TopicMarketing && nt.Kind == policy.TopicService:
			pressure = "now a service topic: its messages need no marketing consent"
		case inNew && nt.Kind == policy.TopicMarketing && slices.ContainsFunc(nt.ProductGroups, func(g string) bool { return !slices.Contains(ot.ProductGroups, g) }):
			pressure = "more product groups: soft opt-ins from more sales reach this topic"
		}
		out = append(out, FieldChange{Field: "topics." + name, Old: ov, New: nv, Pressure: pressure})
	}
	return out
}

func union[V any](a, b map[string]V) map[string]V {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func locName(r policy.Rules) string {
	if r.Location == nil {
		return ""
	}
	return r.Location.String()
}

func quietString(q *policy.QuietHours) string {
	if q == nil {
		return ""
	}
	return q.String()
}

// quietLength is how many minutes a day the quiet hours last.
func quietLength(q policy.QuietHours) int { return ((int(q.End)-int(q.Start))%1440 + 1440) % 1440 }

func dur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return policy.FormatDuration(d)
}

func compareSchema(o, n *journey.Schema) []FieldChange {
	var out []FieldChange
	describe := func(s *journey.Schema, event string, fields journey.Fields, f string) string {
		t, ok := fields[f]
		if !ok {
			return ""
		}
		if s.FieldOptional(event, f) {
			return "optional " + string(t)
		}
		return "required " + string(t)
	}
	fieldsOf := func(prefix, event string, of, nf journey.Fields) {
		for _, f := range slices.Sorted(maps.Keys(union(of, nf))) {
			ov, nv := describe(o, event, of, f), describe(n, event, nf, f)
			if ov != nv {
				out = append(out, FieldChange{Field: prefix + f, Old: ov, New: nv})
			}
		}
	}
	fieldsOf("customer.", "", o.Customer, n.Customer)
	for _, ev := range slices.Sorted(maps.Keys(union(o.Events, n.Events))) {
		of, inOld := o.Events[ev]
		nf, inNew := n.Events[ev]
		switch {
		case !inOld:
			out = append(out, FieldChange{Field: "events." + ev, New: "declared"})
		case !inNew:
			out = append(out, FieldChange{Field: "events." + ev, Old: "declared"})
		default:
			fieldsOf("events."+ev+".", ev, of, nf)
		}
	}
	return out
}

func compareTemplates(old, new *Catalog) []TemplateChange {
	var out []TemplateChange
	names := map[string]bool{}
	for _, c := range []*Catalog{old, new} {
		for _, n := range c.Templates.Names() {
			names[n] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		locales := map[string]bool{}
		for _, c := range []*Catalog{old, new} {
			for _, l := range c.Templates.Locales(name) {
				locales[l] = true
			}
		}
		users := usedBy(new, name)
		if len(users) == 0 {
			users = usedBy(old, name)
		}
		for _, l := range slices.Sorted(maps.Keys(locales)) {
			ot, _ := old.Templates.Get(name, l)
			nt, _ := new.Templates.Get(name, l)
			for _, part := range render.PartNames() {
				ov, nv := partOf(ot, part), partOf(nt, part)
				if ov != nv {
					out = append(out, TemplateChange{Template: name, Locale: l, Part: part, Old: ov, New: nv, UsedBy: users})
				}
			}
		}
	}
	return out
}

func partOf(t *render.Template, part string) string {
	if t == nil {
		return ""
	}
	return t.Source(part)
}

func usedBy(c *Catalog, template string) []string {
	var ids []string
	for _, j := range c.Journeys {
		if _, ok := j.Templates()[template]; ok {
			ids = append(ids, j.ID)
		}
	}
	return ids
}

// Lines describes a diff for a terminal, one change a line, old → new.
func (d Diff) Lines() []string {
	var out []string
	for _, j := range d.Journeys {
		switch j.Status {
		case "added":
			out = append(out, fmt.Sprintf("journey %s added (version %s)", j.ID, j.NewVersion))
		case "removed":
			out = append(out, fmt.Sprintf("journey %s removed (version %s; runs in flight finish on it)", j.ID, j.OldVersion))
		default:
			out = append(out, fmt.Sprintf("journey %s: version %s → %s", j.ID, j.OldVersion, j.NewVersion))
			for _, c := range j.Changes {
				mark := " "
				if c.Breaks {
					mark = "!"
				}
				out = append(out, fmt.Sprintf("%s %s", mark, c))
			}
		}
	}
	for _, c := range d.Policy {
		out = append(out, "policy "+c.String()+" (applies at once, runs in flight included)")
	}
	for _, c := range d.Schema {
		out = append(out, "schema "+c.String())
	}
	for _, t := range d.Templates {
		what := "changed"
		switch {
		case t.Old == "":
			what = "added"
		case t.New == "":
			what = "removed"
		}
		used := ""
		if len(t.UsedBy) > 0 {
			used = ", sent by " + strings.Join(t.UsedBy, ", ")
		}
		out = append(out, fmt.Sprintf("template %s/%s %s %s (reaches runs in flight at once%s):", t.Template, t.Locale, t.Part, what, used))
		for _, l := range LineDiff(t.Old, t.New) {
			if l.Op != ' ' {
				out = append(out, "    "+string(l.Op)+" "+l.Text)
			}
		}
	}
	return out
}

// Line is one line of a line diff: Op is ' ' (in both), '-' (only in the
// old text) or '+' (only in the new).
type Line struct {
	Op   byte
	Text string
}

// LineDiff compares two texts line by line (longest common subsequence).
func LineDiff(old, new string) []Line {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimRight(s, "\n"), "\n")
	}
	a, b := split(old), split(new)
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []Line
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, Line{' ', a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, Line{'-', a[i]})
			i++
		default:
			out = append(out, Line{'+', b[j]})
			j++
		}
	}
	return out
}
