package render

import (
	"strings"
	"testing"
	"time"
)

// TestTemplateMistakesAtTheirPosition: every mistake in a template file is
// reported as file:line:col at the mistake, with a suggestion where a near
// name exists, never as a raw Go error.
func TestTemplateMistakesAtTheirPosition(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ src, want string }{
		"misspelt key": {"subjet: Hei\ntext: x\n",
			`nb.yaml:1:1: unknown field "subjet" (did you mean "subject"?)`},
		"unquoted action": {"subject: {{ .Customer.first_name }}\ntext: x\n",
			`nb.yaml:1:10: subject: a value that starts with {{ must be quoted in YAML: subject: "{{ ... }}"`},
		"unclosed action": {"subject: \"Hei {{ .Customer.first_name \"\ntext: x\n",
			`nb.yaml:1:15: subject: unclosed action`},
		"unknown function": {"subject: Hei\ntext: |\n  Hei {{ upcase .Customer.first_name }},\n  velkommen.\n",
			`nb.yaml:3:10: text: function "upcase" not defined (did you mean "upper"?)`},
		"unknown function in html": {"subject: Hei\ntext: x\nhtml: \"<p>{{ dato \\\"2. January\\\" .Event.at }}</p>\"\n",
			`nb.yaml:3:14: html: function "dato" not defined (did you mean "date"?)`},
		"error on a later line of a block": {"subject: Hei\ntext: |\n  Hei,\n\n  {{ if .Customer.first_name }}hei{{ end\n",
			`nb.yaml:5:35: text: unclosed action`},
		"yaml syntax": {"subject: Hei: du\ntext: x\n",
			`nb.yaml:1:13: YAML syntax: mapping values are not allowed in this context`},
		"yaml syntax on a later line": {"subject: Hei\ntext: |\n  x\n bad\n",
			`nb.yaml:4:2: YAML syntax`},
		"not a mapping":   {"- subject\n", `nb.yaml:1:1: a template file must be a mapping of subject, text, html (email) or title, body, url (push)`},
		"list as a value": {"subject:\n  - a\ntext: x\n", `nb.yaml:2:3: subject must be text, not a list`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("nb.yaml", "greet", "nb", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "unmarshal") || strings.Contains(err.Error(), "render.source") {
				t.Errorf("raw Go error: %v", err)
			}
		})
	}
}

