package journey

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/parser"
	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// Limits on expressions. They are checked when journeys are validated, so a
// condition that could loop or explode is refused before anything runs, and
// enforced again at evaluation time.
const (
	maxExprLen       = 2000
	maxExprRecursion = 32
	// MaxCost bounds an expression's evaluation cost (CEL cost units, roughly
	// one per operation).
	MaxCost = 10_000
	// assumedListSize and assumedStringSize are what cost estimation assumes
	// about lists and strings from customer data.
	assumedListSize   = 100
	assumedStringSize = 1000
)

const (
	customerTypeName = "lojal.Customer"
	receivedTypeName = "lojal.Received"
	eventTypePrefix  = "lojal.event."
	// outcomesVar holds each send step's outcome; outcome("step") reads
	// it (the macro below), so journeys never name it.
	outcomesVar = "lojal_outcomes"
)

// envs holds one CEL environment per trigger event type, all built from one
// schema. Building them is the expensive part of compiling, so it happens
// once per schema.
type envs struct {
	noEvent  *cel.Env
	perEvent map[string]*cel.Env
}

// provider makes schema.yaml's customer and event shapes known to the CEL
// type checker. At run time customers and events are plain maps; field
// access goes through GetFrom below.
type provider struct {
	types.Provider
	structs map[string]Fields
	// received maps the fields of `received` to the event types they
	// hold (survey_answered -> survey.answered).
	received map[string]string
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.structs[name]; ok || name == receivedTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if f, ok := p.structs[name]; ok {
		return f.Names(), true
	}
	if name == receivedTypeName {
		return sortedKeys(p.received), true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	var t *cel.Type
	if name == receivedTypeName {
		ev, ok := p.received[fieldName]
		if !ok {
			return nil, false
		}
		t = cel.ObjectType(eventTypeName(ev))
	} else {
		f, ok := p.structs[name]
		if !ok {
			return p.Provider.FindStructFieldType(name, fieldName)
		}
		ft, ok := f[fieldName]
		if !ok {
			return nil, false
		}
		t = ft.cel()
	}
	return &types.FieldType{
		Type: t,
		IsSet: func(target any) bool {
			m, ok := target.(map[string]any)
			if !ok {
				return false
			}
			_, set := m[fieldName]
			return set
		},
		GetFrom: func(target any) (any, error) {
			m, ok := target.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s is not an object", name)
			}
			v, set := m[fieldName]
			if !set {
				return nil, fmt.Errorf("%s has no value (test it with has())", fieldName)
			}
			return v, nil
		},
	}, true
}

// expandOutcome turns outcome("remind") into a read of the outcomes map.
// The step must be named by a literal, so validation can check it.
func expandOutcome(eh parser.ExprHelper, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
	if args[0].Kind() != celast.LiteralKind {
		return nil, eh.NewError(args[0].ID(), `outcome() takes the id of a send step in quotes: outcome("remind")`)
	}
	if _, ok := args[0].AsLiteral().(types.String); !ok {
		return nil, eh.NewError(args[0].ID(), `outcome() takes the id of a send step in quotes: outcome("remind")`)
	}
	return eh.NewCall(operators.Index, eh.NewIdent(outcomesVar), args[0]), nil
}

func eventTypeName(event string) string {
	return eventTypePrefix + strings.ReplaceAll(event, ".", "__")
}

func newEnvs(s *Schema) (*envs, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Provider: reg, structs: map[string]Fields{customerTypeName: s.Customer}, received: s.received}
	for ev, f := range s.Events {
		p.structs[eventTypeName(ev)] = f
	}
	base, err := cel.NewEnv(
		cel.CustomTypeProvider(p),
		cel.Variable("customer", cel.ObjectType(customerTypeName)),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("received", cel.ObjectType(receivedTypeName)),
		cel.Variable(outcomesVar, cel.MapType(cel.StringType, cel.StringType)),
		cel.Macros(cel.GlobalMacro("outcome", 1, expandOutcome)),
		cel.ParserRecursionLimit(maxExprRecursion),
		cel.ParserExpressionSizeLimit(maxExprLen),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		return nil, err
	}
	e := &envs{noEvent: base, perEvent: make(map[string]*cel.Env, len(s.Events))}
	for ev := range s.Events {
		env, err := base.Extend(cel.Variable("event", cel.ObjectType(eventTypeName(ev))))
		if err != nil {
			return nil, err
		}
		e.perEvent[ev] = env
	}
	return e, nil
}

// Expr is a compiled, type-checked CEL expression from a journey file.
type Expr struct {
	Source string
	File   string
	Line   int
	Col    int
	prg    cel.Program
	// ast and node are kept for the checks that follow the journey's
	// steps (has() before optional values) and for their positions.
	ast  *celast.AST
	node *yaml.Node
}

