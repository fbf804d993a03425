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
	"unicode/utf8"

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
	// src is the file as read: positions inside multi-line values and
	// expressions are found in it.
	src []byte
	// strict turns on the checks for mistakes that an older lojal
	// accepted (see Parse): definitions already running are compiled
	// without them, so a stricter release never fails a run in flight.
	strict bool
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	e := Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	*d.errs = append(*d.errs, e)
}

// ParseYAML parses one YAML document with the checks every lojal file
// gets (size, one document, no anchors, bounded depth) and returns its
// root. Syntax errors carry the line and column of the mistake.
func ParseYAML(file string, src []byte) (*yaml.Node, ErrorList) {
	var errs ErrorList
	d := &decoder{file: file, errs: &errs, src: src}
	root, ok := d.parseYAML(src)
	if !ok {
		return nil, errs
	}
	return root, nil
}

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
		d.yamlError(src, err)
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

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlError reports a YAML syntax error on the line that holds the mistake
// and, as far as the kind of mistake tells, at its column. yaml.v3 names
// the line where the enclosing construct began, counts from zero for some
// errors and leaves the line out on the first one, so the line is found
// again: it is the last line of the shortest prefix of the file that
// fails the same way.
func (d *decoder) yamlError(src []byte, err error) {
	msg := err.Error()
	reported := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := strings.SplitAfter(string(src), "\n")
	line := failingLine(lines, msg)
	if line == 0 {
		line = max(reported, 1)
	}
	text := ""
	if line <= len(lines) {
		text = strings.TrimRight(lines[line-1], "\r\n")
	}
	col, hint := syntaxColumn(text, msg)
	*d.errs = append(*d.errs, Error{File: d.file, Line: line, Col: col, Msg: "YAML syntax: " + msg + hint})
}

// failingLine returns the 1-based line that makes the document fail with
// msg, or 0 when no prefix does.
func failingLine(lines []string, msg string) int {
	fails := func(k int) bool {
		var n yaml.Node
		err := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n)
		if err == nil {
			return false
		}
		m := yamlLineRE.FindStringSubmatch(err.Error())
		return m != nil && m[2] == msg
	}
	const linearLimit = 400
	if len(lines) <= linearLimit {
		for k := 1; k <= len(lines); k++ {
			if fails(k) {
				return k
			}
		}
		return 0
	}
	// Long files: a binary search, which holds for the usual mistakes
	// (once the bad line is in, every longer prefix fails too).
	lo, hi := 1, len(lines)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

var keyPrefixRE = regexp.MustCompile(`^(\s*(?:- )?)[^\s:#'"{}\[\],&*!|>%@` + "`" + `][^:#]*?:(?:\s|$)`)

// syntaxColumn guesses the 1-based column of a YAML syntax error on line
// from its message, and a hint at the usual cause.
func syntaxColumn(line, msg string) (int, string) {
	runeCol := func(byteIdx int) int { return utf8.RuneCountInString(line[:byteIdx]) + 1 }
	firstText := func(from int) int {
		for i := from; i < len(line); i++ {
			if line[i] != ' ' && line[i] != '\t' {
				return i
			}
		}
		return from
	}
	// value is where the value after "key: " begins (or the first text on
	// the line when it holds no key).
	value := firstText(0)
	if m := keyPrefixRE.FindStringIndex(line); m != nil {
		value = firstText(m[1])
	}
	// A quoted value with text after its closing quote.
	if value < len(line) && (line[value] == '\'' || line[value] == '"') {
		if end := closingQuote(line, value); end > 0 {
			if rest := firstText(end + 1); rest < len(line) && line[rest] != '#' {
				hint := ""
				if line[value] == '\'' {
					hint = " (inside '...' write '' for a single quote)"
				}
				return runeCol(rest), ": text after the closing quote" + hint
			}
		} else if strings.Contains(msg, "end of stream") || strings.Contains(msg, "quoted scalar") {
			return runeCol(value), " (the quote that opens here is never closed)"
		}
	}
	switch {
	case strings.Contains(msg, "tab character"):
		if i := strings.IndexByte(line, '\t'); i >= 0 {
			return runeCol(i), " (indent with spaces, not tabs)"
		}
	case strings.Contains(msg, "mapping values are not allowed"):
		rest := line[value:]
		if i := strings.Index(rest, ": "); i >= 0 && value > firstText(0) {
			return runeCol(value + i), " (a value that contains \": \" must be quoted)"
		}
		if i := strings.IndexByte(line, ':'); i >= 0 {
			return runeCol(i), " (is this line indented too far?)"
		}
	case strings.Contains(msg, "block sequence entries are not allowed"):
		return runeCol(value), " (a list starts on the line after its key)"
	case strings.Contains(msg, "','"), strings.Contains(msg, "cannot start any token"):
		hint := ""
		if value < len(line) && (line[value] == '{' || line[value] == '[') {
			hint = " (a value that starts with { or [ must be quoted)"
		}
		return runeCol(value), hint
	}
	return runeCol(firstText(0)), ""
}

