package render

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
)

// names are a language's day and month names: whole and abbreviated as
// CLDR writes them (with the abbreviation's dot where the language uses
// one). Months come in two forms: the one used in a date (Finnish
// "1. maaliskuuta") and the one for the month on its own ("maaliskuu").
type names struct {
	days, dayAbbr                 [7]string
	monthsInDate, months, monAbbr [12]string
}

var (
	nbMonths = [12]string{"januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "desember"}
	fiMonths = [12]string{"tammikuu", "helmikuu", "maaliskuu", "huhtikuu", "toukokuu", "kesäkuu", "heinäkuu", "elokuu", "syyskuu", "lokakuu", "marraskuu", "joulukuu"}
	svMonths = [12]string{"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"}
	daMonths = [12]string{"januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"}
)

func withSuffix(a [12]string, suffix string) [12]string {
	for i := range a {
		a[i] += suffix
	}
	return a
}

// localeNames holds the languages lojal writes dates in; other locales
// fall back to English names.
var localeNames = map[string]names{
	"nb": {
		days:         [7]string{"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"},
		dayAbbr:      [7]string{"søn.", "man.", "tir.", "ons.", "tor.", "fre.", "lør."},
		monthsInDate: nbMonths, months: nbMonths,
		monAbbr: [12]string{"jan.", "feb.", "mar.", "apr.", "mai", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "des."},
	},
	"nn": {
		days:         [7]string{"søndag", "måndag", "tysdag", "onsdag", "torsdag", "fredag", "laurdag"},
		dayAbbr:      [7]string{"søn.", "mån.", "tys.", "ons.", "tor.", "fre.", "lau."},
		monthsInDate: nbMonths, months: nbMonths,
		monAbbr: [12]string{"jan.", "feb.", "mars", "apr.", "mai", "juni", "juli", "aug.", "sep.", "okt.", "nov.", "des."},
	},
	"sv": {
		days:         [7]string{"söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag"},
		dayAbbr:      [7]string{"sön", "mån", "tis", "ons", "tors", "fre", "lör"},
		monthsInDate: svMonths, months: svMonths,
		monAbbr: [12]string{"jan.", "feb.", "mars", "apr.", "maj", "juni", "juli", "aug.", "sep.", "okt.", "nov.", "dec."},
	},
	"da": {
		days:         [7]string{"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"},
		dayAbbr:      [7]string{"søn.", "man.", "tirs.", "ons.", "tors.", "fre.", "lør."},
		monthsInDate: daMonths, months: daMonths,
		monAbbr: [12]string{"jan.", "feb.", "mar.", "apr.", "maj", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "dec."},
	},
	"fi": {
		days:         [7]string{"sunnuntai", "maanantai", "tiistai", "keskiviikko", "torstai", "perjantai", "lauantai"},
		dayAbbr:      [7]string{"su", "ma", "ti", "ke", "to", "pe", "la"},
		monthsInDate: withSuffix(fiMonths, "ta"), months: fiMonths,
		monAbbr: [12]string{"tammik.", "helmik.", "maalisk.", "huhtik.", "toukok.", "kesäk.", "heinäk.", "elok.", "syysk.", "lokak.", "marrask.", "jouluk."},
	},
}

// numberFormat is how a locale writes numbers.
type numberFormat struct {
	group, decimal, minus string
	// symbolFirst puts the currency symbol before the amount (en: €5.00),
	// otherwise after it with a no-break space (nb: 5,00 kr).
	symbolFirst bool
	// symbols are the currency symbols the locale's readers know.
	symbols map[string]string
}

const nbsp = "\u00a0"

var numberFormats = map[string]numberFormat{
	"en": {group: ",", decimal: ".", minus: "-", symbolFirst: true, symbols: map[string]string{"USD": "$", "EUR": "€", "GBP": "£"}},
	"nb": {group: nbsp, decimal: ",", minus: "−", symbols: map[string]string{"NOK": "kr", "EUR": "€"}},
	"nn": {group: nbsp, decimal: ",", minus: "−", symbols: map[string]string{"NOK": "kr", "EUR": "€"}},
	"sv": {group: nbsp, decimal: ",", minus: "−", symbols: map[string]string{"SEK": "kr", "EUR": "€"}},
	"da": {group: ".", decimal: ",", minus: "-", symbols: map[string]string{"DKK": "kr.", "EUR": "€"}},
	"fi": {group: nbsp, decimal: ",", minus: "−", symbols: map[string]string{"EUR": "€"}},
}

// minorUnits are the decimals of currencies that do not have two.
var minorUnits = map[string]int{"JPY": 0, "ISK": 0, "KRW": 0, "CLP": 0, "BHD": 3, "KWD": 3}

// localizer holds what locale-aware template functions need.
type localizer struct {
	locale string
	loc    *time.Location
	// answerURL signs one-click answer links (Links.Answer).
	answerURL func(survey, answer string) string
	// trackURL signs tracked links (Links.Track); own holds the links
	// lojal made for the message, which track_links leaves alone.
	trackURL func(dest string) (string, error)
	own      map[string]bool
	// written are the links the template's own text writes
	// (Template.written).
	written map[string]bool
}

func (l *localizer) lang() string {
	lang, _, _ := strings.Cut(strings.ToLower(l.locale), "-")
	return lang
}

// Layout tokens for names, longest first so "Monday" is not read as "Mon".
var nameTokens = []string{"January", "Monday", "Jan", "Mon"}

// date formats t with a Go layout in the customer's time zone, with day
// and month names in the template's locale: {{ date "Monday 2. January"
// .Event.renews_at }}. Monday and January are whole names, Mon and Jan
// abbreviations.
func (l *localizer) date(layout string, v any) (string, error) {
	t, ok := v.(time.Time)
	if !ok {
		return "", fmt.Errorf("date: want a timestamp, got %s", describe(v))
	}
	t = t.In(l.loc)
	n, localized := localeNames[l.lang()]
	if !localized {
		return t.Format(layout), nil
	}
	// A day of the month in the layout makes month names the form used
	// in a date; the year token 2006 is not a day.
	inDate := strings.Contains(strings.ReplaceAll(layout, "2006", ""), "2")
	var b strings.Builder
	for rest := layout; rest != ""; {
		at, tok := len(rest), ""
		for _, candidate := range nameTokens {
			if i := strings.Index(rest, candidate); i >= 0 && (i < at || i == at && len(candidate) > len(tok)) {
				at, tok = i, candidate
			}
		}
		if at > 0 {
			b.WriteString(t.Format(rest[:at]))
		}
		switch tok {
		case "January":
			if inDate {
				b.WriteString(n.monthsInDate[t.Month()-1])
			} else {
				b.WriteString(n.months[t.Month()-1])
			}
		case "Jan":
			b.WriteString(n.monAbbr[t.Month()-1])
		case "Monday":
			b.WriteString(n.days[t.Weekday()])
		case "Mon":
			b.WriteString(n.dayAbbr[t.Weekday()])
		}
		rest = rest[at+len(tok):]
	}
	return b.String(), nil
}

func (l *localizer) format() numberFormat {
	if f, ok := numberFormats[l.lang()]; ok {
		return f
	}
	return numberFormats["en"]
}

// number formats a number the locale's way: {{ number .Customer.points }}
// (whole numbers as they are, others with two decimals) or {{ number 1
// .Event.total }} (one decimal).
func (l *localizer) number(args ...any) (string, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", fmt.Errorf("number: want number [DECIMALS] VALUE")
	}
	v := args[len(args)-1]
	f, whole, err := toFloat(v)
	if err != nil {
		return "", fmt.Errorf("number: %w", err)
	}
	decimals := 2
	if whole {
		decimals = 0
	}
	if len(args) == 2 {
		d, _, err := toFloat(args[0])
		if err != nil || d < 0 || d > 10 || d != math.Trunc(d) {
			return "", fmt.Errorf("number: decimals must be a whole number from 0 to 10, got %s", describe(args[0]))
		}
		decimals = int(d)
	}
	return l.format().formatNumber(f, decimals), nil
}

