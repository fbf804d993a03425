package journey

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Type is an attribute or event field type declared in schema.yaml.
type Type string

// The types schema.yaml can declare.
const (
	String     Type = "string"
	Int        Type = "int"
	Double     Type = "double"
	Bool       Type = "bool"
	Timestamp  Type = "timestamp"
	Duration   Type = "duration"
	StringList Type = "list<string>"
)

var allTypes = []Type{String, Int, Double, Bool, Timestamp, Duration, StringList}

func (t Type) cel() *cel.Type {
	switch t {
	case String:
		return cel.StringType
	case Int:
		return cel.IntType
	case Double:
		return cel.DoubleType
	case Bool:
		return cel.BoolType
	case Timestamp:
		return cel.TimestampType
	case Duration:
		return cel.DurationType
	case StringList:
		return cel.ListType(cel.StringType)
	}
	return cel.DynType
}

// Builtin customer fields every customer has, whatever schema.yaml says.
var builtinCustomer = map[string]Type{"id": String, "email": String, "locale": String, "timezone": String}

// Fields maps field names to their types.
type Fields map[string]Type

// Names returns the field names in sorted order.
func (f Fields) Names() []string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Schema is the declared shape of customers and events (schema.yaml).
type Schema struct {
	File string
	// Customer holds the customer's fields, built-ins included.
	Customer Fields
	// Events maps event types to their data fields.
	Events map[string]Fields
	// Source is the file as read; it travels with journey definitions.
	Source []byte
	// optional holds, per shape ("" for the customer, else an event
	// type), the fields a value may leave out: customer attributes not
	// marked required and event fields marked optional.
	optional map[string]map[string]bool
	// received maps the names expressions use for events got by wait_for
	// steps to the event types (survey_answered -> survey.answered).
	received map[string]string

	envs *envs
	// locs caches customers' time zones: loading one reads and parses
	// zoneinfo, which would dominate Next.
	locs sync.Map
}

func (s *Schema) location(name string) (*time.Location, bool) {
	if v, ok := s.locs.Load(name); ok {
		return v.(*time.Location), true
	}
	loc, err := LoadLocation(name)
	if err != nil {
		return nil, false
	}
	s.locs.Store(name, loc)
	return loc, true
}

var (
	eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	fieldNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ParseSchema parses schema.yaml.
func ParseSchema(file string, src []byte) (*Schema, ErrorList) {
	return parseSchema(file, src, true)
}

// parseSchema parses a schema; strict as for parse.
func parseSchema(file string, src []byte, strict bool) (*Schema, ErrorList) {
	var errs ErrorList
	d := &decoder{file: file, errs: &errs, src: src, strict: strict}
	s := &Schema{File: file, Customer: Fields{}, Events: map[string]Fields{}, Source: src, optional: map[string]map[string]bool{}, received: map[string]string{}}
	for k, v := range builtinCustomer {
		s.Customer[k] = v
	}
	root, ok := d.parseYAML(src)
	if !ok {
		return nil, errs
	}
	d.mapping(root, "schema",
		field{name: "customer", required: true, decode: func(_, v *yaml.Node) {
			s.optional[""] = d.fields(v, "customer", s.Customer, true)
		}},
		field{name: "events", required: true, decode: func(_, v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "events must be a mapping of event type to fields")
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, fv := v.Content[i], v.Content[i+1]
				if !eventTypeRE.MatchString(k.Value) {
					d.errorf(k, "event type %q: use lower-case words separated by dots (order.placed)", k.Value)
					continue
				}
				if strings.HasPrefix(k.Value, "lojal.") {
					d.errorf(k, "event type %q: the lojal. prefix is reserved for lojal's own events", k.Value)
					continue
				}
				if _, dup := s.Events[k.Value]; dup {
					d.errorf(k, "duplicate event type %q", k.Value)
					continue
				}
				f := Fields{}
				s.optional[k.Value] = d.fields(fv, "event "+k.Value, f, false)
				s.Events[k.Value] = f
				name := receivedName(k.Value)
				if other, clash := s.received[name]; clash {
					// Older schemas may hold such a pair; neither is
					// reachable through received then.
					if d.strict {
						d.errorf(k, "event types %q and %q would both be received.%s in expressions; rename one", other, k.Value, name)
					}
					s.received[name] = ""
					continue
				}
				s.received[name] = k.Value
			}
		}},
	)
	if len(errs) > 0 {
		return nil, errs
	}
	for name, ev := range s.received {
		if ev == "" {
			delete(s.received, name)
		}
	}
	envs, err := newEnvs(s)
	if err != nil {
		d.errorf(root, "building the expression environment: %v", err)
		return nil, errs
	}
	s.envs = envs
	return s, nil
}

