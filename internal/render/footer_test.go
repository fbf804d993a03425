package render

import (
	"strings"
	"testing"
)

// TestEveryEmailHasHTMLAndThePreferenceLink: a template with only a text
// part gets an HTML part made from the text, and every email body carries
// the preference link, in the template's language, unless the template
// shows it itself.
func TestEveryEmailHasHTMLAndThePreferenceLink(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{
		"nb.yaml": "subject: Hei\ntext: |\n  Hei {{ .Customer.first_name }},\n\n  Første linje\n  andre linje på https://lojal.example/a?b=1&c=2.\n",
		"en.yaml": "subject: Hi\ntext: \"Hi\\n\\nChange what we send you: {{ .Links.Preferences }}\"\nhtml: \"<p>Hi</p>\"\n",
	})
	data := Data{Customer: map[string]any{"first_name": "Kari <b>"}, Links: Links{Preferences: "https://lojal.example/p/tok", Unsubscribe: "https://lojal.example/u/tok"}}
	m, err := s.Render("greet", "email", "nb", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(m.Text, "Endre hva vi sender deg: https://lojal.example/p/tok") {
		t.Errorf("text lacks the Norwegian preference line:\n%s", m.Text)
	}
	for _, want := range []string{
		"<p>Hei Kari &lt;b&gt;,</p>",
		"<p>Første linje<br>\nandre linje på <a href=\"https://lojal.example/a?b=1&amp;c=2\">https://lojal.example/a?b=1&amp;c=2</a>.</p>",
		`<a href="https://lojal.example/p/tok">https://lojal.example/p/tok</a>`,
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("generated html lacks %q:\n%s", want, m.HTML)
		}
	}
	// The template shows the link in its text: no second one there; its
	// own html part lacks it, so the html gets the footer.
	m, err = s.Render("greet", "email", "en", data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(m.Text, "https://lojal.example/p/tok") != 1 {
		t.Errorf("text shows the link %d times:\n%s", strings.Count(m.Text, "/p/tok"), m.Text)
	}
	if !strings.Contains(m.HTML, `<p>Hi</p>`) || !strings.Contains(m.HTML, `<a href="https://lojal.example/p/tok">Change what we send you</a>`) {
		t.Errorf("html lacks the footer link:\n%s", m.HTML)
	}
	// Without links (a preview with no signer) nothing is added.
	m, err = s.Render("greet", "email", "nb", Data{Customer: map[string]any{"first_name": "Kari"}})
	if err != nil || strings.Contains(m.Text, "Endre") || m.HTML == "" {
		t.Errorf("no links: %v\n%s\n%s", err, m.Text, m.HTML)
	}
	// Push is left alone.
	p := set(t, map[string]string{"en.yaml": "title: Hi\nbody: there\n"})
	pm, err := p.Render("greet", "push", "en", data)
	if err != nil || pm.Body != "there" || pm.HTML != "" {
		t.Errorf("push: %v %+v", err, pm)
	}
}

func TestPreferenceLineInEveryLanguage(t *testing.T) {
	t.Parallel()
	for _, l := range Locales {
		if preferenceLine[l] == "" {
			t.Errorf("no preference line for %s", l)
		}
	}
}
