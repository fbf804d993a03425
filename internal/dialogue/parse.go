// Package dialogue turns lojal's one-way messages into conversations:
// replies to the signed Reply-To address of every email, the people who
// help (helpers) they are forwarded to, and one-click answers.
//
// Parsing (this file) is pure; the intake (intake.go) stores replies and
// hands them to journeys and helpers.
package dialogue

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/bounce"
)

// Limits on one reply.
const (
	// MaxTextLen bounds the text kept from a reply (runes).
	MaxTextLen = 8000
	maxParts   = 50
)

// ErrMalformed refuses a reply that is not a readable message: no From,
// a broken MIME structure, undecodable text.
var ErrMalformed = bounce.ErrReplyMalformed

// Parsed is a reply as lojal reads it.
type Parsed struct {
	// From is the address in the From header.
	From      string
	Subject   string
	MessageID string
	// Text is what the customer wrote: quoted history and signatures are
	// cut off.
	Text string
	// Auto says why the message is an automatic one (RFC 3834
	// Auto-Submitted, an out-of-office); empty for a person's reply.
	Auto string
}

// Parse reads one reply. mailFrom is the SMTP envelope sender: an empty
// one (<>) marks an automatic message (RFC 3834 section 3.1.7 asks
// auto-responders to use it).
func Parse(raw []byte, mailFrom string) (Parsed, error) {
	var p Parsed
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	dec := new(mime.WordDecoder)
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		return p, fmt.Errorf("%w: From %q: %v", ErrMalformed, msg.Header.Get("From"), err)
	}
	p.From = strings.ToLower(from.Address)
	p.Subject = msg.Header.Get("Subject")
	if s, err := dec.DecodeHeader(p.Subject); err == nil {
		p.Subject = s
	}
	p.Subject = storable(p.Subject)
	p.MessageID = storable(strings.Trim(strings.TrimSpace(msg.Header.Get("Message-Id")), "<>"))
	p.Auto = autoReply(msg.Header, p.Subject, mailFrom)
	text, err := bodyText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	if err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p.Text = Strip(storable(text))
	return p, nil
}

// storable makes text Postgres can store: no NUL, and UTF-8. Text that is
// not UTF-8 is read as Latin-1, what old mail clients put raw in a
// header; an insert that failed on either was answered 451, and the
// customer's reply retried for days and never recorded.
func storable(s string) string {
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteRune(rune(s[i]))
		}
		s = b.String()
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// autoReply says why a message is automatic, or "".
func autoReply(h mail.Header, subject, mailFrom string) string {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return "Auto-Submitted: " + v
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"} {
		if h.Get(k) != "" {
			return k
		}
	}
	switch v := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); v {
	case "auto_reply", "bulk", "junk", "list":
		return "Precedence: " + v
	}
	if strings.TrimSpace(strings.Trim(mailFrom, "<> ")) == "" {
		return "null envelope sender (<>)"
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == "multipart/report" {
		return "a delivery or feedback report"
	}
	if autoSubject.MatchString(subject) {
		return "out-of-office subject"
	}
	return ""
}

var autoSubject = regexp.MustCompile(`(?i)^\s*(auto:|auto[- ]?reply|automatic reply|autosvar|automatisk svar|automatiskt svar|out of (the )?office|fraværende|fravær|frånvarande|frånvaro|ikke på kontoret|abwesenheit|absence)`)

// bodyText finds the text of a message: the first text/plain part, else
// the first text/html part as text.
func bodyText(contentType, encoding string, body io.Reader, depth int) (string, error) {
	if depth > 5 {
		return "", errors.New("MIME parts nested too deep")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, params, err = "text/plain", map[string]string{"charset": "us-ascii"}, nil
	}
	if err != nil {
		return "", fmt.Errorf("Content-Type %q: %v", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		var htmlText string
		for i := 0; ; i++ {
			if i == maxParts {
				return "", fmt.Errorf("more than %d MIME parts", maxParts)
			}
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return "", fmt.Errorf("MIME part %d: %v", i+1, err)
			}
			if strings.HasPrefix(strings.ToLower(part.Header.Get("Content-Disposition")), "attachment") {
				continue
			}
			pt := part.Header.Get("Content-Type")
			pmt, _, _ := mime.ParseMediaType(pt)
			if pt == "" {
				pmt = "text/plain"
			}
			if pmt != "text/plain" && pmt != "text/html" && !strings.HasPrefix(pmt, "multipart/") {
				continue
			}
			t, err := bodyText(pt, part.Header.Get("Content-Transfer-Encoding"), part, depth+1)
			if err != nil {
				return "", err
			}
			switch {
			case pmt == "text/html":
				if htmlText == "" {
					htmlText = t
				}
			case t != "":
				return t, nil
			}
		}
		return htmlText, nil
	}
	if mt != "text/plain" && mt != "text/html" {
		return "", nil
	}
	b, err := decode(encoding, body)
	if err != nil {
		return "", err
	}
	s, err := charset(params["charset"], b)
	if err != nil {
		return "", err
	}
	if mt == "text/html" {
		s = htmlToText(s)
	}
	return strings.ReplaceAll(s, "\r\n", "\n"), nil
}

