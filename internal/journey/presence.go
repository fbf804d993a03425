package journey

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// A value that may be missing (an optional attribute, an event field
// marked optional, an event a wait_for may not have got) fails the run
// when an expression reads it without testing it first. Validation
// therefore follows what is known to be present: has() in the same
// expression, and has() in the audience and in branch conditions on the
// way to a step, until a wait (after which the customer is read afresh).

// facts are the paths known to be present ("customer.nickname",
// "received.survey_answered").
type facts map[string]struct{}

func (f facts) with(g facts) facts {
	if len(g) == 0 {
		return f
	}
	out := maps.Clone(f)
	if out == nil {
		out = facts{}
	}
	maps.Copy(out, g)
	return out
}

func (f facts) intersect(g facts) facts {
	out := facts{}
	for k := range f {
		if _, ok := g[k]; ok {
			out[k] = struct{}{}
		}
	}
	return out
}

func (f facts) equal(g facts) bool {
	if len(f) != len(g) {
		return false
	}
	for k := range f {
		if _, ok := g[k]; !ok {
			return false
		}
	}
	return true
}

// afterWait keeps only what a wait does not change: the events the run
// has received. The customer (and, when a newer trigger updates the run,
// the event) may have changed meanwhile.
func (f facts) afterWait() facts {
	out := facts{}
	for k := range f {
		if strings.HasPrefix(k, "received.") {
			out[k] = struct{}{}
		}
	}
	return out
}

// path names the value a select expression reads: customer.x, event.x,
// received.t or received.t.x; "" for anything else.
func path(e celast.Expr) string {
	if e.Kind() != celast.SelectKind {
		return ""
	}
	sel := e.AsSelect()
	op := sel.Operand()
	switch op.Kind() {
	case celast.IdentKind:
		switch name := op.AsIdent(); name {
		case "customer", "event", "received":
			return name + "." + sel.FieldName()
		}
	case celast.SelectKind:
		if p := path(op); strings.HasPrefix(p, "received.") && strings.Count(p, ".") == 1 {
			return p + "." + sel.FieldName()
		}
	}
	return ""
}

// callArgs returns the arguments of a call to the function fn, or nil.
func callArgs(e celast.Expr, fn string) []celast.Expr {
	if e.Kind() != celast.CallKind {
		return nil
	}
	c := e.AsCall()
	if c.FunctionName() != fn {
		return nil
	}
	return c.Args()
}

// whenTrue returns what is present when e evaluates to true.
func whenTrue(e celast.Expr) facts {
	if e.Kind() == celast.SelectKind && e.AsSelect().IsTestOnly() {
		if p := path(e); p != "" {
			return facts{p: {}}
		}
		return nil
	}
	if a := callArgs(e, "_&&_"); len(a) == 2 {
		return whenTrue(a[0]).with(whenTrue(a[1]))
	}
	if a := callArgs(e, "_||_"); len(a) == 2 {
		return whenTrue(a[0]).intersect(whenTrue(a[1]))
	}
	if a := callArgs(e, "!_"); len(a) == 1 {
		return whenFalse(a[0])
	}
	return nil
}

// whenFalse returns what is present when e evaluates to false.
func whenFalse(e celast.Expr) facts {
	if a := callArgs(e, "!_"); len(a) == 1 {
		return whenTrue(a[0])
	}
	if a := callArgs(e, "_||_"); len(a) == 2 {
		return whenFalse(a[0]).with(whenFalse(a[1]))
	}
	if a := callArgs(e, "_&&_"); len(a) == 2 {
		return whenFalse(a[0]).intersect(whenFalse(a[1]))
	}
	return nil
}

// optionality says whether the value at a path may be missing and, if
// so, how to make the expression safe.
type optionality func(path string) (fix string, optional bool)

// presenceChecker reports reads of values that may be missing.
type presenceChecker struct {
	d        *decoder
	expr     *Expr
	what     string
	optional optionality
}

func (c *presenceChecker) check(e celast.Expr, known facts) {
	switch e.Kind() {
	case celast.SelectKind:
		sel := e.AsSelect()
		if !sel.IsTestOnly() {
			c.read(e, known)
		}
		c.check(sel.Operand(), known)
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		switch {
		case call.FunctionName() == "_&&_" && len(args) == 2:
			c.check(args[0], known)
			c.check(args[1], known.with(whenTrue(args[0])))
			return
		case call.FunctionName() == "_||_" && len(args) == 2:
			c.check(args[0], known)
			c.check(args[1], known.with(whenFalse(args[0])))
			return
		case call.FunctionName() == "_?_:_" && len(args) == 3:
			c.check(args[0], known)
			c.check(args[1], known.with(whenTrue(args[0])))
			c.check(args[2], known.with(whenFalse(args[0])))
			return
		}
		if call.IsMemberFunction() {
			c.check(call.Target(), known)
		}
		for _, a := range args {
			c.check(a, known)
		}
	case celast.ComprehensionKind:
		comp := e.AsComprehension()
		for _, x := range []celast.Expr{comp.IterRange(), comp.AccuInit(), comp.LoopCondition(), comp.LoopStep(), comp.Result()} {
			c.check(x, known)
		}
	case celast.ListKind:
		for _, x := range e.AsList().Elements() {
			c.check(x, known)
		}
	case celast.MapKind:
		for _, en := range e.AsMap().Entries() {
			if en.Kind() == celast.MapEntryKind {
				c.check(en.AsMapEntry().Key(), known)
				c.check(en.AsMapEntry().Value(), known)
			}
		}
	case celast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			if f.Kind() == celast.StructFieldKind {
				c.check(f.AsStructField().Value(), known)
			}
		}
	}
}

