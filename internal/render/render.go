// Package render turns a journey's message template into the words one
// customer receives: in their locale (with a fallback chain ending in en),
// with customer and event data, as text and HTML email parts or a push
// notification. HTML parts are escaped by html/template, so hostile customer
// data cannot inject markup.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/journey"
)

// FallbackLocale is the last locale tried; every template must have it.
const FallbackLocale = "en"

// Locales are the languages lojal writes messages in (day and month
// names, numbers, amounts): template files are named after them, nb.yaml,
// optionally with a region, en-GB.yaml.
var Locales = []string{"da", "en", "fi", "nb", "nn", "sv"}

var localeFileRE = regexp.MustCompile(`^([a-z]{2,3})(-[A-Za-z0-9]{2,8})?$`)

// CheckLocale says what is wrong with a template file's locale name, or
// "" when lojal writes that language.
func CheckLocale(locale string) string {
	m := localeFileRE.FindStringSubmatch(locale)
	if m != nil && slices.Contains(Locales, m[1]) {
		return ""
	}
	lang := strings.ToLower(locale)
	if m != nil {
		lang = m[1]
	}
	hint := journey.Suggest(lang, Locales)
	switch lang {
	case "se":
		hint = ` (Swedish is "sv"; se is the country code)`
	case "dk":
		hint = ` (Danish is "da"; dk is the country code)`
	case "no":
		hint = ` (Norwegian is "nb", Bokmål, or "nn", Nynorsk)`
	case "us", "uk", "gb":
		hint = ` (English is "en", or "en-GB" for a region)`
	}
	return fmt.Sprintf("%q is not a language lojal writes messages in%s; template files are named da, en, fi, nb, nn or sv, optionally with a region (en-GB)", locale, hint)
}

// related maps a language to the one a reader of it understands best when a
// template lacks it (Nynorsk and generic Norwegian readers get Bokmål).
var related = map[string]string{"nn": "nb", "no": "nb"}

