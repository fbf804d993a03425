package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Masks shown in place of secrets.
const (
	masked     = "********"
	maskedPart = "xxxxx"
)

// secretName reports whether a parameter name (in a URL query or a
// key=value DSN) names a secret: password, passwd, pwd, token, key,
// secret, signature, auth, credential and anything containing them.
func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "token", "key", "secret", "sig", "auth", "credential", "session"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// MaskURL masks the secrets in a connection string, whatever its form:
// a URL's user information (a password, or a lone user name, which is
// how API keys ride in URLs) and query parameters named like secrets; in
// a key=value DSN the values of keys named like secrets. A value that is
// neither is masked whole: what cannot be parsed cannot be shown safely.
func MaskURL(s string) string {
	switch {
	case s == "":
		return ""
	case strings.Contains(s, "://"):
		return maskURL(s)
	case strings.Contains(s, "="):
		return maskDSN(s)
	}
	return masked
}

func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return masked
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), maskedPart)
		} else {
			u.User = url.User(maskedPart)
		}
	}
	// Rebuilt by hand rather than with url.Values, to keep the order.
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, found := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				return masked
			}
			if found && secretName(name) {
				parts[i] = k + "=" + maskedPart
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	if u.Fragment != "" {
		u.Fragment = maskedPart // some providers put tokens there
	}
	return u.String()
}

// dsnPair matches one key=value of a libpq-style DSN; a value is a
// single-quoted string (with \' and \\ escapes) or runs to the next
// space.
var dsnPair = regexp.MustCompile(`([A-Za-z0-9_.-]+)\s*=\s*('(?:[^'\\]|\\.)*'?|\S*)`)

func maskDSN(s string) string {
	return dsnPair.ReplaceAllStringFunc(s, func(pair string) string {
		m := dsnPair.FindStringSubmatch(pair)
		if !secretName(m[1]) {
			return pair
		}
		return m[1] + "=" + maskedPart
	})
}

// Patterns that find secrets in free text (error messages, log lines):
// user information in a URL, query parameters named like secrets, and
// key=value pairs named like passwords.
var (
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s"'<>]+@`)
	secretParam = regexp.MustCompile(`([?&;][A-Za-z0-9_.%-]*(?i:pass|pwd|token|key|secret|sig|auth|credential|session)[A-Za-z0-9_.%-]*=)[^&#\s"'<>]*`)
	secretPair  = regexp.MustCompile(`(?i)\b((?:ssl)?password|passwd|pwd|secret|token|api_?key|access_?key|private_?key)(\s*[=:]\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&,;"']+)`)
)

// RedactText masks secrets in free text by their form alone.
func RedactText(s string) string {
	s = urlUserinfo.ReplaceAllString(s, "${1}"+maskedPart+"@")
	s = secretParam.ReplaceAllString(s, "${1}"+maskedPart)
	return secretPair.ReplaceAllString(s, "${1}${2}"+maskedPart)
}

// Redactor masks a configuration's secrets wherever they turn up: every
// value it knows (the secret fields, and the passwords and tokens inside
// secret connection strings) and anything that looks like a secret.
type Redactor struct {
	known []string
}

// NewRedactor collects the secrets of cfg, a struct tagged as for Load.
func NewRedactor(cfg any) *Redactor {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	r := &Redactor{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		s, ok := v.Field(i).Interface().(string)
		if !ok || s == "" {
			continue
		}
		switch f.Tag.Get("secret") {
		case "true":
			r.add(s)
		case "url":
			r.addFromConnString(s)
		}
	}
	// Longest first, so a secret containing another is masked whole.
	slices.SortFunc(r.known, func(a, b string) int { return len(b) - len(a) })
	return r
}

func (r *Redactor) add(s string) {
	// Very short values would mask ordinary words; their form is caught
	// by the patterns anyway.
	if len(s) >= 4 && !slices.Contains(r.known, s) {
		r.known = append(r.known, s)
	}
}

func (r *Redactor) addFromConnString(s string) {
	if u, err := url.Parse(s); err == nil && strings.Contains(s, "://") {
		if u.User != nil {
			if p, has := u.User.Password(); has {
				r.add(p)
				r.add(url.QueryEscape(p))
			} else {
				r.add(u.User.Username())
			}
		}
		for k, vs := range u.Query() {
			if secretName(k) {
				for _, v := range vs {
					r.add(v)
				}
			}
		}
		return
	}
	if strings.Contains(s, "=") && !strings.Contains(s, "://") {
		for _, m := range dsnPair.FindAllStringSubmatch(s, -1) {
			if secretName(m[1]) {
				r.add(strings.Trim(m[2], "'"))
			}
		}
		return
	}
	r.add(s) // unparseable: the whole value is the secret
}

// Redact masks secrets in s.
func (r *Redactor) Redact(s string) string {
	for _, k := range r.known {
		s = strings.ReplaceAll(s, k, masked)
	}
	return RedactText(s)
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that redacts every
// log line: the message and every attribute a string, error or
// fmt.Stringer, or whose printed form would carry a secret.
func (r *Redactor) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); r.Redact(s) != s {
			return slog.String(a.Key, r.Redact(s))
		}
	case slog.KindAny:
		var s string
		switch v := a.Value.Any().(type) {
		case error:
			s = v.Error()
		case fmt.Stringer:
			s = v.String()
		default:
			s = fmt.Sprint(v)
		}
		if red := r.Redact(s); red != s {
			return slog.String(a.Key, red)
		}
	}
	return a
}