func (c *presenceChecker) read(e celast.Expr, known facts) {
	p := path(e)
	if p == "" {
		return
	}
	if _, ok := known[p]; ok {
		return
	}
	fix, optional := c.optional(p)
	if !optional {
		return
	}
	off := 0
	if r, found := c.expr.ast.SourceInfo().GetOffsetRange(e.ID()); found {
		off = exprOffset(c.expr.Source, 1, int(r.Start))
	}
	// The offset is the dot; point at the name after it.
	if off < len(c.expr.Source) && c.expr.Source[off] == '.' {
		off++
	}
	c.d.exprErrorAt(c.expr.node, off, "%s: %s may be missing, and reading it then fails the run: %s", c.what, p, fix)
}

// checkPresence runs the checker over one expression.
func (d *decoder) checkPresence(x *Expr, what string, known facts, optional optionality) {
	if x == nil || x.ast == nil {
		return
	}
	c := &presenceChecker{d: d, expr: x, what: what, optional: optional}
	c.check(x.ast.Expr(), known)
}

// optionality returns the journey's rule for which values may be missing.
func (j *Journey) optionality() optionality {
	test := func(p string) string { return fmt.Sprintf("test it first (has(%s) && ...)", p) }
	return func(p string) (string, bool) {
		root, rest, _ := strings.Cut(p, ".")
		switch root {
		case "customer":
			if j.Schema.FieldOptional("", rest) {
				return fmt.Sprintf("%s, or declare it required in %s (%s: required %s) if every customer has one", test(p), j.Schema.File, rest, j.Schema.Customer[rest]), true
			}
		case "event":
			if j.Schema.FieldOptional(j.Trigger.Event, rest) {
				return fmt.Sprintf("%s; %s declares it optional (%s: optional %s)", test(p), j.Schema.File, rest, j.Schema.Events[j.Trigger.Event][rest]), true
			}
		case "received":
			name, field, hasField := strings.Cut(rest, ".")
			ev := j.receivedEvent(name)
			if !hasField {
				return fmt.Sprintf("it is set once a wait_for has got %s, and this step can be reached without that (on a timeout); %s", ev, test(p)), true
			}
			if ev != "" && j.Schema.FieldOptional(ev, field) {
				return fmt.Sprintf("%s; %s declares it optional (%s: optional %s)", test(p), j.Schema.File, field, j.Schema.Events[ev][field]), true
			}
		}
		return "", false
	}
}

// receivedEvent returns the event type a received.<name> stands for.
func (j *Journey) receivedEvent(name string) string {
	for _, s := range j.Steps {
		if s.WaitFor != nil && receivedName(s.WaitFor.Event) == name {
			return s.WaitFor.Event
		}
	}
	return ""
}

// receivedName is how received.<name> names an event type: dots become
// underscores (survey.answered -> survey_answered).
func receivedName(event string) string { return strings.ReplaceAll(event, ".", "_") }

