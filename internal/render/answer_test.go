package render

import (
	"strings"
	"testing"
)

func TestAnswerLinks(t *testing.T) {
	t.Parallel()
	src := []byte("subject: Hi\ntext: |\n  Yes: {{ answer \"checkin\" \"more-help\" }}\nhtml: |\n  <a href=\"{{ answer \"checkin\" \"fine\" }}\">Fine</a>\n")
	tmpl, err := Parse("checkin/en.yaml", "checkin", "en", src)
	if err != nil {
		t.Fatal(err)
	}
	data := Data{Customer: map[string]any{}, Links: Links{Answer: func(s, a string) string { return "https://lojal.test/a/" + s + "." + a + "?x=1&y=2" }}}
	m, err := tmpl.Render("email", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "Yes: https://lojal.test/a/checkin.more-help?x=1&y=2") {
		t.Errorf("text %q", m.Text)
	}
	if !strings.Contains(m.HTML, `href="https://lojal.test/a/checkin.fine?x=1&amp;y=2"`) {
		t.Errorf("html %q", m.HTML)
	}
	// Previews without a signer get inert links; bad names are errors.
	if m, err := tmpl.Render("email", Data{Customer: map[string]any{}}); err != nil || !strings.Contains(m.Text, "#answer-checkin-more-help") {
		t.Errorf("preview: %q %v", m.Text, err)
	}
	bad, err := Parse("x/en.yaml", "x", "en", []byte("subject: Hi\ntext: '{{ answer \"Check In\" \"x\" }}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Render("email", data); err == nil || !strings.Contains(err.Error(), "lower-case letters") {
		t.Errorf("bad question name: %v", err)
	}
}