// currency formats an amount in a currency (an ISO 4217 code) the
// locale's way: {{ currency "NOK" .Event.total }} is "420,00 kr" in nb and
// "NOK 420.00" in en.
func (l *localizer) currency(code string, v any) (string, error) {
	code = strings.ToUpper(code)
	if len(code) != 3 || strings.IndexFunc(code, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return "", fmt.Errorf("currency: %q is not a currency code (want three letters such as NOK, SEK, DKK, EUR)", code)
	}
	f, _, err := toFloat(v)
	if err != nil {
		return "", fmt.Errorf("currency: %w", err)
	}
	decimals, ok := minorUnits[code]
	if !ok {
		decimals = 2
	}
	nf := l.format()
	amount := nf.formatNumber(f, decimals)
	sym, known := nf.symbols[code]
	if !known {
		sym = code
	}
	if nf.symbolFirst {
		if known {
			if neg, ok := strings.CutPrefix(amount, nf.minus); ok {
				return nf.minus + sym + neg, nil
			}
			return sym + amount, nil
		}
		return sym + nbsp + amount, nil
	}
	return amount + nbsp + sym, nil
}

func (nf numberFormat) formatNumber(f float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(f), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if f < 0 && strings.Trim(s, "0.") != "" {
		b.WriteString(nf.minus)
	}
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteString(nf.group)
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString(nf.decimal)
		b.WriteString(frac)
	}
	return b.String()
}