// stepFacts computes what is known to be present on entry to each step.
// A step reached along several paths knows only what every path knows.
func (j *Journey) stepFacts() []facts {
	n := len(j.Steps)
	in := make([]facts, n)
	known := make([]bool, n)
	var start facts
	if j.Audience != nil && j.Audience.ast != nil {
		start = whenTrue(j.Audience.ast.Expr())
	}
	if start == nil {
		start = facts{}
	}
	in[0], known[0] = start, true
	queue := []int{0}
	flow := func(k int, f facts) {
		if k >= n {
			return
		}
		if !known[k] {
			in[k], known[k] = f, true
			queue = append(queue, k)
			return
		}
		if meet := in[k].intersect(f); !meet.equal(in[k]) {
			in[k] = meet
			queue = append(queue, k)
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		s, f := j.Steps[i], in[i]
		switch s.Kind {
		case KindWait:
			flow(j.after(i), f.afterWait())
		case KindWaitFor:
			after := f.afterWait()
			flow(j.after(i), after.with(facts{"received." + receivedName(s.WaitFor.Event): {}}))
			timeout := j.after(i)
			if s.WaitFor.OnTimeout != "" {
				timeout = j.index[s.WaitFor.OnTimeout]
			}
			flow(timeout, after)
		case KindSend:
			flow(j.after(i), f)
		case KindBranch:
			failed := f
			for _, c := range s.Branch {
				if c.When == nil || c.When.ast == nil {
					flow(j.index[c.Goto], failed)
					failed = nil
					break
				}
				flow(j.index[c.Goto], failed.with(whenTrue(c.When.ast.Expr())))
				failed = failed.with(whenFalse(c.When.ast.Expr()))
			}
			if failed != nil {
				flow(i+1, failed)
			}
		}
	}
	for i := range in {
		if in[i] == nil {
			in[i] = facts{}
		}
	}
	return in
}

// checkJourneyPresence checks every expression of a journey for reads of
// values that may be missing.
func (d *decoder) checkJourneyPresence(j *Journey) {
	opt := j.optionality()
	d.checkPresence(j.Audience, "audience", nil, opt)
	d.checkPresence(j.Key, "key", nil, opt)
	in := j.stepFacts()
	for i, s := range j.Steps {
		switch s.Kind {
		case KindWait:
			d.checkPresence(s.Wait.Until, "wait until", in[i], opt)
		case KindSend:
			d.checkPresence(s.Send.Purpose, "purpose", in[i], opt)
		case KindBranch:
			known := in[i]
			for _, c := range s.Branch {
				if c.When == nil {
					continue
				}
				d.checkPresence(c.When, "when", known, opt)
				known = known.with(whenFalse(c.When.ast.Expr()))
			}
		}
	}
}

// checkJourneyNames checks the names expressions use that the type checker
// cannot: received.<name> must be an event the journey waits for,
// outcome("id") must name a send step and be compared with an outcome
// there is, and the audience and key (decided before a run starts, for
// every event alike) cannot use now, received or outcome().
func (d *decoder) checkJourneyNames(j *Journey) {
	var sends []string
	for _, s := range j.Steps {
		if s.Kind == KindSend {
			sends = append(sends, s.ID)
		}
	}
	outcomes := make([]string, len(SendOutcomes))
	for i, o := range SendOutcomes {
		outcomes[i] = string(o)
	}
	check := func(x *Expr, what string, beforeRun bool) {
		if x == nil || x.ast == nil {
			return
		}
		at := func(e celast.Expr) int {
			if r, found := x.ast.SourceInfo().GetOffsetRange(e.ID()); found {
				return exprOffset(x.Source, 1, int(r.Start))
			}
			return 0
		}
		celast.PreOrderVisit(x.ast.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
			switch e.Kind() {
			case celast.IdentKind:
				name := e.AsIdent()
				if beforeRun && (name == "now" || name == "received" || name == outcomesVar) {
					shown := name
					if name == outcomesVar {
						shown = "outcome()"
					}
					why := "it is decided before the run starts"
					if what == "key" {
						why = "it must come out the same for every event of the run"
					}
					d.exprErrorAt(x.node, at(e), "%s cannot use %s: %s", what, shown, why)
				}
			case celast.SelectKind:
				p := path(e)
				name, _, _ := strings.Cut(strings.TrimPrefix(p, "received."), ".")
				if p == "received."+name && j.receivedEvent(name) == "" && !beforeRun {
					off := at(e)
					if e.AsSelect().Operand().Kind() == celast.IdentKind && off < len(x.Source) && x.Source[off] == '.' {
						off++
					}
					d.exprErrorAt(x.node, off, "%s: received.%s is never set: no wait_for in this journey waits for %s",
						what, name, j.Schema.received[name])
				}
			case celast.CallKind:
				call := e.AsCall()
				if a := callArgs(e, operators.Index); len(a) == 2 && a[0].Kind() == celast.IdentKind && a[0].AsIdent() == outcomesVar {
					if id, ok := literalString(a[1]); ok && !slices.Contains(sends, id) {
						d.exprErrorAt(x.node, at(a[1]), "%s: outcome(%q): no send step has that id%s", what, id, suggestName(id, sends))
					}
				}
				if fn := call.FunctionName(); (fn == operators.Equals || fn == operators.NotEquals) && len(call.Args()) == 2 {
					for k, side := range call.Args() {
						other := call.Args()[1-k]
						if a := callArgs(side, operators.Index); len(a) == 2 && a[0].Kind() == celast.IdentKind && a[0].AsIdent() == outcomesVar {
							if o, ok := literalString(other); ok && !slices.Contains(outcomes, o) {
								d.exprErrorAt(x.node, at(other), "%s: %q is not an outcome of a send (want one of %s)%s",
									what, o, strings.Join(outcomes, ", "), suggestName(o, outcomes))
							}
						}
					}
				}
			}
		}))
	}
	check(j.Audience, "audience", true)
	check(j.Key, "key", true)
	for _, s := range j.Steps {
		switch s.Kind {
		case KindWait:
			check(s.Wait.Until, "wait until", false)
		case KindSend:
			check(s.Send.Purpose, "purpose", false)
		case KindBranch:
			for _, c := range s.Branch {
				check(c.When, "when", false)
			}
		}
	}
}

func literalString(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}
