package render

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestChain(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"nb":    {"nb", "en"},
		"nb-NO": {"nb-no", "nb", "en"},
		"nn":    {"nn", "nb", "en"},
		"no":    {"no", "nb", "en"},
		"sv-FI": {"sv-fi", "sv", "en"},
		"en":    {"en"},
		"":      {"en"},
	} {
		if got := Chain(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Chain(%q) = %v, want %v", in, got, want)
		}
	}
}

func set(t *testing.T, files map[string]string) *Set {
	t.Helper()
	s := NewSet()
	for name, src := range files {
		locale := strings.TrimSuffix(name, ".yaml")
		tm, err := Parse(name, "greet", locale, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		s.Add(tm)
	}
	return s
}

func TestRenderPicksLocaleThroughFallbacks(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{
		"en.yaml": "subject: \"Hello {{ .Customer.first_name }}\"\ntext: hi\n",
		"nb.yaml": "subject: \"Hei {{ .Customer.first_name }}\"\ntext: hei\n",
	})
	data := Data{Customer: map[string]any{"first_name": "Kari"}}
	for locale, want := range map[string]string{"nb": "Hei Kari", "nn": "Hei Kari", "nb-NO": "Hei Kari", "sv": "Hello Kari", "": "Hello Kari"} {
		m, err := s.Render("greet", "email", locale, data)
		if err != nil || m.Subject != want {
			t.Errorf("locale %q: %q %v, want %q", locale, m.Subject, err, want)
		}
	}
}

func TestHostileDataIsEscapedInHTML(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{"en.yaml": "subject: \"Hi {{ .Customer.first_name }}\"\ntext: \"Hi {{ .Customer.first_name }}\"\nhtml: \"<p>Hi {{ .Customer.first_name }}</p><a href=\\\"{{ .Links.Preferences }}\\\">prefs</a>\"\n"})
	evil := `<script>alert("x")</script>`
	m, err := s.Render("greet", "email", "en", Data{Customer: map[string]any{"first_name": evil}, Links: Links{Preferences: "javascript:alert(1)"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Errorf("html not escaped: %s", m.HTML)
	}
	if strings.Contains(m.HTML, "javascript:") {
		t.Errorf("unsafe URL kept: %s", m.HTML)
	}
	if !strings.HasPrefix(m.Text, "Hi "+evil+"\n") {
		t.Errorf("text part %q should carry the name as written", m.Text)
	}
}

func TestMissingValueIsAnError(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{"en.yaml": "subject: \"Hi {{ .Customer.first_name }}\"\ntext: x\n"})
	_, err := s.Render("greet", "email", "en", Data{Customer: map[string]any{}})
	if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), `missing value .Customer.first_name`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSubjectCannotCarryHeaderInjection(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{"en.yaml": "subject: \"Hi {{ .Customer.first_name }}\"\ntext: x\n"})
	m, err := s.Render("greet", "email", "en", Data{Customer: map[string]any{"first_name": "Kari\r\nBcc: all@example.com"}})
	if err != nil || strings.ContainsAny(m.Subject, "\r\n") {
		t.Fatalf("subject %q %v", m.Subject, err)
	}
}

func TestDateIsLocalizedAndInCustomerZone(t *testing.T) {
	t.Parallel()
	s := set(t, map[string]string{
		"en.yaml": "subject: \"{{ date \\\"Monday 2 January 15:04\\\" .Event.at }}\"\ntext: x\n",
		"nb.yaml": "subject: \"{{ date \\\"Monday 2. January 15:04\\\" .Event.at }}\"\ntext: x\n",
		"sv.yaml": "subject: \"{{ date \\\"2 Jan\\\" .Event.at }}\"\ntext: x\n",
	})
	oslo, _ := time.LoadLocation("Europe/Oslo")
	at := time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC) // already 1 April in Oslo
	for locale, want := range map[string]string{"en": "Wednesday 1 April 01:30", "nb": "onsdag 1. april 01:30", "sv": "1 apr."} {
		m, err := s.Render("greet", "email", locale, Data{Event: map[string]any{"at": at}, Location: oslo})
		if err != nil || m.Subject != want {
			t.Errorf("%s: %q %v, want %q", locale, m.Subject, err, want)
		}
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	tm, err := Parse("x", "x", "en", []byte("subject: \"{{ .Customer.first_name }} {{ if .Event.total }}{{ .Event.order_id }}{{ end }}\"\ntext: \"{{ range .Customer.tags }}{{ . }}{{ end }}\"\nhtml: \"<a href={{ .Links.Unsubscribe }}>x</a>\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Path: "Customer.first_name", Part: "subject", Line: 1, Col: 14},
		{Path: "Event.total", Part: "subject", Line: 1, Col: 44, Test: true},
		{Path: "Event.order_id", Part: "subject", Line: 1, Col: 62, Known: []string{"Event.total"}},
		{Path: "Customer.tags", Part: "text", Line: 2, Col: 17},
		{Path: "Links.Unsubscribe", Part: "html", Line: 3, Col: 19},
	}
	if got := tm.Refs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("refs %+v\nwant %+v", got, want)
	}
	if col := want[0].ColOf(1); col != 24 {
		t.Errorf("first_name is at column %d, want 24", col)
	}
}

// TestPushTextThatCannotFitIsRefused: a push template whose fixed text
// alone is more than one push message carries (3,993 bytes of JSON with
// its id and locale, RFC 8291) is refused when journeys are validated;
// text inside a condition may not be rendered, so it does not count.
func TestPushTextThatCannotFitIsRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ø", MaxPushText/2+1) // two bytes each
	for src, ok := range map[string]bool{
		"title: Hei\nbody: " + strings.Repeat("x", MaxPushText-3) + "\n":                                true,
		"title: Hei\nbody: " + long + "\n":                                                              false,
		"title: " + long + "\nbody: kort\n":                                                             false,
		"title: Hei\nbody: \"{{ if .Customer.vip }}" + long + "{{ else }}kort{{ end }}\"\n":             true,
		"title: Hei\nbody: \"{{ .Customer.first_name }}, " + long + "\"\n":                              false,
		"title: Hei\nbody: kort\nurl: https://lojal.example/" + strings.Repeat("a", MaxPushText) + "\n": false,
	} {
		tm, err := Parse("templates/greet/en.yaml", "greet", "en", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		err = tm.Supports("push")
		if (err == nil) != ok {
			t.Errorf("%d-byte template: Supports(push) = %v, want ok %v", len(src), err, ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "templates/greet/en.yaml") || !strings.Contains(err.Error(), "3,993")) {
			t.Errorf("error %q should name the file and the limit", err)
		}
	}
}