func render1(t *testing.T, locale, src string, data Data) string {
	t.Helper()
	tm, err := Parse(locale+".yaml", "greet", locale, []byte("subject: x\ntext: "+src+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := tm.Render("email", data)
	if err != nil {
		t.Fatalf("%s %s: %v", locale, src, err)
	}
	return m.Text
}

// TestLocalisedDayAndMonthNames: whole and abbreviated names in nb, nn,
// sv, da, fi and en, never cut mid-word.
func TestLocalisedDayAndMonthNames(t *testing.T) {
	t.Parallel()
	sunday := Data{Event: map[string]any{"at": time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}} // a Sunday in March
	monday := Data{Event: map[string]any{"at": time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}}
	layout := `'{{ date "Monday Mon 2 January Jan" .Event.at }}'`
	for locale, want := range map[string][2]string{
		"en": {"Sunday Sun 1 March Mar", "Monday Mon 2 March Mar"},
		"nb": {"søndag søn. 1 mars mar.", "mandag man. 2 mars mar."},
		"nn": {"søndag søn. 1 mars mars", "måndag mån. 2 mars mars"},
		"sv": {"söndag sön 1 mars mars", "måndag mån 2 mars mars"},
		"da": {"søndag søn. 1 marts mar.", "mandag man. 2 marts mar."},
		"fi": {"sunnuntai su 1 maaliskuuta maalisk.", "maanantai ma 2 maaliskuuta maalisk."},
	} {
		if got := render1(t, locale, layout, sunday); got != want[0] {
			t.Errorf("%s Sunday: %q, want %q", locale, got, want[0])
		}
		if got := render1(t, locale, layout, monday); got != want[1] {
			t.Errorf("%s Monday: %q, want %q", locale, got, want[1])
		}
	}
	// Finnish names a month on its own differently from a date in it.
	if got := render1(t, "fi", `'{{ date "January 2006" .Event.at }}'`, sunday); got != "maaliskuu 2026" {
		t.Errorf("fi month and year: %q", got)
	}
	// Layout text that is not a name stays as written.
	if got := render1(t, "nb", `'{{ date "Mon 02.01.2006" .Event.at }}'`, monday); got != "man. 02.03.2026" {
		t.Errorf("nb numeric date: %q", got)
	}
}

func TestNumberAndCurrencyPerLocale(t *testing.T) {
	t.Parallel()
	data := Data{Event: map[string]any{"total": 1234567.5, "points": int64(1200), "debt": -42.0}}
	for locale, want := range map[string]string{
		"en": "1,234,567.50|1,200|NOK" + nbsp + "1,234,567.50|€1,234,567.50|-42.00",
		"nb": "1" + nbsp + "234" + nbsp + "567,50|1" + nbsp + "200|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "kr|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "€|−42,00",
		"sv": "1" + nbsp + "234" + nbsp + "567,50|1" + nbsp + "200|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "NOK|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "€|−42,00",
		"da": "1.234.567,50|1.200|1.234.567,50" + nbsp + "NOK|1.234.567,50" + nbsp + "€|-42,00",
		"fi": "1" + nbsp + "234" + nbsp + "567,50|1" + nbsp + "200|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "NOK|1" + nbsp + "234" + nbsp + "567,50" + nbsp + "€|−42,00",
	} {
		got := render1(t, locale, `'{{ number .Event.total }}|{{ number .Event.points }}|{{ currency "NOK" .Event.total }}|{{ currency "EUR" .Event.total }}|{{ number 2 .Event.debt }}'`, data)
		if got != want {
			t.Errorf("%s: %q\nwant %q", locale, got, want)
		}
	}
	if got := render1(t, "sv", `'{{ currency "SEK" .Event.total }}|{{ number 0 .Event.total }}'`, data); got != "1\u00a0234\u00a0567,50\u00a0kr|1\u00a0234\u00a0568" {
		t.Errorf("sv kronor: %q", got)
	}
	if got := render1(t, "da", `'{{ currency "DKK" .Event.points }}'`, data); got != "1.200,00\u00a0kr." {
		t.Errorf("da kroner: %q", got)
	}
}

func TestTextFunctions(t *testing.T) {
	t.Parallel()
	data := Data{Customer: map[string]any{"first_name": "kari", "city": "TROMSØ"}}
	if got := render1(t, "nb", `'{{ upper .Customer.first_name }} {{ lower .Customer.city }} {{ title "ola nordmann" }}'`, data); got != "KARI tromsø Ola Nordmann" {
		t.Errorf("upper/lower/title: %q", got)
	}
	if got := render1(t, "nb", `'Hei {{ default "venn" .Customer.nickname }}, {{ .Customer.nickname | default "du" }}'`, data); got != "Hei venn, du" {
		t.Errorf("default for a missing value: %q", got)
	}
	data.Customer["nickname"] = "Kajsa"
	if got := render1(t, "nb", `'Hei {{ default "venn" .Customer.nickname }}'`, data); got != "Hei Kajsa" {
		t.Errorf("default for a value that is there: %q", got)
	}
	delete(data.Customer, "nickname")
	if got := render1(t, "nb", `'Hei{{ with .Customer.nickname }} {{ . }}{{ end }}{{ if .Customer.nickname }}!{{ end }}'`, data); got != "Hei" {
		t.Errorf("with/if on a missing value: %q", got)
	}
}

// TestRefPositionsAfterEscapes: escaped quotes in a double-quoted value do
// not shift the columns of what follows them.
func TestRefPositionsAfterEscapes(t *testing.T) {
	t.Parallel()
	tm, err := Parse("en.yaml", "greet", "en", []byte("subject: \"{{ date \\\"2 Jan\\\" .Event.at }} {{ .Customer.first_name }}\"\ntext: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	refs := tm.Refs()
	if len(refs) != 2 || refs[0].Col != 29 || refs[1].Col != 45 {
		t.Fatalf("refs %+v, want columns 29 and 45", refs)
	}
}

// TestRegionLocaleFiles: en-GB.yaml serves customers whose locale is
// en-GB, whatever its case.
func TestRegionLocaleFiles(t *testing.T) {
	t.Parallel()
	s := NewSet()
	for _, l := range []string{"en", "en-GB"} {
		tm, err := Parse(l+".yaml", "greet", l, []byte("subject: \"hello "+l+"\"\ntext: x\n"))
		if err != nil {
			t.Fatal(err)
		}
		s.Add(tm)
	}
	for _, locale := range []string{"en-GB", "en-gb"} {
		if m, err := s.Render("greet", "email", locale, Data{}); err != nil || m.Subject != "hello en-GB" {
			t.Errorf("%s: %q %v", locale, m.Subject, err)
		}
	}
}