// closingQuote returns the index of the quote that closes the one at
// open, or -1 when the line does not close it.
func closingQuote(line string, open int) int {
	q := line[open]
	for i := open + 1; i < len(line); i++ {
		switch {
		case q == '"' && line[i] == '\\':
			i++
		case line[i] == q:
			if q == '\'' && i+1 < len(line) && line[i+1] == '\'' {
				i++
				continue
			}
			return i
		}
	}
	return -1
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

// pos is a position in a file.
type pos struct{ line, col int }

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

func (p pos) node() *yaml.Node { return &yaml.Node{Line: p.line, Column: p.col} }

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
	// Days and weeks were always bounded; other units (100000h) are
	// held to the same ten years by newer validation only, so a run in
	// flight that carries one still compiles.
	if d.strict && v > policy.MaxDuration {
		d.errorf(n, "%s: duration %q is longer than ten years (%s at most)", what, s, policy.FormatDuration(policy.MaxDuration))
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

// ScalarPos returns the file position (1-based line and column, counted
// in characters) of the byte at offset in scalar n's value, for errors
// inside a value: a CEL expression, a template. src is the whole file.
// Quoted values are decoded line by line (escapes, a doubled single quote),
// and literal (|) and folded (>) blocks are followed line by line.
func ScalarPos(src []byte, n *yaml.Node, offset int) (line, col int) {
	value := n.Value
	offset = min(max(offset, 0), len(value))
	lines := strings.SplitAfter(string(src), "\n")
	if n.Line < 1 || n.Line > len(lines) {
		return n.Line, n.Column
	}
	block := n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
	double := n.Style&yaml.DoubleQuotedStyle != 0
	quoted := double || n.Style&yaml.SingleQuotedStyle != 0
	first := n.Line - 1 // 0-based index of the first line holding value text
	if block {
		first = n.Line
	}
	// Each source line's text is found in the value in order; the line
	// whose text spans offset holds it.
	cur := 0
	end := len(strings.TrimRight(value, " \n"))
	for li := first; li < len(lines); li++ {
		raw := strings.TrimRight(lines[li], "\r\n")
		start := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if li == n.Line-1 && !block {
			start = byteIndexOfColumn(raw, n.Column)
			if quoted && start < len(raw) {
				start++ // the opening quote
			}
		}
		var text string
		var at []int // raw byte index of each byte of text
		closed := false
		if quoted {
			text, at, closed = decodeQuoted(raw, start, double)
		} else {
			text = raw[min(start, len(raw)):]
			at = make([]int, len(text))
			for k := range at {
				at[k] = start + k
			}
		}
		if strings.TrimSpace(text) != "" {
			idx := strings.Index(value[cur:], text)
			if idx < 0 && !block && !quoted {
				// A plain value on its key's line may run into the rest of
				// a flow mapping ({ until: x }): match what is there.
				t := text
				for len(t) > 0 && idx < 0 {
					t = t[:len(t)-1]
					idx = strings.Index(value[cur:], t)
				}
				text = t
			}
			if idx < 0 || text == "" {
				break
			}
			startInValue := cur + idx
			if offset < startInValue+len(text) || startInValue+len(text) >= end || closed || li == len(lines)-1 {
				within := min(max(offset-startInValue, 0), len(text))
				rawIdx := len(raw)
				if within < len(at) {
					rawIdx = at[within]
				} else if len(at) > 0 {
					rawIdx = at[len(at)-1] + 1
				}
				return li + 1, utf8.RuneCountInString(raw[:min(rawIdx, len(raw))]) + 1
			}
			cur = startInValue + len(text)
		}
		if closed || cur >= len(value) {
			break
		}
	}
	return n.Line, n.Column
}

// decodeQuoted decodes one line of a quoted scalar from raw[start:] up to
// its closing quote, and maps each decoded byte to the raw byte it came
// from.
func decodeQuoted(raw string, start int, double bool) (string, []int, bool) {
	var b []byte
	var at []int
	emit := func(s string, from int) {
		for k := 0; k < len(s); k++ {
			b = append(b, s[k])
			at = append(at, from)
		}
	}
	for i := start; i < len(raw); {
		c := raw[i]
		switch {
		case double && c == '"', !double && c == '\'' && (i+1 >= len(raw) || raw[i+1] != '\''):
			return string(b), at, true
		case !double && c == '\'':
			emit("'", i)
			i += 2
		case double && c == '\\' && i+1 < len(raw):
			esc := raw[i+1]
			width := 0
			switch esc {
			case 'x':
				width = 2
			case 'u':
				width = 4
			case 'U':
				width = 8
			}
			if width > 0 && i+2+width <= len(raw) {
				if r, err := strconv.ParseUint(raw[i+2:i+2+width], 16, 32); err == nil {
					emit(string(rune(r)), i)
					i += 2 + width
					continue
				}
			}
			switch esc {
			case 'n':
				emit("\n", i)
			case 't':
				emit("\t", i)
			case 'r':
				emit("\r", i)
			case '0':
				emit("\x00", i)
			default:
				emit(string(esc), i)
			}
			i += 2
		default:
			emit(raw[i:i+1], i)
			i++
		}
	}
	return string(b), at, false
}

// byteIndexOfColumn returns the byte index of the 1-based character
// column col in s.
func byteIndexOfColumn(s string, col int) int {
	i := 0
	for c := 1; c < col && i < len(s); c++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return i
}

// Suggest returns " (did you mean "x"?)" for the name closest to got, or
// "" when none is close.
func Suggest(got string, names []string) string { return suggestName(got, names) }
