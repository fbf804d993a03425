package journey

import (
	"fmt"
	"reflect"
	"slices"
)

// Change is one difference between two versions of a journey that matters
// to customers already in it.
type Change struct {
	Kind string // removed, added, renamed, changed, journey
	Step string
	To   string // renamed: the new id
	What string
	// Breaks is true when a run waiting at Step cannot continue on the new
	// version without being told where to go.
	Breaks bool
}

func (c Change) String() string {
	switch c.Kind {
	case "renamed":
		return fmt.Sprintf("step %s renamed to %s", c.Step, c.To)
	case "journey":
		return c.What
	}
	s := fmt.Sprintf("step %s %s", c.Step, c.Kind)
	if c.What != "" {
		s += ": " + c.What
	}
	return s
}

// Diff compares two versions of a journey.
func Diff(old, new *Journey) []Change {
	var out []Change
	if old.ID != new.ID {
		out = append(out, Change{Kind: "journey", What: fmt.Sprintf("id changed from %s to %s: these are different journeys", old.ID, new.ID)})
	}
	for _, f := range []struct {
		name     string
		old, new any
	}{
		{"trigger", old.Trigger.Event + old.Trigger.Cron + fmt.Sprint(old.Trigger.SegmentEntry), new.Trigger.Event + new.Trigger.Cron + fmt.Sprint(new.Trigger.SegmentEntry)},
		{"audience", exprSrc(old.Audience), exprSrc(new.Audience)},
		{"key", exprSrc(old.Key), exprSrc(new.Key)},
		{"goal", goalEvent(old.Goal), goalEvent(new.Goal)},
		{"topic", old.Topic, new.Topic},
		{"priority", old.Priority.String(), new.Priority.String()},
		{"reentry", old.Reentry, new.Reentry},
	} {
		if !reflect.DeepEqual(f.old, f.new) {
			out = append(out, Change{Kind: "journey", What: fmt.Sprintf("%s changed from %v to %v", f.name, f.old, f.new)})
		}
	}
	var removed, added []*Step
	for _, s := range old.Steps {
		n, ok := new.Step(s.ID)
		if !ok {
			removed = append(removed, s)
			continue
		}
		if what := stepDiff(s, n); what != "" {
			out = append(out, Change{Kind: "changed", Step: s.ID, What: what})
		}
	}
	for _, s := range new.Steps {
		if _, ok := old.Step(s.ID); !ok {
			added = append(added, s)
		}
	}
	// A removed step and an added step that are the same but for the id
	// are a rename.
	for _, r := range removed {
		idx := slices.IndexFunc(added, func(a *Step) bool { return stepDiff(r, a) == "" })
		if idx >= 0 {
			out = append(out, Change{Kind: "renamed", Step: r.ID, To: added[idx].ID, Breaks: true})
			added = slices.Delete(added, idx, idx+1)
			continue
		}
		out = append(out, Change{Kind: "removed", Step: r.ID, Breaks: true})
	}
	for _, a := range added {
		out = append(out, Change{Kind: "added", Step: a.ID})
	}
	return out
}

func exprSrc(e *Expr) string {
	if e == nil {
		return ""
	}
	return e.Source
}

func goalEvent(g *Goal) string {
	if g == nil {
		return ""
	}
	return g.Event
}

// stepDiff describes how two steps differ, ignoring ids and positions.
func stepDiff(a, b *Step) string {
	if a.Kind != b.Kind {
		return fmt.Sprintf("was %s, now %s", a.Kind, b.Kind)
	}
	if a.Goto != b.Goto {
		return fmt.Sprintf("goto %q -> %q", a.Goto, b.Goto)
	}
	switch a.Kind {
	case KindWait:
		if a.Wait.Duration != b.Wait.Duration || exprSrc(a.Wait.Until) != exprSrc(b.Wait.Until) || !reflect.DeepEqual(a.Wait.AtLocal, b.Wait.AtLocal) {
			return "wait changed"
		}
	case KindWaitFor:
		if *a.WaitFor != *b.WaitFor {
			return "wait_for changed"
		}
	case KindSend:
		if a.Send.Channel != b.Send.Channel || !slices.Equal(a.Send.Fallback, b.Send.Fallback) || a.Send.Template != b.Send.Template || exprSrc(a.Send.Purpose) != exprSrc(b.Send.Purpose) || a.Send.Priority != b.Send.Priority {
			return "send changed"
		}
	case KindBranch:
		if len(a.Branch) != len(b.Branch) {
			return "branch changed"
		}
		for i := range a.Branch {
			if exprSrc(a.Branch[i].When) != exprSrc(b.Branch[i].When) || a.Branch[i].Goto != b.Branch[i].Goto {
				return "branch changed"
			}
		}
	}
	return ""
}