func toFloat(v any) (float64, bool, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), true, nil
	case int:
		return float64(x), true, nil
	case float64:
		return x, false, nil
	case nil:
		return 0, false, fmt.Errorf("the value is missing")
	}
	return 0, false, fmt.Errorf("want a number, got %s", describe(v))
}

func describe(v any) string {
	if v == nil {
		return "a missing value"
	}
	return fmt.Sprintf("%T %v", v, v)
}

// defaultValue returns value, or def when value is missing or empty:
// {{ default "venn" .Customer.nickname }} or {{ .Customer.nickname |
// default "venn" }}.
func defaultValue(def any, value ...any) any {
	if len(value) == 0 {
		return def
	}
	switch v := value[0].(type) {
	case nil:
		return def
	case string:
		if strings.TrimSpace(v) == "" {
			return def
		}
	}
	return value[0]
}

func text(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", fmt.Errorf("%s: the value is missing (use default or if)", name)
	}
	return fmt.Sprint(v), nil
}

func upper(v any) (string, error) {
	s, err := text("upper", v)
	return strings.ToUpper(s), err
}

func lower(v any) (string, error) {
	s, err := text("lower", v)
	return strings.ToLower(s), err
}

// title capitalises the first letter of each word: "ola nordmann" -> "Ola
// Nordmann". Letters after the first are left as they are.
func title(v any) (string, error) {
	s, err := text("title", v)
	var b strings.Builder
	start := true
	for _, r := range s {
		if start && unicode.IsLetter(r) {
			r = unicode.ToTitle(r)
		}
		start = unicode.IsSpace(r) || r == '-'
		b.WriteRune(r)
	}
	return b.String(), err
}

func (l *localizer) funcs() template.FuncMap {
	return template.FuncMap{
		"date": l.date, "number": l.number, "currency": l.currency,
		"default": defaultValue, "upper": upper, "lower": lower, "title": title,
		"answer": l.answer, "track": l.track,
	}
}

// declaredFuncs declares the functions at parse time; each render binds
// them to the message's locale and time zone.
var declaredFuncs = (&localizer{locale: FallbackLocale, loc: time.UTC}).funcs()

// builtinFuncs are text/template's own functions.
var builtinFuncs = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery", "call"}

// funcAliases are the names other template languages give lojal's
// functions.
var funcAliases = map[string]string{
	"upcase": "upper", "uppercase": "upper", "toupper": "upper", "capitalize": "title", "titlecase": "title",
	"downcase": "lower", "lowercase": "lower", "tolower": "lower", "formatdate": "date", "format_date": "date",
	"datum": "date", "dato": "date", "fallback": "default", "or_default": "default", "money": "currency",
	"format_currency": "currency", "format_number": "number", "formatnumber": "number",
}

// funcNames lists every function a template may call, for suggestions.
func funcNames() []string {
	out := slices.Clone(builtinFuncs)
	for name := range declaredFuncs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

var answerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// answer renders the one-click link that records answer to the question
// survey for the message's customer: {{ answer "checkin" "more-help" }}.
// Opening it records a survey.answered event.
func (l *localizer) answer(survey, answer string) (string, error) {
	for _, v := range []string{survey, answer} {
		if !answerName.MatchString(v) {
			return "", fmt.Errorf("answer %q %q: question and answer must be lower-case letters, digits, - and _", survey, answer)
		}
	}
	if l.answerURL == nil {
		return "#answer-" + survey + "-" + answer, nil
	}
	u := l.answerURL(survey, answer)
	l.mine(u)
	return u, nil
}