// Chain returns the locales to try for a customer locale, most specific
// first: nb-NO -> nb -> en; nn -> nb -> en.
func Chain(locale string) []string {
	var out []string
	add := func(l string) {
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	l := strings.ToLower(locale)
	add(l)
	lang, _, _ := strings.Cut(l, "-")
	add(lang)
	if r, ok := related[lang]; ok {
		add(r)
	}
	add(FallbackLocale)
	return out
}

// Parts a template file may have: email uses subject, text and html; push
// uses title, body and url.
var partNames = []string{"subject", "text", "html", "title", "body", "url"}

// Template is one template in one locale.
type Template struct {
	Name   string
	Locale string
	File   string
	// Line and Col are where the file's content starts, for errors about
	// the file as a whole (a part it lacks).
	Line, Col int

	subject, text, title, body, url *template.Template
	html                            *htmltemplate.Template
	refs                            []Ref
	// source holds each part as written, for diffs and previews.
	source map[string]string
	// written holds the http(s) links the template's own text writes:
	// the only ones track_links rewrites (data is tracked only through
	// {{ track }}).
	written map[string]bool
}

// PartNames lists the parts a template file may have, in order.
func PartNames() []string { return slices.Clone(partNames) }

// Source returns a part as written, or "" when the file lacks it.
func (t *Template) Source(part string) string { return t.source[part] }

// MaxTemplateSize bounds a template file.
const MaxTemplateSize = 256 << 10

// Parse parses one template file (journeys/templates/<name>/<locale>.yaml).
// Its error is a journey.ErrorList: every mistake with its file:line:col.
func Parse(file, name, locale string, src []byte) (*Template, error) {
	if len(src) > MaxTemplateSize {
		return nil, journey.ErrorList{{File: file, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", len(src), MaxTemplateSize)}}
	}
	root, errs := journey.ParseYAML(file, src)
	if len(errs) > 0 {
		return nil, errs
	}
	t := &Template{Name: name, Locale: locale, File: file, Line: root.Line, Col: root.Column, source: map[string]string{}}
	errorf := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, journey.Error{File: file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
	}
	if root.Kind != yaml.MappingNode {
		errorf(root, "a template file must be a mapping of subject, text, html (email) or title, body, url (push)")
		return nil, errs
	}
	nodes := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case !slices.Contains(partNames, k.Value):
			errorf(k, "unknown field %q%s", k.Value, suggestField(k.Value))
		case nodes[k.Value] != nil:
			errorf(k, "duplicate field %q", k.Value)
		case v.Kind == yaml.MappingNode && strings.HasPrefix(rawAt(src, v), "{{"):
			errorf(v, "%s: a value that starts with {{ must be quoted in YAML: %s: \"{{ ... }}\" (or use a block: %s: |)", k.Value, k.Value, k.Value)
		case v.Kind != yaml.ScalarNode:
			errorf(v, "%s must be text, not %s", k.Value, kindName(v))
		default:
			nodes[k.Value] = v
		}
	}
	for _, part := range partNames {
		v := nodes[part]
		if v == nil || v.Value == "" {
			continue
		}
		t.source[part] = v.Value
		pos := func(off int) (int, int) { return journey.ScalarPos(src, v, off) }
		tree, perr := t.parsePart(part, v.Value)
		if perr != nil {
			line, col := templateErrorPos(v.Value, perr, pos)
			errs = append(errs, journey.Error{File: file, Line: line, Col: col, Msg: part + ": " + templateErrorMsg(perr)})
			continue
		}
		t.noteWritten(tree, part == "html")
		w := &refWalker{part: part, body: v.Value, pos: pos}
		w.list(tree, nil)
		t.refs = append(t.refs, w.refs...)
		for _, p := range w.problems {
			line, col := pos(min(int(p.node.Position()), len(v.Value)))
			errs = append(errs, journey.Error{File: file, Line: line, Col: col, Msg: part + ": " + p.msg})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

// parsePart parses one part and returns its tree.
func (t *Template) parsePart(part, body string) (*parse.ListNode, error) {
	if part == "html" {
		ht, err := htmltemplate.New(part).Option("missingkey=error").Funcs(htmltemplate.FuncMap(declaredFuncs)).Parse(body)
		if err != nil {
			return nil, err
		}
		// html/template checks its contexts (an attribute left open, a
		// tag cut in half) on the first execution: do it now, on a copy,
		// so the mistake is found at validation.
		c, err := ht.Clone()
		if err == nil {
			var herr *htmltemplate.Error
			if xerr := c.Execute(io.Discard, nil); errors.As(xerr, &herr) && herr.ErrorCode != htmltemplate.ErrorCode(0) {
				return nil, herr
			}
		}
		t.html = ht
		return ht.Tree.Root, nil
	}
	tt, err := template.New(part).Option("missingkey=error").Funcs(declaredFuncs).Parse(body)
	if err != nil {
		return nil, err
	}
	switch part {
	case "subject":
		t.subject = tt
	case "text":
		t.text = tt
	case "title":
		t.title = tt
	case "body":
		t.body = tt
	case "url":
		t.url = tt
	}
	return tt.Tree.Root, nil
}

func suggestField(got string) string {
	if s := journey.Suggest(got, partNames); s != "" {
		return s
	}
	return " (a template has subject, text and html for email, title, body and url for push)"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "something else"
}

// rawAt returns the source text at a node's position.
func rawAt(src []byte, n *yaml.Node) string {
	lines := strings.SplitAfter(string(src), "\n")
	if n.Line < 1 || n.Line > len(lines) {
		return ""
	}
	line := lines[n.Line-1]
	col := 0
	for i := range line {
		if col == n.Column-1 {
			return line[i:]
		}
		col++
	}
	return ""
}

var (
	templateErrRE = regexp.MustCompile(`^template: [^:]*:(\d+):(?:(\d+):)? (.*)$`)
	startedAtRE   = regexp.MustCompile(` started at [^:]*:(\d+)$`)
	htmlErrRE     = regexp.MustCompile(`^html/template:[^:]*:(\d+):(\d+:)? ?(.*)$`)
	quotedRE      = regexp.MustCompile(`"([^"]+)"`)
)

// templateErrorMsg is a parse error without Go's prefix, with a
// suggestion for an unknown function.
func templateErrorMsg(err error) string {
	msg := err.Error()
	var herr *htmltemplate.Error
	if errors.As(err, &herr) {
		return herr.Description
	}
	if m := templateErrRE.FindStringSubmatch(msg); m != nil {
		msg = m[3]
	}
	msg = startedAtRE.ReplaceAllString(msg, "")
	if strings.HasPrefix(msg, "function ") && strings.HasSuffix(msg, " not defined") {
		if m := quotedRE.FindStringSubmatch(msg); m != nil {
			if alias, ok := funcAliases[strings.ToLower(m[1])]; ok {
				msg += fmt.Sprintf(" (did you mean %q?)", alias)
			} else if s := journey.Suggest(m[1], funcNames()); s != "" {
				msg += s
			} else {
				msg += " (template functions: " + strings.Join(funcNames(), ", ") + ")"
			}
		}
	}
	if msg == "unclosed action" {
		msg += " (every {{ needs a }})"
	}
	return msg
}

// templateErrorPos finds the file position of a parse error: Go names the
// template line; the column is where the name in the message, or the
// action that is left open, is written on it.
func templateErrorPos(body string, err error, pos func(int) (int, int)) (int, int) {
	msg := err.Error()
	line, col := 1, 0
	var herr *htmltemplate.Error
	switch m := templateErrRE.FindStringSubmatch(msg); {
	case errors.As(err, &herr):
		line = max(herr.Line, 1)
	case m != nil:
		line, _ = strconv.Atoi(m[1])
		if s := startedAtRE.FindStringSubmatch(m[3]); s != nil {
			line, _ = strconv.Atoi(s[1])
		}
		msg = m[3]
	}
	lines := strings.SplitAfter(body, "\n")
	if line > len(lines) {
		line = len(lines)
	}
	start := 0
	for _, l := range lines[:line-1] {
		start += len(l)
	}
	text := strings.TrimRight(lines[line-1], "\n")
	col = strings.Index(text, "{{")
	switch {
	case strings.HasPrefix(msg, "unclosed") || strings.Contains(msg, "unexpected EOF"):
		col = strings.LastIndex(text, "{{")
	default:
		if q := quotedRE.FindStringSubmatch(msg); q != nil {
			if i := indexToken(text, q[1]); i >= 0 {
				col = i
			}
		}
	}
	return pos(start + max(col, 0))
}

// indexToken finds name in s as a whole word.
func indexToken(s, name string) int {
	for from := 0; ; {
		i := strings.Index(s[from:], name)
		if i < 0 {
			return -1
		}
		i += from
		before := i == 0 || !isWordByte(s[i-1])
		after := i+len(name) >= len(s) || !isWordByte(s[i+len(name)])
		if before && after {
			return i
		}
		from = i + 1
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// Missing returns the parts the template lacks for a channel (email:
// subject and text; push: title and body).
func (t *Template) Missing(channel string) []string {
	var missing []string
	switch channel {
	case "email":
		if t.subject == nil {
			missing = append(missing, "subject")
		}
		if t.text == nil {
			missing = append(missing, "text")
		}
	case "push":
		if t.title == nil {
			missing = append(missing, "title")
		}
		if t.body == nil {
			missing = append(missing, "body")
		}
	case "preferred":
		return append(t.Missing("email"), t.Missing("push")...)
	}
	return missing
}

// Supports reports what the template lacks for a channel, or nil.
func (t *Template) Supports(channel string) error {
	if channel != "email" && channel != "push" && channel != "preferred" {
		return fmt.Errorf("unknown channel %q", channel)
	}
	if missing := t.Missing(channel); len(missing) > 0 {
		return fmt.Errorf("%s: used for %s but has no %s", t.File, channel, strings.Join(missing, " or "))
	}
	if channel != "email" {
		if msg := t.PushTooLong(); msg != "" {
			return fmt.Errorf("%s: %s", t.File, msg)
		}
	}
	return nil
}

// PushTooLong reports a push template whose fixed text can never fit one
// push message, or "".
func (t *Template) PushTooLong() string {
	if n := t.fixedPushText(); n > MaxPushText {
		return fmt.Sprintf("title, body and url say %d bytes before any data is filled in; a push message carries "+
			"at most 3,993 bytes with its id and locale (RFC 8291), so at most %d here: shorten them", n, MaxPushText)
	}
	return ""
}

// MaxPushText bounds the fixed text of a push template's title, body and
// url together. One push message carries at most 3,993 bytes of JSON
// (RFC 8291 section 4), and its Message-ID, locale and the JSON around
// them take up to about 390: a template whose text is longer before any
// data goes in can never be sent whole, which is an authoring mistake
// validation reports. One that grows too large with its data is cut when
// sent (channel.FitPayload; docs/delivery.md).
const MaxPushText = 3600

// fixedPushText counts the bytes, as JSON strings, of the text a push
// message says whatever its data: text outside actions at the top level.
// Text inside if, range or with may not be rendered, so it is not counted.
func (t *Template) fixedPushText() int {
	n := 0
	for _, tt := range []*template.Template{t.title, t.body, t.url} {
		if tt == nil || tt.Tree == nil {
			continue
		}
		for _, node := range tt.Tree.Root.Nodes {
			if text, ok := node.(*parse.TextNode); ok {
				var b bytes.Buffer
				enc := json.NewEncoder(&b)
				enc.SetEscapeHTML(false) // as channel encodes payloads
				_ = enc.Encode(string(text.Text))
				n += b.Len() - 3 // the quotes and the newline
			}
		}
	}
	return n
}

// Set holds every template, by name and locale.
type Set struct {
	byName map[string]map[string]*Template
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{byName: map[string]map[string]*Template{}} }

// Add adds a parsed template.
func (s *Set) Add(t *Template) {
	if s.byName[t.Name] == nil {
		s.byName[t.Name] = map[string]*Template{}
	}
	// Locales are kept in lower case, as Chain writes them: en-GB.yaml
	// serves a customer whose locale is en-gb.
	s.byName[t.Name][strings.ToLower(t.Locale)] = t
}

// Names returns the template names in order.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.byName)) }

// Locales returns the locales a template has, in order.
func (s *Set) Locales(name string) []string { return slices.Sorted(maps.Keys(s.byName[name])) }

// Get returns one template in one locale.
func (s *Set) Get(name, locale string) (*Template, bool) {
	t, ok := s.byName[name][strings.ToLower(locale)]
	return t, ok
}

// Resolve picks the template for a customer's locale through the fallback
// chain.
func (s *Set) Resolve(name, locale string) (*Template, error) {
	byLocale, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("no template %q", name)
	}
	for _, l := range Chain(locale) {
		if t, ok := byLocale[l]; ok {
			return t, nil
		}
	}
	return nil, fmt.Errorf("template %q has no locale in %v", name, Chain(locale))
}

// Links are the per-message links templates may show.
type Links struct {
	Unsubscribe string
	Preferences string
	// Answer returns the signed one-click answer link of one answer to
	// one question for this customer ({{ answer "checkin" "more-help" }});
	// nil renders previews with inert links.
	Answer func(survey, answer string) string
	// Track returns the signed redirect link (links.Signer.ClickURL) to a
	// destination in this message, for {{ track "https://..." }}; nil
	// renders previews with the destination as written.
	Track func(dest string) (string, error)
	// TrackAll (policy.yaml track_links: true) sends every http(s) link
	// in the text, the HTML's <a href> and a push url through Track, not
	// only those the template wraps in track.
	TrackAll bool
}

// Data is what templates see.
type Data struct {
	Customer map[string]any
	Event    map[string]any
	// Received holds the events wait_for steps got, by received name
	// (.Received.survey_answered.answer).
	Received map[string]any
	Links    Links
	// Location is the customer's time zone; dates print in it.
	Location *time.Location
}

// Message is a rendered message.
type Message struct {
	Template string `json:"template"`
	Locale   string `json:"locale"`
	Subject  string `json:"subject,omitempty"`
	Text     string `json:"text,omitempty"`
	HTML     string `json:"html,omitempty"`
	Title    string `json:"title,omitempty"`
	Body     string `json:"body,omitempty"`
	URL      string `json:"url,omitempty"`
}

// ErrRender marks failures that retrying cannot fix: a missing customer
// attribute, a template error.
var ErrRender = errors.New("render")

// Render renders template name for one customer on one channel (email or
// push).
func (s *Set) Render(name, channel, locale string, data Data) (Message, error) {
	t, err := s.Resolve(name, locale)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrRender, err)
	}
	if err := t.Supports(channel); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrRender, err)
	}
	return t.Render(channel, data)
}

// Render renders the template.
func (t *Template) Render(channel string, data Data) (Message, error) {
	if data.Location == nil {
		data.Location = time.UTC
	}
	data, err := t.prepare(data)
	if err != nil {
		return Message{Template: t.Name, Locale: t.Locale}, err
	}
	m := Message{Template: t.Name, Locale: t.Locale}
	l := &localizer{locale: t.Locale, loc: data.Location, answerURL: data.Links.Answer, trackURL: data.Links.Track, written: t.written}
	l.mine(data.Links.Unsubscribe)
	l.mine(data.Links.Preferences)
	trackAll := data.Links.TrackAll && data.Links.Track != nil
	exec := func(tt *template.Template, into *string) error {
		if tt == nil {
			return nil
		}
		var b strings.Builder
		c, err := tt.Clone()
		if err != nil {
			return err
		}
		if err := c.Funcs(l.funcs()).Execute(&b, data); err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrRender, t.File, tt.Name(), cleanExecErr(err))
		}
		*into = strings.TrimSpace(b.String())
		return nil
	}
	switch channel {
	case "email":
		err = errors.Join(exec(t.subject, &m.Subject), exec(t.text, &m.Text))
		if trackAll {
			m.Text = l.trackText(m.Text)
		}
		if err == nil && t.html != nil {
			c, cerr := t.html.Clone()
			if cerr != nil {
				return m, cerr
			}
			var b strings.Builder
			if herr := c.Funcs(htmltemplate.FuncMap(l.funcs())).Execute(&b, data); herr != nil {
				err = fmt.Errorf("%w: %s html: %v", ErrRender, t.File, cleanExecErr(herr))
			}
			m.HTML = b.String()
			if trackAll {
				m.HTML = l.trackHTML(m.HTML)
			}
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			m.Subject = strings.Join(strings.Fields(m.Subject), " ")
		}
		if err == nil {
			t.finishEmail(&m, data.Links)
		}
	case "push":
		err = errors.Join(exec(t.title, &m.Title), exec(t.body, &m.Body), exec(t.url, &m.URL))
		if trackAll && m.URL != "" {
			m.URL = l.retrack(m.URL)
		}
	default:
		err = fmt.Errorf("%w: unknown channel %q", ErrRender, channel)
	}
	return m, err
}

