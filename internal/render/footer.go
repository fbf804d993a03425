package render

import (
	"html"
	"regexp"
	"strings"
)

// preferenceLine is the words before the preference link lojal adds to an
// email whose template does not show the link itself, by language.
var preferenceLine = map[string]string{
	"da": "Ændr, hvad vi sender dig",
	"en": "Change what we send you",
	"fi": "Muuta, mitä lähetämme sinulle",
	"nb": "Endre hva vi sender deg",
	"nn": "Endre kva vi sender deg",
	"sv": "Ändra vad vi skickar till dig",
}

func preferenceWords(locale string) string {
	lang, _, _ := strings.Cut(strings.ToLower(locale), "-")
	if s, ok := preferenceLine[lang]; ok {
		return s
	}
	return preferenceLine[FallbackLocale]
}

// showsPreferences reports whether a part of the template writes
// .Links.Preferences itself.
func (t *Template) showsPreferences(part string) bool {
	for _, r := range t.refs {
		if r.Part == part && r.Path == "Links.Preferences" {
			return true
		}
	}
	return false
}

// finishEmail gives every email the preference link in its body (the
// List-Unsubscribe header is not enough: many mail programs hide it) and
// an HTML part: the template's own, or one made from the text.
func (t *Template) finishEmail(m *Message, links Links) {
	words := preferenceWords(t.Locale)
	if links.Preferences != "" && !t.showsPreferences("text") {
		m.Text += "\n\n" + words + ": " + links.Preferences
	}
	if t.html == nil {
		m.HTML = TextToHTML(m.Text)
		return
	}
	if links.Preferences != "" && !t.showsPreferences("html") {
		m.HTML = strings.TrimRight(m.HTML, "\n") + "\n" + `<p><small><a href="` + html.EscapeString(links.Preferences) + `">` +
			html.EscapeString(words) + "</a></small></p>\n"
	}
}

var urlRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// TextToHTML is the HTML part of an email whose template has none: the
// text, escaped, with a paragraph per block of lines separated by a blank
// line, a line break per single newline, and every http(s) address a link
// (a full stop, comma or closing bracket right after an address is left
// out of it).
func TextToHTML(text string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		para = strings.Trim(para, "\n")
		if strings.TrimSpace(para) == "" {
			continue
		}
		b.WriteString("<p>")
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				b.WriteString("<br>\n")
			}
			b.WriteString(linkify(line))
		}
		b.WriteString("</p>\n")
	}
	return b.String()
}

func linkify(line string) string {
	var b strings.Builder
	last := 0
	for _, loc := range urlRE.FindAllStringIndex(line, -1) {
		start, end := loc[0], loc[1]
		for end > start && strings.ContainsRune(".,;:!?)]»”'", rune(line[end-1])) {
			end--
		}
		u := html.EscapeString(line[start:end])
		b.WriteString(html.EscapeString(line[last:start]))
		b.WriteString(`<a href="` + u + `">` + u + `</a>`)
		last = end
	}
	b.WriteString(html.EscapeString(line[last:]))
	return b.String()
}
