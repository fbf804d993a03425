package journey

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"
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
	eventTypePrefix  = "lojal.event."
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
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.structs[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if f, ok := p.structs[name]; ok {
		return f.Names(), true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	f, ok := p.structs[name]
	if !ok {
		return p.Provider.FindStructFieldType(name, fieldName)
	}
	t, ok := f[fieldName]
	if !ok {
		return nil, false
	}
	return &types.FieldType{
		Type: t.cel(),
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

func eventTypeName(event string) string {
	return eventTypePrefix + strings.ReplaceAll(event, ".", "__")
}

func newEnvs(s *Schema) (*envs, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Provider: reg, structs: map[string]Fields{customerTypeName: s.Customer}}
	for ev, f := range s.Events {
		p.structs[eventTypeName(ev)] = f
	}
	base, err := cel.NewEnv(
		cel.CustomTypeProvider(p),
		cel.Variable("customer", cel.ObjectType(customerTypeName)),
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
	Line   int
	Col    int
	prg    cel.Program
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
			d.exprErrorf(n, e.Location.Line(), e.Location.Column(), "%s: %s", what, e.Message)
		}
		return nil
	}
	if !ast.OutputType().IsExactType(want) && !(want == cel.StringType && ast.OutputType().IsExactType(cel.IntType)) {
		d.errorf(n, "%s must be %s, but %q is %s", what, typeName(want), src, typeName(ast.OutputType()))
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
	return &Expr{Source: src, Line: n.Line, Col: n.Column, prg: prg}
}

// exprErrorf reports an error at a position inside an expression. For a
// single-line plain or quoted scalar the column is exact.
func (d *decoder) exprErrorf(n *yaml.Node, line, col int, format string, args ...any) {
	pos := *n
	if line <= 1 {
		pos.Column += col
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			pos.Column++
		}
	} else if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		pos.Line += line
	}
	d.errorf(&pos, format, args...)
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
}

func (v Vars) activation() map[string]any {
	a := map[string]any{"customer": v.Customer}
	if v.Event != nil {
		a["event"] = v.Event
	}
	return a
}

func (e *Expr) eval(v Vars) (ref.Val, error) {
	out, _, err := e.prg.Eval(v.activation())
	if err != nil {
		return nil, fmt.Errorf("line %d: %s: %w", e.Line, e.Source, err)
	}
	return out, nil
}

// Bool evaluates a boolean expression.
func (e *Expr) Bool(v Vars) (bool, error) {
	out, err := e.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("line %d: %s: not a boolean", e.Line, e.Source)
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
	return "", fmt.Errorf("line %d: %s: not a string", e.Line, e.Source)
}

// Time evaluates a timestamp expression.
func (e *Expr) Time(v Vars) (time.Time, error) {
	out, err := e.eval(v)
	if err != nil {
		return time.Time{}, err
	}
	t, ok := out.Value().(time.Time)
	if !ok {
		return time.Time{}, fmt.Errorf("line %d: %s: not a timestamp", e.Line, e.Source)
	}
	return t, nil
}