// prepare checks that every value the template reads unguarded is there
// (a missing one is an error, never "<no value>" in a customer's inbox)
// and gives the values it only tests (if, with, default) an empty entry
// when they are missing, so the test says "not there".
func (t *Template) prepare(data Data) (Data, error) {
	roots := map[string]map[string]any{"Customer": data.Customer, "Event": data.Event, "Received": data.Received}
	copied := map[string]bool{}
	for _, r := range t.refs {
		parts := strings.Split(r.Path, ".")
		m, ok := roots[parts[0]]
		if !ok || len(parts) < 2 {
			continue
		}
		k := firstMissing(m, parts[1:])
		if k < 0 {
			continue
		}
		missing := strings.Join(parts[:k+2], ".")
		if !(r.Test && missing == r.Path) && !slices.Contains(r.Known, missing) {
			return data, fmt.Errorf("%w: %s %s: missing value .%s", ErrRender, t.File, r.Part, missing)
		}
		if !copied[parts[0]] {
			m = maps.Clone(m)
			if m == nil {
				m = map[string]any{}
			}
			roots[parts[0]], copied[parts[0]] = m, true
		}
		for _, p := range parts[1 : k+1] {
			// Maps below the root are the caller's: copy them on the way
			// down before writing.
			next := maps.Clone(m[p].(map[string]any))
			m[p] = next
			m = next
		}
		m[parts[k+1]] = nil
	}
	data.Customer, data.Event, data.Received = roots["Customer"], roots["Event"], roots["Received"]
	return data, nil
}