// fields decodes a mapping of field names to types into into and returns
// the fields that may be missing. "optional string" may be missing and
// "required string" may not; without either word customer attributes are
// optional (a customer record fills in over time) and event fields
// required (an event is one message with a fixed shape).
func (d *decoder) fields(n *yaml.Node, what string, into Fields, customer bool) map[string]bool {
	optional := map[string]bool{}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return optional
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping of field name to type", what)
		return optional
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !fieldNameRE.MatchString(k.Value) {
			d.errorf(k, "%s: field name %q: use lower_snake_case", what, k.Value)
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: duplicate field %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		t := Type(strings.TrimSpace(v.Value))
		opt := customer
		if base, ok := strings.CutPrefix(string(t), "optional "); ok {
			t, opt = Type(strings.TrimSpace(base)), true
		} else if base, ok := strings.CutPrefix(string(t), "required "); ok {
			t, opt = Type(strings.TrimSpace(base)), false
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			d.errorf(v, "%s.%s: want a type (one of %s), not %s", what, k.Value, joinTypes(), kindName(v))
			continue
		}
		if !slices.Contains(allTypes, t) {
			d.errorf(v, "%s.%s: unknown type %q%s", what, k.Value, v.Value, suggestType(string(t)))
			continue
		}
		if b, ok := builtinCustomer[k.Value]; customer && ok {
			if b != t {
				d.errorf(v, "%s.%s is built in and must be %s", what, k.Value, b)
			}
			// Built-in fields are always there; a marker changes nothing.
			into[k.Value] = t
			continue
		}
		into[k.Value] = t
		if opt {
			optional[k.Value] = true
		}
	}
	return optional
}

// FieldOptional reports whether a field may be missing: a customer
// attribute (event "") or a field of the given event type.
func (s *Schema) FieldOptional(event, field string) bool {
	if event == "" {
		if _, builtin := builtinCustomer[field]; builtin {
			return false
		}
	}
	return s.optional[event][field]
}

// missingRequired names the first required field values lacks.
func (s *Schema) missingRequired(event string, fields Fields, values map[string]any) string {
	for _, name := range fields.Names() {
		if _, builtin := builtinCustomer[name]; event == "" && builtin {
			continue
		}
		if _, ok := values[name]; !ok && !s.FieldOptional(event, name) {
			return name
		}
	}
	return ""
}

// typeAliases are the names other languages give lojal's types.
var typeAliases = map[string]Type{
	"integer": Int, "long": Int, "int64": Int, "number": Double, "float": Double, "float64": Double, "decimal": Double,
	"boolean": Bool, "str": String, "text": String, "datetime": Timestamp, "date": Timestamp, "time": Timestamp,
	"instant": Timestamp, "interval": Duration, "period": Duration, "list": StringList, "array": StringList,
	"[]string": StringList, "list[string]": StringList, "string[]": StringList,
}

// suggestType names the type meant by an unknown one, or lists them all.
func suggestType(got string) string {
	if t, ok := typeAliases[strings.ToLower(got)]; ok {
		return fmt.Sprintf(" (did you mean %q?)", t)
	}
	names := make([]string, len(allTypes))
	for i, t := range allTypes {
		names[i] = string(t)
	}
	if s := suggestName(strings.ToLower(got), names); s != "" {
		return s
	}
	return " (want one of " + joinTypes() + ")"
}

func joinTypes() string {
	s := make([]string, len(allTypes))
	for i, t := range allTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Coerce checks values (decoded JSON) against fields and converts them to
// the Go types expressions and templates use: int64, float64, bool, string,
// time.Time, time.Duration, []string. Unknown fields are errors; missing
// fields are allowed (expressions can test them with has()).
func (f Fields) Coerce(values map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(values))
	for _, name := range sortedKeys(values) {
		t, ok := f[name]
		if !ok {
			return nil, invalid("/"+PointerToken(name), "unknown field %q (declared: %s)", name, strings.Join(f.Names(), ", "))
		}
		v, err := coerce(t, values[name])
		if err != nil {
			return nil, invalid("/"+PointerToken(name), "field %q: %v", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func coerce(t Type, v any) (any, error) {
	switch t {
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case Int:
		switch n := v.(type) {
		case float64:
			if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
				return int64(n), nil
			}
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		}
	case Double:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		case int:
			return float64(n), nil
		}
	case Timestamp:
		switch x := v.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fmt.Errorf("want an RFC 3339 timestamp, got %q", x)
			}
			return ts, nil
		case time.Time:
			return x, nil
		}
	case Duration:
		switch x := v.(type) {
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, fmt.Errorf("want a duration such as 36h, got %q", x)
			}
			return d, nil
		case time.Duration:
			return x, nil
		}
	case StringList:
		switch x := v.(type) {
		case []string:
			return x, nil
		case []any:
			out := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings, item %d is %T", i, e)
				}
				out[i] = s
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %s", t, jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64, int, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