func decode(encoding string, r io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(r))
		if err != nil {
			return nil, fmt.Errorf("quoted-printable: %v", err)
		}
		return b, nil
	case "base64":
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r}))
		if err != nil {
			return nil, fmt.Errorf("base64: %v", err)
		}
		return b, nil
	}
	return io.ReadAll(r)
}

// stripSpace drops line breaks and spaces, which base64 bodies carry
// between lines.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// charset turns text in the charsets mail clients send replies in into
// UTF-8.
func charset(name string, b []byte) (string, error) {
	switch strings.ToLower(strings.Trim(name, `"`)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		if !utf8.Valid(b) {
			return "", errors.New("text is not valid UTF-8")
		}
		return string(b), nil
	case "iso-8859-1", "latin1", "iso-8859-15", "windows-1252", "cp1252":
		// The letters of the Nordic languages sit at the same code points
		// in all of them; the few that differ are punctuation.
		var sb strings.Builder
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return sb.String(), nil
	}
	return "", fmt.Errorf("charset %q is not supported (send UTF-8)", name)
}

var (
	htmlBreak = regexp.MustCompile(`(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>`)
	htmlQuote = regexp.MustCompile(`(?is)<blockquote\b.*?</blockquote>|<(style|script|head)\b.*?</(style|script|head)>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
)

func htmlToText(s string) string {
	s = htmlQuote.ReplaceAllString(s, "")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = htmlTag.ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

var (
	// The line a mail client writes above the message it quotes, in the
	// languages lojal's customers write in ("On Mon, ... wrote:", "Den
	// ... skrev:"). Some clients wrap it, so it may end on the next line.
	attribution = regexp.MustCompile(`(?i)^(on|den|på|d\.|am|le|el)\b.*\b(wrote|skrev|schrieb|a écrit|escribió)\b.*:\s*$`)
	wroteLine   = regexp.MustCompile(`(?i)^.*\b(wrote|skrev|schrieb)\s*:\s*$`)
	separator   = regexp.MustCompile(`(?i)^\s*-{2,}\s*(original message|opprinnelig melding|ursprungligt meddelande|oprindelig meddelelse|forwarded message|videresendt melding)`)
	outlookFrom = regexp.MustCompile(`(?i)^\s*\*?(from|fra|från)\s*:\*?\s`)
	outlookNext = regexp.MustCompile(`(?i)^\s*\*?(sent|sendt|skickat|date|dato|datum|to|til|till)\s*:\*?\s`)
	mobileSig   = regexp.MustCompile(`(?i)^\s*(sent from my|sendt fra min|sendt fra|skickat från|get outlook for|hent outlook for)\b`)
	blankLines  = regexp.MustCompile(`\n{3,}`)
)

// Strip cuts quoted history and signatures off a reply: everything from
// the quote's attribution line ("On ... wrote:"), an "Original Message"
// separator, an Outlook header block or the signature delimiter ("-- ")
// on; and quoted lines (">") anywhere.
func Strip(text string) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var out []string
cut:
	for i, l := range lines {
		trimmed := strings.TrimRight(l, " \t")
		switch {
		case trimmed == "--" || l == "-- " || trimmed == "__" || separator.MatchString(l) || mobileSig.MatchString(l):
			break cut
		case attribution.MatchString(trimmed):
			break cut
		case wroteLine.MatchString(trimmed) && i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), ">"):
			break cut
		case i+1 < len(lines) && attribution.MatchString(trimmed+" "+strings.TrimSpace(lines[i+1])) &&
			wroteLine.MatchString(strings.TrimSpace(lines[i+1])):
			break cut
		case outlookFrom.MatchString(l) && nextIsHeader(lines[i+1:]):
			break cut
		case strings.HasPrefix(strings.TrimSpace(l), ">"):
			continue
		}
		out = append(out, trimmed)
	}
	s := strings.TrimSpace(blankLines.ReplaceAllString(strings.Join(out, "\n"), "\n\n"))
	if utf8.RuneCountInString(s) > MaxTextLen {
		s = string([]rune(s)[:MaxTextLen]) + " …"
	}
	return s
}

func nextIsHeader(rest []string) bool {
	for i, l := range rest {
		if i == 3 {
			break
		}
		if outlookNext.MatchString(l) {
			return true
		}
	}
	return false
}