// firstMissing returns the index in path of the first value that is not
// there, or -1.
func firstMissing(m map[string]any, path []string) int {
	for i, p := range path {
		v, ok := m[p]
		if !ok || v == nil {
			return i
		}
		if i == len(path)-1 {
			return -1
		}
		next, isMap := v.(map[string]any)
		if !isMap {
			return -1
		}
		m = next
	}
	return -1
}

func cleanExecErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "map has no entry for key "); i >= 0 {
		return "missing value " + strings.TrimPrefix(msg[i:], "map has no entry for key ")
	}
	return msg
}

// Ref is one use of data in a template, with where it is written.
type Ref struct {
	// Path is the field path without the leading dot:
	// "Customer.first_name", "Received.survey_answered.comment".
	Path string
	// Part is the part it is in (subject, text, html, ...).
	Part string
	// Line and Col are where the path's leading dot is in the file; see
	// ColOf for the names in it.
	Line, Col int
	// Test is true when the template only tests the value (if, with,
	// and/or/not inside a test, the value of default): a missing value is
	// fine there.
	Test bool
	// Known holds the paths guards around the ref (if, with) show to be
	// present.
	Known []string
}

// ColOf returns the column of the k-th name in the path (0 is the root:
// Customer, Event, Received).
func (r Ref) ColOf(k int) int {
	col := r.Col + 1
	for _, name := range strings.Split(r.Path, ".")[:k] {
		col += utf8.RuneCountInString(name) + 1
	}
	return col
}

