package dialogue

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func msg(headers, body string) []byte {
	return []byte(strings.ReplaceAll(headers, "\n", "\r\n") + "\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
}

func TestParseStripsQuotesAndSignatures(t *testing.T) {
	t.Parallel()
	const hdr = "From: Kari Nordmann <Kari@Example.no>\nTo: reply+x@bounces.example\nSubject: =?utf-8?q?Re:_Hva_ville_du_savnet=3F?=\nMessage-ID: <abc@mail.example.no>\nContent-Type: text/plain; charset=utf-8\n"
	cases := map[string]struct{ body, want string }{
		"gmail english":             {"Faster answers on claims, please.\n\nOn Mon, 2 Mar 2026 at 10:00, lojal <hello@lojal.example> wrote:\n> Hi Kari,\n> what would you miss?\n", "Faster answers on claims, please."},
		"gmail wrapped attribution": {"Yes!\n\nOn Mon, 2 Mar 2026 at 10:00, lojal\n<hello@lojal.example> wrote:\n> Hi\n", "Yes!"},
		"norwegian":                 {"Raskere svar.\n\nDen man. 2. mar. 2026 kl. 10:00 skrev lojal <hello@lojal.example>:\n> Hei Kari\n", "Raskere svar."},
		"outlook":                   {"The app.\n\nFrom: lojal <hello@lojal.example>\nSent: Monday, March 2, 2026 10:00\nTo: Kari\nSubject: What would you miss?\n\nHi Kari", "The app."},
		"signature":                 {"Call me.\n\n-- \nKari Nordmann\n+47 900 00 000", "Call me."},
		"mobile":                    {"Ok thanks\n\nSendt fra min iPhone", "Ok thanks"},
		"interleaved":               {"> what would you miss?\nThe people.\n> anything else?\nNo.", "The people.\nNo."},
		"original msg":              {"See below\n-----Original Message-----\nFrom: x", "See below"},
	}
	for name, c := range cases {
		p, err := Parse(msg(hdr, c.body), "kari@example.no")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Text != c.want {
			t.Errorf("%s: text %q, want %q", name, p.Text, c.want)
		}
		if p.From != "kari@example.no" || p.Subject != "Re: Hva ville du savnet?" || p.MessageID != "abc@mail.example.no" || p.Auto != "" {
			t.Errorf("%s: parsed %+v", name, p)
		}
	}
}

func TestParseMIME(t *testing.T) {
	t.Parallel()
	hdr := "From: kari@example.no\nContent-Type: multipart/alternative; boundary=b\n"
	body := "--b\nContent-Type: text/html; charset=utf-8\n\n<p>HTML only&amp;more</p><blockquote>quoted</blockquote>\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nHils=E6n fra =D8ystein\n--b--\n"
	p, err := Parse(msg(hdr, body), "kari@example.no")
	if err != nil || p.Text != "Hilsæn fra Øystein" {
		t.Fatalf("text %q, %v", p.Text, err)
	}
	body = "--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\nPHA+SGVpPC9wPjxibG9ja3F1b3RlPnNpdGF0PC9ibG9ja3F1b3RlPg==\n--b--\n"
	if p, err = Parse(msg(hdr, body), "kari@example.no"); err != nil || p.Text != "Hei" {
		t.Fatalf("html text %q, %v", p.Text, err)
	}
}

func TestParseAutoReplies(t *testing.T) {
	t.Parallel()
	const base = "From: kari@example.no\nSubject: Re: hello\n"
	cases := map[string]struct{ hdr, mailFrom string }{
		"auto-submitted":   {"From: kari@example.no\nAuto-Submitted: auto-replied\nSubject: Re: hello\n", "kari@example.no"},
		"null sender":      {base, "<>"},
		"x-autoreply":      {base + "X-Autoreply: yes\n", "kari@example.no"},
		"precedence":       {base + "Precedence: auto_reply\n", "kari@example.no"},
		"out of office":    {"From: kari@example.no\nSubject: Out of Office: hello\n", "kari@example.no"},
		"norwegian absent": {"From: kari@example.no\nSubject: Autosvar: hello\n", "kari@example.no"},
		"swedish absent":   {"From: kari@example.no\nSubject: Frånvarande\n", "kari@example.no"},
	}
	for name, c := range cases {
		p, err := Parse(msg(c.hdr, "I am away\n"), c.mailFrom)
		if err != nil || p.Auto == "" {
			t.Errorf("%s: not seen as automatic: %+v %v", name, p, err)
		}
	}
	p, err := Parse(msg(base+"Auto-Submitted: no\n", "hello\n"), "kari@example.no")
	if err != nil || p.Auto != "" {
		t.Errorf("Auto-Submitted: no is a person's reply: %+v %v", p, err)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string][]byte{
		"no headers":      []byte("just text without a header block"),
		"no from":         msg("Subject: hi\n", "text"),
		"bad from":        msg("From: not an address\n", "text"),
		"bad boundary":    msg("From: kari@example.no\nContent-Type: multipart/mixed\n", "--x\n\ntext"),
		"bad utf-8":       msg("From: kari@example.no\nContent-Type: text/plain; charset=utf-8\n", "\xff\xfe"),
		"unknown charset": msg("From: kari@example.no\nContent-Type: text/plain; charset=klingon\n", "text"),
		"bad base64":      msg("From: kari@example.no\nContent-Transfer-Encoding: base64\n", "!!!"),
	} {
		if _, err := Parse(raw, "kari@example.no"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestParseKeepsOnlyStorableText: a reply is stored as text, and Postgres
// takes neither a NUL nor bytes that are not UTF-8. A body with a NUL (raw
// or encoded) or a subject in raw 8-bit Latin-1 (old mail clients) made
// every insert fail: the intake answered 451, and the sending server
// retried for days while the customer's reply was never recorded. The
// text is kept, made storable.
func TestParseKeepsOnlyStorableText(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"raw NUL":          "From: kari@example.no\r\nSubject: Re: hei\r\n\r\nJa\x00 takk\r\n",
		"quoted-printable": "From: kari@example.no\r\nSubject: Re: hei\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nJa=00 takk\r\n",
		"base64":           "From: kari@example.no\r\nSubject: Re: hei\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSmEAIHRha2s=\r\n",
		"8-bit subject":    "From: kari@example.no\r\nSubject: Re: Hei p\xe5 deg\r\n\r\nJa takk\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(raw), "kari@example.no")
			if err != nil {
				t.Fatal(err)
			}
			for field, s := range map[string]string{"subject": p.Subject, "text": p.Text, "message id": p.MessageID, "from": p.From} {
				if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
					t.Errorf("%s %q cannot be stored", field, s)
				}
			}
			if !strings.Contains(p.Text, "takk") {
				t.Errorf("text %q lost what the customer wrote", p.Text)
			}
		})
	}
	p, _ := Parse([]byte("From: kari@example.no\r\nSubject: Re: Hei p\xe5 deg\r\n\r\nJa takk\r\n"), "kari@example.no")
	if p.Subject != "Re: Hei på deg" {
		t.Errorf("8-bit subject read as %q, want it as Latin-1", p.Subject)
	}
}
