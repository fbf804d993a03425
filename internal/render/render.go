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
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"go.yaml.in/yaml/v3"
)

// FallbackLocale is the last locale tried; every template must have it.
const FallbackLocale = "en"

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

// Template is one template in one locale.
type Template struct {
	Name   string
	Locale string
	File   string

	subject, text, title, body, url *template.Template
	html                            *htmltemplate.Template
}

// source is a template file's fields.
type source struct {
	Subject string `yaml:"subject"`
	Text    string `yaml:"text"`
	HTML    string `yaml:"html"`
	Title   string `yaml:"title"`
	Body    string `yaml:"body"`
	URL     string `yaml:"url"`
}

// MaxTemplateSize bounds a template file.
const MaxTemplateSize = 256 << 10

// Parse parses one template file (journeys/templates/<name>/<locale>.yaml).
func Parse(file, name, locale string, src []byte) (*Template, error) {
	if len(src) > MaxTemplateSize {
		return nil, fmt.Errorf("%s: file is %d bytes; the limit is %d", file, len(src), MaxTemplateSize)
	}
	var s source
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: file is empty", file)
		}
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	t := &Template{Name: name, Locale: locale, File: file}
	var errs []error
	text := func(field, body string) *template.Template {
		if body == "" {
			return nil
		}
		tt, err := template.New(field).Option("missingkey=error").Funcs(textFuncs).Parse(body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %v", file, field, err))
		}
		return tt
	}
	t.subject, t.text = text("subject", s.Subject), text("text", s.Text)
	t.title, t.body, t.url = text("title", s.Title), text("body", s.Body), text("url", s.URL)
	if s.HTML != "" {
		ht, err := htmltemplate.New("html").Option("missingkey=error").Funcs(htmlFuncs).Parse(s.HTML)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: html: %v", file, err))
		}
		t.html = ht
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Supports reports what the template lacks for a channel, or nil.
func (t *Template) Supports(channel string) error {
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
		if n := t.fixedPushText(); n > MaxPushText {
			return fmt.Errorf("%s: title, body and url say %d bytes before any data is filled in; a push message carries "+
				"at most 3,993 bytes with its id and locale (RFC 8291), so at most %d here: shorten them", t.File, n, MaxPushText)
		}
	case "preferred":
		if err := t.Supports("email"); err != nil {
			return err
		}
		return t.Supports("push")
	default:
		return fmt.Errorf("unknown channel %q", channel)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: used for %s but has no %s", t.File, channel, strings.Join(missing, " or "))
	}
	return nil
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
	s.byName[t.Name][t.Locale] = t
}

// Names returns the template names in order.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.byName)) }

// Locales returns the locales a template has, in order.
func (s *Set) Locales(name string) []string { return slices.Sorted(maps.Keys(s.byName[name])) }

// Get returns one template in one locale.
func (s *Set) Get(name, locale string) (*Template, bool) {
	t, ok := s.byName[name][locale]
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
}

// Data is what templates see.
type Data struct {
	Customer map[string]any
	Event    map[string]any
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
	m := Message{Template: t.Name, Locale: t.Locale}
	l := &localizer{locale: t.Locale, loc: data.Location}
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
	var err error
	switch channel {
	case "email":
		err = errors.Join(exec(t.subject, &m.Subject), exec(t.text, &m.Text))
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
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			m.Subject = strings.Join(strings.Fields(m.Subject), " ")
		}
	case "push":
		err = errors.Join(exec(t.title, &m.Title), exec(t.body, &m.Body), exec(t.url, &m.URL))
	default:
		err = fmt.Errorf("%w: unknown channel %q", ErrRender, channel)
	}
	return m, err
}

func cleanExecErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "map has no entry for key "); i >= 0 {
		return "missing value " + strings.TrimPrefix(msg[i:], "map has no entry for key ")
	}
	return msg
}

// Refs lists the data fields a template refers to, as paths such as
// "Customer.first_name", so validation can check them against the schema.
// Fields inside range and with blocks are skipped: dot means something
// else there.
func (t *Template) Refs() []string {
	seen := map[string]bool{}
	for _, tt := range []*template.Template{t.subject, t.text, t.title, t.body, t.url} {
		if tt != nil {
			collectRefs(tt.Tree.Root, seen)
		}
	}
	if t.html != nil {
		for _, ht := range t.html.Templates() {
			if ht.Tree != nil {
				collectRefs(ht.Tree.Root, seen)
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func collectRefs(n parse.Node, seen map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectRefs(c, seen)
		}
	case *parse.ActionNode:
		collectRefs(n.Pipe, seen)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectRefs(c, seen)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			collectRefs(a, seen)
		}
	case *parse.FieldNode:
		if len(n.Ident) >= 2 {
			seen[n.Ident[0]+"."+n.Ident[1]] = true
		} else if len(n.Ident) == 1 {
			seen[n.Ident[0]] = true
		}
	case *parse.ChainNode:
		collectRefs(n.Node, seen)
	case *parse.IfNode:
		collectRefs(n.Pipe, seen)
		collectRefs(n.List, seen)
		collectRefs(n.ElseList, seen)
	case *parse.RangeNode:
		collectRefs(n.Pipe, seen)
		collectRefs(n.ElseList, seen)
	case *parse.WithNode:
		collectRefs(n.Pipe, seen)
		collectRefs(n.ElseList, seen)
	}
}