// Refs lists every use of data in the template, in the order written.
// Fields inside range and with blocks are left out: dot means something
// else there.
func (t *Template) Refs() []Ref { return t.refs }

// refWalker collects refs from a parse tree, following which values the
// guards around each one show to be present, and what dot is inside with
// and range.
type refWalker struct {
	part string
	body string
	pos  func(offset int) (line, col int)
	refs []Ref
	// dot is the path dot stands for ("" at the root); unknownDot, that
	// it stands for something no path names (a range's element, a
	// with's computed value): a field of it cannot be checked.
	dot        []string
	unknownDot bool
	// problems are constructs the walker refuses, at their node.
	problems []walkProblem
}

type walkProblem struct {
	node parse.Node
	msg  string
}

// within walks l with dot standing for the value of pipe p.
func (w *refWalker) within(p *parse.PipeNode, l *parse.ListNode, known []string) {
	dot, unknown := w.dot, w.unknownDot
	var inner []string
	if p != nil && len(p.Cmds) == 1 {
		// {{ with $x := .A }} sets dot to .A too.
		inner = w.path(p.Cmds[0])
	}
	w.dot, w.unknownDot = inner, inner == nil
	w.list(l, known)
	w.dot, w.unknownDot = dot, unknown
}

// path returns the path a command reads, as a field or as index of a field
// with a literal key, or nil.
func (w *refWalker) path(c *parse.CommandNode) []string {
	switch fn := funcName(c); {
	case fn == "" && len(c.Args) == 1:
		switch a := c.Args[0].(type) {
		case *parse.DotNode:
			return w.resolve(nil)
		case *parse.FieldNode:
			return w.resolve(a.Ident)
		case *parse.VariableNode:
			if len(a.Ident) > 1 && a.Ident[0] == "$" {
				return a.Ident[1:]
			}
		}
	case fn == "index":
		key, ok := literalKey(c)
		if !ok {
			return nil
		}
		base := w.path(&parse.CommandNode{Args: c.Args[1:2]})
		if base == nil {
			return nil
		}
		return append(slices.Clone(base), key)
	}
	return nil
}

