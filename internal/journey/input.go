package journey

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// InputError is a customer or event field that failed validation. Msg is
// what a person reads; Pointer (RFC 6901) says where in the JSON document
// the problem is, so an API client can show it next to the field.
type InputError struct {
	Pointer string
	Msg     string
}

func (e *InputError) Error() string { return e.Msg }

func invalid(pointer, format string, args ...any) error {
	return &InputError{Pointer: pointer, Msg: fmt.Sprintf(format, args...)}
}

// within places err (from a nested check) under pointer, its message under
// prefix.
func within(pointer, prefix string, err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return &InputError{Pointer: pointer + ie.Pointer, Msg: prefix + ie.Msg}
	}
	return &InputError{Pointer: pointer, Msg: prefix + err.Error()}
}

// PointerToken escapes one JSON Pointer reference token (RFC 6901).
func PointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// CheckText is checkText for decoded JSON at pointer ("" for a whole
// request body): an error is an *InputError that points at the string.
func CheckText(pointer string, v any) error { return checkText(pointer, v) }

// checkText refuses text that is not text: a NUL (which Postgres cannot
// store, in text or jsonb) or bytes that are not UTF-8. It walks decoded
// JSON (maps, lists, strings), keys included.
func checkText(pointer string, v any) error {
	switch x := v.(type) {
	case string:
		return checkString(pointer, x)
	case []string:
		for i, s := range x {
			if err := checkString(pointer+"/"+strconv.Itoa(i), s); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkText(pointer+"/"+strconv.Itoa(i), e); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := pointer + "/" + PointerToken(k)
			if err := checkString(p, k); err != nil {
				return invalid(p, "%s: field name: %s", strings.TrimPrefix(p, "/"), err.(*InputError).Msg)
			}
			if err := checkText(p, x[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkString(pointer, s string) error {
	if !utf8.ValidString(s) {
		return invalid(pointer, "%s: not valid UTF-8", strings.TrimPrefix(pointer, "/"))
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return invalid(pointer, "%s: contains a NUL character (at byte %d); text may not contain NUL", strings.TrimPrefix(pointer, "/"), i)
	}
	return nil
}

// CheckEmail reports whether addr is a plain email address lojal can send
// to: local@domain and nothing else (no display name, comment, quoting,
// whitespace or control character), a domain name with a dot, within the
// lengths RFC 5321 allows.
func CheckEmail(addr string) error {
	if len(addr) > 254 {
		return errors.New("longer than 254 characters")
	}
	if strings.IndexFunc(addr, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError }) >= 0 {
		return errors.New("contains whitespace or a control character")
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return errors.New("want a plain address such as kari@example.no")
	}
	local, domain, _ := strings.Cut(addr, "@")
	if len(local) > 64 {
		return errors.New("the part before @ is longer than 64 characters")
	}
	if !strings.Contains(domain, ".") || strings.ContainsAny(domain, "[]") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return errors.New("the part after @ is not a domain name")
	}
	return nil
}

// DisplayName makes a name safe for a From/To header: control characters
// and line or paragraph separators become spaces, runs of space collapse,
// and it is cut at 64 characters. A header built from it cannot be split
// or injected into, however the name was written.
func DisplayName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Cf) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 64 {
		s = strings.TrimSpace(string([]rune(s)[:64]))
	}
	return s
}
