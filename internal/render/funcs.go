package render

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

var monthNames = map[string][12]string{
	"nb": {"januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "desember"},
	"sv": {"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"},
	"da": {"januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"},
}

var dayNames = map[string][7]string{
	"nb": {"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"},
	"sv": {"söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag"},
	"da": {"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"},
}

// localizer holds what locale-aware template functions need.
type localizer struct {
	locale string
	loc    *time.Location
}

// date formats t with a Go layout in the customer's time zone, with month
// and day names in the template's locale: {{ date "2. January" .Event.renews_at }}.
func (l *localizer) date(layout string, v any) (string, error) {
	t, ok := v.(time.Time)
	if !ok {
		return "", fmt.Errorf("date: want a timestamp, got %T", v)
	}
	t = t.In(l.loc)
	out := t.Format(layout)
	lang, _, _ := strings.Cut(l.locale, "-")
	if months, ok := monthNames[lang]; ok {
		en := t.Month().String()
		out = strings.ReplaceAll(out, en, months[t.Month()-1])
		out = strings.ReplaceAll(out, en[:3], months[t.Month()-1][:3])
	}
	if days, ok := dayNames[lang]; ok {
		en := t.Weekday().String()
		out = strings.ReplaceAll(out, en, days[t.Weekday()])
		out = strings.ReplaceAll(out, en[:3], days[t.Weekday()][:3])
	}
	return out, nil
}

func (l *localizer) funcs() template.FuncMap {
	return template.FuncMap{"date": l.date}
}

// textFuncs and htmlFuncs declare the functions at parse time; each render
// binds them to the message's locale and time zone.
var (
	textFuncs = (&localizer{locale: FallbackLocale, loc: time.UTC}).funcs()
	htmlFuncs = textFuncs
)