// guards resolves the paths guards test (fieldPath) to paths from the
// root; a field of an unknown dot guards nothing that can be named.
func (w *refWalker) guards(paths []string) []string {
	var out []string
	for _, p := range paths {
		rel, ok := strings.CutPrefix(p, ".")
		rel = strings.TrimPrefix(rel, ".") // "..x": index . "x"
		switch {
		case !ok:
			out = append(out, p)
		case !w.unknownDot && rel == "":
			out = append(out, strings.Join(w.dot, "."))
		case !w.unknownDot:
			out = append(out, strings.Join(w.resolve(strings.Split(rel, ".")), "."))
		}
	}
	return out
}

// resolve turns a field of dot into its path from the root, nil when dot
// stands for something unknown.
func (w *refWalker) resolve(ident []string) []string {
	if w.unknownDot {
		return nil
	}
	return append(slices.Clone(w.dot), ident...)
}

func (w *refWalker) add(n parse.Node, ident []string, test bool, known []string) {
	if len(ident) == 0 {
		return
	}
	// The parser places a field somewhere inside its path; the path
	// starts at the first dot of the run of names around there.
	off := min(int(n.Position()), len(w.body))
	for off > 0 && (isWordByte(w.body[off-1]) || w.body[off-1] == '.' || w.body[off-1] == '$') {
		off--
	}
	if off < len(w.body) && w.body[off] == '$' {
		off++
	}
	w.refs = append(w.refs, w.refAt(off, ident, test, known))
}