// compileExpr compiles n's text as CEL with the given result type in the
// environment of the journey's trigger event ("" for none).
func (d *decoder) compileExpr(s *Schema, event string, n *yaml.Node, what string, want *cel.Type) *Expr {
	src, ok := d.nonEmpty(n, what)
	if !ok || s == nil {
		return nil
	}
	env := s.envs.noEvent
	if event != "" {
		if env = s.envs.perEvent[event]; env == nil {
			return nil // the undeclared trigger event is reported once, elsewhere
		}
	}
	if len(src) > maxExprLen {
		d.errorf(n, "%s: expression is %d characters; the limit is %d", what, len(src), maxExprLen)
		return nil
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			off := exprOffset(src, e.Location.Line(), e.Location.Column())
			msg := e.Message
			if m := undefinedFieldRE.FindStringSubmatch(msg); m != nil {
				// CEL points at the dot; the mistake is the name after it.
				if off < len(src) && src[off] == '.' {
					off++
				}
				msg = unknownField(s, event, src, off, m[1])
			} else if strings.HasPrefix(msg, "outcome() takes") {
				if i := strings.LastIndex(src[:off], "outcome("); i >= 0 {
					off = i + len("outcome(")
				}
			} else if m := undeclaredRE.FindStringSubmatch(msg); m != nil {
				msg = fmt.Sprintf("unknown name %q%s", m[1], suggestName(m[1], knownNames(event)))
			}
			d.exprErrorAt(n, off, "%s: %s", what, msg)
		}
		return nil
	}
	if !ast.OutputType().IsExactType(want) && !(want == cel.StringType && ast.OutputType().IsExactType(cel.IntType)) {
		d.errorf(n, "%s must be %s, but %q is %s", what, typeName(want), src, typeName(ast.OutputType()))
		return nil
	}
	if d.strict && !d.checkLiterals(n, src, ast, what) {
		return nil
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		d.errorf(n, "%s: estimating cost: %v", what, err)
		return nil
	}
	if est.Max > MaxCost {
		d.errorf(n, "%s: expression may cost up to %d units; the limit is %d (simplify nested list operations)", what, est.Max, MaxCost)
		return nil
	}
	prg, err := env.Program(ast, cel.CostLimit(MaxCost), cel.InterruptCheckFrequency(100))
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return nil
	}
	return &Expr{Source: src, File: d.file, Line: n.Line, Col: n.Column, prg: prg, ast: ast.NativeRep(), node: n}
}

var (
	undefinedFieldRE = regexp.MustCompile(`^undefined field '([^']*)'`)
	undeclaredRE     = regexp.MustCompile(`^undeclared reference to '([^']*)'`)
)

// celFunctions are the CEL functions and macros journeys use most, for
// suggestions when a name is unknown.
var celFunctions = []string{"has", "size", "duration", "timestamp", "matches", "startsWith", "endsWith", "contains",
	"exists", "exists_one", "all", "map", "filter", "int", "double", "string", "bool", "getFullYear", "getMonth",
	"getDayOfMonth", "getDayOfWeek", "getHours"}

// knownNames are the names an expression can use, for suggestions.
func knownNames(event string) []string {
	names := append([]string{"customer", "now", "received", "outcome"}, celFunctions...)
	if event != "" {
		names = append(names, "event")
	}
	return names
}

