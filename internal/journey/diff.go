package journey

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/policy"
)

// Change is one difference between two versions of a journey: a field of
// the journey or of a step, with its old and new value as written.
type Change struct {
	Kind string // journey, changed, added, removed, renamed
	Step string
	To   string // renamed: the new id
	// Field is the field that changed: "priority", "wait_for.timeout",
	// "branch[2].when", "kind".
	Field    string
	Old, New string
	// Breaks is true when a run waiting at Step cannot continue on the new
	// version without being told where to go.
	Breaks bool
	// Pressure says how the change can bring customers more messages, or
	// fewer of them held back ("" when it does not).
	Pressure string
}

func (c Change) String() string {
	var s string
	switch c.Kind {
	case "renamed":
		s = fmt.Sprintf("step %s renamed to %s", c.Step, c.To)
	case "added", "removed":
		s = fmt.Sprintf("step %s %s", c.Step, c.Kind)
		if v := c.New + c.Old; v != "" {
			s += " (" + v + ")"
		}
	case "journey":
		s = fmt.Sprintf("%s: %s → %s", c.Field, orNone(c.Old), orNone(c.New))
	default:
		s = fmt.Sprintf("step %s: %s: %s → %s", c.Step, c.Field, orNone(c.Old), orNone(c.New))
	}
	if c.Pressure != "" {
		s += " [pressure: " + c.Pressure + "]"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Diff compares two versions of a journey field by field.
func Diff(old, new *Journey) []Change {
	var out []Change
	field := func(name, o, n, pressure string) {
		if o != n {
			out = append(out, Change{Kind: "journey", Field: name, Old: o, New: n, Pressure: pressure})
		}
	}
	field("id", old.ID, new.ID, "")
	field("name", old.Name, new.Name, "")
	topicPressure := ""
	if old.Topic != new.Topic {
		topicPressure = fmt.Sprintf("customers who opted out of %s get this journey again unless they opted out of %s", old.Topic, new.Topic)
	}
	field("topic", old.Topic, new.Topic, topicPressure)
	basesPressure := ""
	if !slices.Contains(old.Bases, policy.BasisSoftOptIn) && slices.Contains(new.Bases, policy.BasisSoftOptIn) {
		basesPressure = "customers with a soft opt-in from a covered sale get this journey's messages too"
	}
	field("basis", basesString(old.Bases), basesString(new.Bases), basesPressure)
	field("priority", old.Priority.String(), new.Priority.String(), priorityPressure(old.Priority, new.Priority))
	audiencePressure := ""
	if old.Audience != nil && new.Audience == nil {
		audiencePressure = "every customer may enter"
	} else if exprSrc(old.Audience) != exprSrc(new.Audience) && old.Audience != nil {
		audiencePressure = "who enters changes: check the audience preview"
	}
	field("audience", exprSrc(old.Audience), exprSrc(new.Audience), audiencePressure)
	field("trigger", old.Trigger.String(), new.Trigger.String(), "")
	field("key", exprSrc(old.Key), exprSrc(new.Key), "")
	field("reentry", old.Reentry.String(), new.Reentry.String(), reentryPressure(old.Reentry, new.Reentry))
	goalPressure := ""
	if old.Goal != nil && new.Goal == nil {
		goalPressure = "runs no longer stop when the customer reaches the goal"
	}
	field("goal", goalEvent(old.Goal), goalEvent(new.Goal), goalPressure)
	holdoutPressure := ""
	if new.Holdout < old.Holdout {
		holdoutPressure = "fewer entrants are held out: more customers get the journey's messages"
	}
	field("holdout", FormatHoldout(old.Holdout), FormatHoldout(new.Holdout), holdoutPressure)

	var removed, added []*Step
	for _, s := range old.Steps {
		n, ok := new.Step(s.ID)
		if !ok {
			removed = append(removed, s)
			continue
		}
		for _, c := range stepDiff(old, new, s, n) {
			c.Kind, c.Step = "changed", s.ID
			out = append(out, c)
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
		idx := slices.IndexFunc(added, func(a *Step) bool { return len(stepDiff(old, new, r, a)) == 0 })
		if idx >= 0 {
			out = append(out, Change{Kind: "renamed", Step: r.ID, To: added[idx].ID, Breaks: true})
			added = slices.Delete(added, idx, idx+1)
			continue
		}
		out = append(out, Change{Kind: "removed", Step: r.ID, Old: r.Summary(), Breaks: true})
	}
	for _, a := range added {
		c := Change{Kind: "added", Step: a.ID, New: a.Summary()}
		if a.Send != nil {
			c.Pressure = "one more message"
		}
		out = append(out, c)
	}
	return out
}

func priorityPressure(old, new policy.Priority) string {
	switch {
	case new <= old:
		return ""
	case new == policy.Critical:
		return "raised to critical: skips caps, the minimum gap and quiet hours"
	}
	return "raised: goes ahead of lower-priority messages"
}

func reentryPressure(old, new Reentry) string {
	rank := func(r Reentry) int {
		switch r.Mode {
		case ReentryAlways:
			return 2
		case ReentryAfter:
			return 1
		}
		return 0
	}
	switch {
	case rank(new) > rank(old), new.Mode == ReentryAfter && old.Mode == ReentryAfter && new.After < old.After:
		return "customers may go through it more often"
	}
	return ""
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

// String describes a trigger as written.
func (t Trigger) String() string {
	switch {
	case t.Event != "":
		return "event " + t.Event
	case t.Cron != "":
		return "schedule " + t.Cron
	case t.SegmentEntry:
		return "segment_entry"
	}
	return ""
}

// String describes a reentry rule as written.
func (r Reentry) String() string {
	if r.Mode == ReentryAfter {
		return "after " + policy.FormatDuration(r.After)
	}
	return r.Mode
}

// Channels returns the channels a send tries, in order.
func (s *Send) Channels() []string { return append([]string{s.Channel}, s.Fallback...) }

// Summary describes a step in a few words: "send email renewal-reminder",
// "wait 7d at 18:00", "wait_for policy.renewed up to 7d".
func (s *Step) Summary() string {
	switch s.Kind {
	case KindSend:
		return fmt.Sprintf("send %s %s", strings.Join(s.Send.Channels(), ", "), s.Send.Template)
	case KindWait:
		return "wait " + s.Wait.String()
	case KindWaitFor:
		return fmt.Sprintf("wait_for %s up to %s", s.WaitFor.Event, policy.FormatDuration(s.WaitFor.Timeout))
	case KindBranch:
		return fmt.Sprintf("branch, %d cases", len(s.Branch))
	case KindExit:
		if s.Exit.Reason != "" {
			return "exit: " + s.Exit.Reason
		}
		return "exit"
	}
	return string(s.Kind)
}

// String describes a wait as written: "7d at 18:00", "until <expr>".
func (w *Wait) String() string {
	var parts []string
	if w.Duration > 0 {
		parts = append(parts, policy.FormatDuration(w.Duration))
	}
	if w.Until != nil {
		parts = append(parts, "until "+w.Until.Source)
	}
	if w.AtLocal != nil {
		parts = append(parts, "at "+w.AtLocal.String())
	}
	return strings.Join(parts, " ")
}

func clockString(c *policy.Clock) string {
	if c == nil {
		return ""
	}
	return c.String()
}

// stepDiff lists how two steps differ, field by field, ignoring ids and
// positions.
func stepDiff(oj, nj *Journey, a, b *Step) []Change {
	var out []Change
	field := func(name, o, n, pressure string) {
		if o != n {
			out = append(out, Change{Field: name, Old: o, New: n, Pressure: pressure})
		}
	}
	if a.Kind != b.Kind {
		field("kind", a.Summary(), b.Summary(), "")
		return out
	}
	field("goto", a.Goto, b.Goto, "")
	switch a.Kind {
	case KindWait:
		shorter := ""
		if a.Wait.Duration > 0 && b.Wait.Duration > 0 && b.Wait.Duration < a.Wait.Duration {
			shorter = "a shorter wait: messages come closer together"
		}
		field("wait.duration", fmtDur(a.Wait.Duration), fmtDur(b.Wait.Duration), shorter)
		field("wait.until", exprSrc(a.Wait.Until), exprSrc(b.Wait.Until), "")
		field("wait.at_local", clockString(a.Wait.AtLocal), clockString(b.Wait.AtLocal), "")
	case KindWaitFor:
		field("wait_for.event", a.WaitFor.Event, b.WaitFor.Event, "")
		shorter := ""
		if b.WaitFor.Timeout < a.WaitFor.Timeout {
			shorter = "a shorter timeout: the follow-up comes sooner"
		}
		field("wait_for.timeout", fmtDur(a.WaitFor.Timeout), fmtDur(b.WaitFor.Timeout), shorter)
		field("wait_for.on_timeout", a.WaitFor.OnTimeout, b.WaitFor.OnTimeout, "")
	case KindSend:
		more := ""
		if len(b.Send.Fallback) > len(a.Send.Fallback) {
			more = "more channels to reach the customer on"
		}
		field("send.channel", strings.Join(a.Send.Channels(), ", "), strings.Join(b.Send.Channels(), ", "), more)
		field("send.template", a.Send.Template, b.Send.Template, "")
		dedupe := ""
		if a.Send.Purpose != nil && b.Send.Purpose == nil {
			dedupe = "no purpose: no longer sent once across journeys"
		}
		field("send.purpose", exprSrc(a.Send.Purpose), exprSrc(b.Send.Purpose), dedupe)
		op, np := a.Send.Priority, b.Send.Priority
		if op != np {
			field("send.priority", prioString(op, oj), prioString(np, nj), priorityPressure(effective(op, oj), effective(np, nj)))
		}
	case KindBranch:
		for i := range max(len(a.Branch), len(b.Branch)) {
			var ac, bc Case
			if i < len(a.Branch) {
				ac = a.Branch[i]
			}
			if i < len(b.Branch) {
				bc = b.Branch[i]
			}
			field(fmt.Sprintf("branch[%d].when", i+1), caseWhen(ac, i < len(a.Branch)), caseWhen(bc, i < len(b.Branch)), "")
			field(fmt.Sprintf("branch[%d].goto", i+1), ac.Goto, bc.Goto, "")
		}
	case KindExit:
		field("exit.reason", a.Exit.Reason, b.Exit.Reason, "")
	}
	return out
}

func caseWhen(c Case, exists bool) string {
	switch {
	case !exists:
		return ""
	case c.When == nil:
		return "(always)"
	}
	return c.When.Source
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return policy.FormatDuration(d)
}

// effective is a send's priority: its own, or its journey's.
func effective(p policy.Priority, j *Journey) policy.Priority {
	if p == 0 {
		return j.Priority
	}
	return p
}

func prioString(p policy.Priority, j *Journey) string {
	if p == 0 {
		return "(journey's: " + j.Priority.String() + ")"
	}
	return p.String()
}

func basesString(bs []policy.Basis) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return strings.Join(out, ", ")
}
