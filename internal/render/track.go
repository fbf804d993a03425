package render

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template/parse"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/lojal/lojal/internal/links"
)

// Tracked links (docs/journeys.md, "Tracked links"): a link goes through
// lojal's signed redirect (/k/) only where the template says so, with
// {{ track "https://..." }}, or where policy.yaml says track_links: true,
// which rewrites every http(s) link in the text, the HTML's <a href> and a
// push message's url. Nothing else is ever rewritten: not images (lojal
// sends no tracking pixels), not mailto: or tel:, not lojal's own links.

// track renders the tracked link to dest for this message:
// {{ track "https://shop.example/offer" }} or {{ track .Event.url }}. A
// destination that is not an http(s) address is an error, also in
// previews, where the link is shown as written.
func (l *localizer) track(v any) (string, error) {
	dest, err := text("track", v)
	if err != nil {
		return "", err
	}
	if err := links.CheckDestination(dest); err != nil {
		return "", fmt.Errorf("track: %w", err)
	}
	if l.trackURL == nil {
		return dest, nil
	}
	u, err := l.trackURL(dest)
	if err != nil {
		return "", fmt.Errorf("track: %w", err)
	}
	l.mine(u)
	return u, nil
}

// mine notes a link lojal made for this message (tracked, answer,
// preference, unsubscribe): track_links leaves it as it is.
func (l *localizer) mine(u string) {
	if u == "" {
		return
	}
	if l.own == nil {
		l.own = map[string]bool{}
	}
	l.own[u] = true
}

// retrack returns the tracked link for a link track_links rewrites, or
// the link as written: lojal's own, not http(s), or one that cannot be
// tracked (too long).
func (l *localizer) retrack(u string) string {
	if l.own[u] || !l.written[u] || links.CheckDestination(u) != nil {
		return u
	}
	t, err := l.trackURL(u)
	if err != nil {
		return u
	}
	l.mine(t)
	return t
}

var textURLRE = regexp.MustCompile(`(?i)https?://[^\s<>"]+`)

// noteWritten records the http(s) links in a part's own text (not in
// what its actions print): track_links rewrites these only. A link in
// HTML is also noted unescaped, as the rendered href is read.
func (t *Template) noteWritten(l *parse.ListNode, isHTML bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			text := string(n.Text)
			if t.written == nil {
				t.written = map[string]bool{}
			}
			note := func(u string) {
				t.written[u] = true
				if isHTML {
					t.written[html.UnescapeString(u)] = true
				}
			}
			for _, loc := range textURLRE.FindAllStringIndex(text, -1) {
				// Whole (an href, a push url), and as trackText cuts it
				// in running text (no full stop or bracket after it).
				u := text[loc[0]:loc[1]]
				note(strings.TrimRight(u, "'"))
				for u != "" && strings.ContainsRune(".,;:!?)]»”'", rune(u[len(u)-1])) {
					u = u[:len(u)-1]
				}
				note(u)
			}
		case *parse.IfNode:
			t.noteWritten(n.List, isHTML)
			t.noteWritten(n.ElseList, isHTML)
		case *parse.WithNode:
			t.noteWritten(n.List, isHTML)
			t.noteWritten(n.ElseList, isHTML)
		case *parse.RangeNode:
			t.noteWritten(n.List, isHTML)
			t.noteWritten(n.ElseList, isHTML)
		case *parse.ListNode:
			t.noteWritten(n, isHTML)
		}
	}
}

// trackText rewrites every http(s) address in plain text. As in
// TextToHTML, a full stop, comma or closing bracket right after an
// address is not part of it.
func (l *localizer) trackText(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range textURLRE.FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		for end > start && strings.ContainsRune(".,;:!?)]»”'", rune(s[end-1])) {
			end--
		}
		b.WriteString(s[last:start])
		b.WriteString(l.retrack(s[start:end]))
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// trackHTML rewrites the href of every <a> in rendered HTML. Everything
// else is copied byte for byte.
func (l *localizer) trackHTML(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				// The tokenizer gave up (it does not on input that
				// html/template wrote): leave the rest as it is.
				return s
			}
			return b.String()
		}
		raw := string(z.Raw()) // before Token, which unescapes in place
		if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
			tok := z.Token()
			if tok.DataAtom == atom.A {
				changed := false
				for i, a := range tok.Attr {
					if a.Namespace == "" && strings.EqualFold(a.Key, "href") {
						if u := l.retrack(a.Val); u != a.Val {
							tok.Attr[i].Val, changed = u, true
						}
					}
				}
				if changed {
					b.WriteString(tok.String())
					continue
				}
			}
		}
		b.WriteString(raw)
	}
}