// unknownField explains a field that does not exist, naming the value it
// was looked up on (the text before the dot at off-1) and the closest
// declared field.
func unknownField(s *Schema, event, src string, off int, field string) string {
	dot := max(off-1, 0)
	start := dot
	for start > 0 && (isIdentByte(src[start-1]) || src[start-1] == '.') {
		start--
	}
	operand := src[start:dot]
	switch operand {
	case "customer":
		return fmt.Sprintf("customer has no field %q%s", field, suggestName(field, s.Customer.Names()))
	case "event":
		return fmt.Sprintf("event %s has no field %q%s", event, field, suggestName(field, s.Events[event].Names()))
	case "received":
		return fmt.Sprintf("received has no field %q%s; received.<name> is the event a wait_for got, its type with _ for . (survey.answered: received.survey_answered)",
			field, suggestName(field, sortedKeys(s.received)))
	}
	if name, ok := strings.CutPrefix(operand, "received."); ok {
		if ev := s.received[name]; ev != "" {
			return fmt.Sprintf("event %s has no field %q%s", ev, field, suggestName(field, s.Events[ev].Names()))
		}
	}
	return fmt.Sprintf("%s has no field %q", operand, field)
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// exprOffset converts a CEL location (1-based line, 0-based column in
// characters) into a byte offset in src.
func exprOffset(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	for c := 0; c < col && off < len(src); c++ {
		_, w := utf8.DecodeRuneInString(src[off:])
		off += w
	}
	return off
}

// exprErrorAt reports an error at byte offset off inside expression n.
func (d *decoder) exprErrorAt(n *yaml.Node, off int, format string, args ...any) {
	line, col := ScalarPos(d.src, n, off)
	*d.errs = append(*d.errs, Error{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// checkLiterals evaluates duration("...") and timestamp("...") with a
// constant argument exactly as they will run, so a literal that can never
// work is reported where it is written instead of failing every run.
func (d *decoder) checkLiterals(n *yaml.Node, src string, a *cel.Ast, what string) bool {
	native := a.NativeRep()
	ok := true
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		fn := call.FunctionName()
		if (fn != "duration" && fn != "timestamp") || call.IsMemberFunction() || len(call.Args()) != 1 {
			return
		}
		arg := call.Args()[0]
		if arg.Kind() != celast.LiteralKind {
			return
		}
		lit, isString := arg.AsLiteral().(types.String)
		if !isString {
			return
		}
		target := types.DurationType
		if fn == "timestamp" {
			target = types.TimestampType
		}
		if !types.IsError(lit.ConvertToType(target)) {
			return
		}
		ok = false
		off := 0
		if r, found := native.SourceInfo().GetOffsetRange(arg.ID()); found {
			off = exprOffset(src, 1, int(r.Start))
		}
		d.exprErrorAt(n, off, "%s: %s", what, literalProblem(fn, string(lit)))
	}))
	return ok
}

// literalProblem explains why a duration or timestamp literal cannot be
// converted, and what to write instead.
func literalProblem(fn, text string) string {
	if fn == "duration" {
		if unit := text[max(len(text)-1, 0):]; unit == "d" || unit == "w" {
			if dur, err := policy.ParseDuration(text); err == nil {
				return fmt.Sprintf("duration(%q): CEL durations have no %q unit; write duration(%q)", text, unit, fmt.Sprintf("%dh", dur/time.Hour))
			}
		}
		return fmt.Sprintf("duration(%q) is not a valid duration; write hours, minutes or seconds such as duration(\"36h\") or duration(\"90m\")", text)
	}
	reason := "write RFC 3339 such as \"2026-03-01T09:00:00Z\""
	if _, err := time.Parse(time.RFC3339, text); err != nil {
		if _, after, found := strings.Cut(err.Error(), "\": "); found {
			reason = after + "; " + reason
		}
	}
	return fmt.Sprintf("timestamp(%q) is not a valid time: %s", text, reason)
}

func typeName(t *cel.Type) string {
	switch {
	case t.IsExactType(cel.BoolType):
		return "a boolean (true/false)"
	case t.IsExactType(cel.StringType):
		return "a string"
	case t.IsExactType(cel.TimestampType):
		return "a timestamp"
	}
	return "of type " + t.String()
}

// sizeEstimator tells the cost estimator how large customer data can be.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	switch {
	case element.Type().IsExactType(cel.StringType):
		return &checker.SizeEstimate{Min: 0, Max: assumedStringSize}
	default:
		return &checker.SizeEstimate{Min: 0, Max: assumedListSize}
	}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Vars are the variables an expression sees.
type Vars struct {
	Customer map[string]any
	Event    map[string]any
	// Now is the time of the evaluation (workflow time in a run).
	Now time.Time
	// Received holds the data of the events wait_for steps have got, by
	// received name (survey_answered).
	Received map[string]any
	// Outcomes holds each send step's outcome (SendOutcome), by step id.
	Outcomes map[string]string
}

func (v Vars) activation() map[string]any {
	a := map[string]any{"customer": v.Customer, "now": v.Now, "received": v.Received, outcomesVar: v.Outcomes}
	if v.Received == nil {
		a["received"] = map[string]any{}
	}
	if v.Outcomes == nil {
		a[outcomesVar] = map[string]string{}
	}
	if v.Event != nil {
		a["event"] = v.Event
	}
	return a
}

func (e *Expr) eval(v Vars) (ref.Val, error) {
	out, _, err := e.prg.Eval(v.activation())
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", e.where(), e.Source, err)
	}
	return out, nil
}

// where is the expression's position, file:line:col.
func (e *Expr) where() string { return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col) }

// Bool evaluates a boolean expression.
func (e *Expr) Bool(v Vars) (bool, error) {
	out, err := e.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%s: %s: not a boolean", e.where(), e.Source)
	}
	return b, nil
}

// String evaluates a string (or integer) expression.
func (e *Expr) String(v Vars) (string, error) {
	out, err := e.eval(v)
	if err != nil {
		return "", err
	}
	switch x := out.Value().(type) {
	case string:
		return x, nil
	case int64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%s: %s: not a string", e.where(), e.Source)
}

// Time evaluates a timestamp expression.
func (e *Expr) Time(v Vars) (time.Time, error) {
	out, err := e.eval(v)
	if err != nil {
		return time.Time{}, err
	}
	t, ok := out.Value().(time.Time)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: %s: not a timestamp", e.where(), e.Source)
	}
	return t, nil
}
