package journey

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// Limits on what the parser accepts. Journeys are small hand-written files;
// anything near these limits is a mistake or an attack.
const (
	MaxFileSize = 1 << 20
	maxDepth    = 24
	maxNodes    = 50_000
)

// decoder walks yaml.v3 nodes, so that every error carries a line and column
// and decoding goes on after the first error.
type decoder struct {
	file string
	errs *ErrorList
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	e := Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	*d.errs = append(*d.errs, e)
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parseYAML parses one document and checks its size, depth and shape.
func (d *decoder) parseYAML(src []byte) (*yaml.Node, bool) {
	if len(src) > MaxFileSize {
		d.errorf(nil, "file is %d bytes; the limit is %d", len(src), MaxFileSize)
		return nil, false
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "file is empty")
			return nil, false
		}
		d.yamlError(err)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "only one YAML document per file")
		return nil, false
	}
	if len(doc.Content) == 0 {
		d.errorf(nil, "file is empty")
		return nil, false
	}
	root := doc.Content[0]
	nodes := 0
	if !d.checkShape(root, 0, &nodes) {
		return nil, false
	}
	return root, true
}

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	e := Error{File: d.file, Line: line, Msg: "YAML syntax: " + msg}
	if line > 0 {
		e.Col = 1
	}
	*d.errs = append(*d.errs, e)
}

// checkShape refuses anchors, aliases and merge keys (journeys do not need
// them, and aliases are how YAML bombs explode) and bounds depth and size.
func (d *decoder) checkShape(n *yaml.Node, depth int, nodes *int) bool {
	*nodes++
	if *nodes > maxNodes {
		d.errorf(n, "too many YAML nodes (limit %d)", maxNodes)
		return false
	}
	if depth > maxDepth {
		d.errorf(n, "nesting deeper than %d levels", maxDepth)
		return false
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(n, "YAML anchors and aliases are not supported in journeys")
		return false
	}
	for _, c := range n.Content {
		if !d.checkShape(c, depth+1, nodes) {
			return false
		}
	}
	return true
}

// field is one key of a mapping with its decoder.
type field struct {
	name     string
	required bool
	decode   func(key, val *yaml.Node)
}

// mapping decodes a mapping node field by field: unknown keys (with a
// suggestion), duplicate keys and missing required keys are errors.
func (d *decoder) mapping(n *yaml.Node, what string, fields ...field) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return false
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be plain strings", what)
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: duplicate field %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		found := false
		for _, f := range fields {
			if f.name == k.Value {
				found = true
				f.decode(k, v)
				break
			}
		}
		if !found {
			d.errorf(k, "%s: unknown field %q%s", what, k.Value, suggest(k.Value, fields))
		}
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			d.errorf(n, "%s: missing field %q", what, f.name)
		}
	}
	return true
}

func suggest(got string, fields []field) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if dist := levenshtein(got, f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.name
		}
		return " (known fields: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) nonEmpty(n *yaml.Node, what string) (string, bool) {
	s, ok := d.str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(n, "%s must not be empty", what)
		return "", false
	}
	return s, ok
}

func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		v, err := strconv.ParseBool(n.Value)
		if err == nil {
			return v, true
		}
	}
	d.errorf(n, "%s must be true or false, not %s", what, kindName(n))
	return false, false
}

func (d *decoder) integer(n *yaml.Node, what string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err == nil {
			return v, true
		}
	}
	d.errorf(n, "%s must be a whole number, not %s", what, kindName(n))
	return 0, false
}

func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := d.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := policy.ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

func (d *decoder) clock(n *yaml.Node, what string) (policy.Clock, bool) {
	s, ok := d.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := policy.ParseClock(s)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

func (d *decoder) location(n *yaml.Node, what string) (*time.Location, bool) {
	s, ok := d.nonEmpty(n, what)
	if !ok {
		return nil, false
	}
	loc, err := LoadLocation(s)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return nil, false
	}
	return loc, true
}

var ianaRE = regexp.MustCompile(`^(UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){1,2})$`)

// LoadLocation loads an IANA time zone. "Local" and file-system paths are
// refused: a customer's time zone must mean the same on every worker.
func LoadLocation(name string) (*time.Location, error) {
	if !ianaRE.MatchString(name) {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Oslo)", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Oslo)", name)
	}
	return loc, nil
}