// ref is a Ref to path at node n (index and the like, not a run of names).
func (w *refWalker) ref(n parse.Node, path []string, test bool, known []string) Ref {
	return w.refAt(min(int(n.Position()), len(w.body)), path, test, known)
}

func (w *refWalker) refAt(off int, path []string, test bool, known []string) Ref {
	line, col := w.pos(off)
	return Ref{Path: strings.Join(path, "."), Part: w.part, Line: line, Col: col, Test: test, Known: known}
}

func (w *refWalker) list(l *parse.ListNode, known []string) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		w.node(n, known)
	}
}

func (w *refWalker) node(n parse.Node, known []string) {
	switch n := n.(type) {
	case *parse.ActionNode:
		w.pipe(n.Pipe, false, known)
	case *parse.IfNode:
		w.pipe(n.Pipe, true, known)
		w.list(n.List, union(known, w.guards(whenTrue(n.Pipe))))
		w.list(n.ElseList, union(known, w.guards(whenFalse(n.Pipe))))
	case *parse.WithNode:
		w.pipe(n.Pipe, true, known)
		w.within(n.Pipe, n.List, union(known, w.guards(whenTrue(n.Pipe))))
		w.list(n.ElseList, known)
	case *parse.RangeNode:
		w.pipe(n.Pipe, false, known)
		w.within(nil, n.List, known)
		w.list(n.ElseList, known)
	case *parse.TemplateNode:
		w.problems = append(w.problems, walkProblem{n, "{{ define }}, {{ block }} and {{ template }} are not supported: " +
			"validation cannot follow what they read; write the text where it is used"})
	case *parse.ListNode:
		w.list(n, known)
	}
}

// pipe walks a pipeline; test says it is the condition of an if or with.
func (w *refWalker) pipe(p *parse.PipeNode, test bool, known []string) {
	if p == nil {
		return
	}
	for i, c := range p.Cmds {
		// {{ .Customer.x | default "y" }}: the value piped into default
		// is only tested.
		piped := i+1 < len(p.Cmds) && funcName(p.Cmds[i+1]) == "default"
		w.cmd(c, test && len(p.Cmds) == 1 || piped, known)
	}
}

// cmd walks one command; test says a bare field in it is only tested.
func (w *refWalker) cmd(c *parse.CommandNode, test bool, known []string) {
	fn := funcName(c)
	if fn == "index" {
		// index .Customer "x" reads .Customer.x.
		if p := w.path(c); p != nil {
			w.refs = append(w.refs, w.ref(c.Args[1], p, test, known))
			return
		}
	}
	for i, a := range c.Args {
		argTest := false
		switch {
		case fn == "":
			argTest = test
		case fn == "and" || fn == "or" || fn == "not":
			argTest = test && i > 0
		case fn == "default":
			argTest = i == len(c.Args)-1 && i > 1
		}
		w.arg(a, argTest, known)
	}
}

func (w *refWalker) arg(a parse.Node, test bool, known []string) {
	switch a := a.(type) {
	case *parse.FieldNode:
		if w.unknownDot {
			w.problems = append(w.problems, walkProblem{a, fmt.Sprintf("{{ .%s }}: inside this range or with, dot is a value that has no fields; "+
				"read the customer's or event's data from the root: {{ $.Customer.… }}", strings.Join(a.Ident, "."))})
			return
		}
		w.add(a, w.resolve(a.Ident), test, known)
	case *parse.VariableNode:
		if len(a.Ident) > 1 && a.Ident[0] == "$" {
			w.add(a, a.Ident[1:], test, known)
		}
	case *parse.ChainNode:
		w.arg(a.Node, false, known)
	case *parse.PipeNode:
		w.pipe(a, test, known)
	}
}

func funcName(c *parse.CommandNode) string {
	if len(c.Args) == 0 {
		return ""
	}
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		return id.Ident
	}
	return ""
}

// whenTrue returns the paths a condition shows to be present when it
// holds: {{ if .Customer.x }}, {{ if and .a .b }}, {{ if not .a }} (else).
func whenTrue(p *parse.PipeNode) []string {
	// {{ with $x := .A }} tests .A as {{ with .A }} does.
	if p == nil || len(p.Cmds) != 1 {
		return nil
	}
	c := p.Cmds[0]
	args := c.Args
	switch funcName(c) {
	case "":
		if len(args) == 1 {
			return fieldPath(args[0])
		}
	case "index":
		// index .Customer "x" tests .Customer.x.
		if key, ok := literalKey(c); ok {
			if base := fieldPath(args[1]); len(base) == 1 {
				return []string{base[0] + "." + key}
			}
		}
	case "and":
		var out []string
		for _, a := range args[1:] {
			out = union(out, argTrue(a))
		}
		return out
	case "or":
		var out []string
		for i, a := range args[1:] {
			if i == 0 {
				out = argTrue(a)
			} else {
				out = intersect(out, argTrue(a))
			}
		}
		return out
	case "not":
		if len(args) == 2 {
			return argFalse(args[1])
		}
	}
	return nil
}

// whenFalse returns the paths a condition shows to be present when it
// does not hold.
func whenFalse(p *parse.PipeNode) []string {
	if p == nil || len(p.Cmds) != 1 || len(p.Decl) > 0 {
		return nil
	}
	c := p.Cmds[0]
	args := c.Args
	switch funcName(c) {
	case "not":
		if len(args) == 2 {
			return argTrue(args[1])
		}
	case "or":
		var out []string
		for _, a := range args[1:] {
			out = union(out, argFalse(a))
		}
		return out
	}
	return nil
}

func argTrue(a parse.Node) []string {
	if p, ok := a.(*parse.PipeNode); ok {
		return whenTrue(p)
	}
	return fieldPath(a)
}

func argFalse(a parse.Node) []string {
	if p, ok := a.(*parse.PipeNode); ok {
		return whenFalse(p)
	}
	return nil
}

// literalKey returns the key of index X "key".
func literalKey(c *parse.CommandNode) (string, bool) {
	if len(c.Args) != 3 {
		return "", false
	}
	k, ok := c.Args[2].(*parse.StringNode)
	if !ok {
		return "", false
	}
	return k.Text, true
}

// fieldPath returns the path a guard tests: a field of dot as ".a.b"
// (refWalker.guards resolves it; dot itself is "."), a field of the root
// ($) as "A.b".
func fieldPath(a parse.Node) []string {
	switch a := a.(type) {
	case *parse.DotNode:
		return []string{"."}
	case *parse.FieldNode:
		return []string{"." + strings.Join(a.Ident, ".")}
	case *parse.VariableNode:
		if len(a.Ident) > 1 && a.Ident[0] == "$" {
			return []string{strings.Join(a.Ident[1:], ".")}
		}
	}
	return nil
}

func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
