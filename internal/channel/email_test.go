package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/render"
)

func catcher(t *testing.T, opts mailcatch.Options) *mailcatch.Server {
	t.Helper()
	c, err := mailcatch.Start(slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newEmail(t *testing.T, cfg EmailConfig) *Email {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "lojal <hello@lojal.example>"
	}
	e, err := NewEmail(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func envelope() Envelope {
	return Envelope{Channel: "email", To: "kari@example.no", ToName: "Kari Nordmann", MessageID: "abc123@lojal.example",
		IdempotencyKey: "journey/x/c-1@run/remind#1.1", Unsubscribe: "https://lojal.example/u/tok",
		Message: render.Message{Locale: "nb", Subject: "Forsikringen din fornyes 1. april",
			Text: "Hei Kari,\nforsikringen din fornyes 1. april.", HTML: "<p>Hei Kari,</p><p>forsikringen din fornyes <b>1. april</b>.</p>"}}
}

// decodeParts returns the decoded text/plain and text/html parts.
func decodeParts(t *testing.T, raw []byte) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var text, html string
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart.Reader undoes quoted-printable
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(b)
		} else {
			text = string(b)
		}
	}
	return msg, text, html
}

func TestEmailHeadersAndParts(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr, ReturnPath: "bounces@lojal.example"})
	env := envelope()
	env.UnsubscribeMail = "bounces+abc@lojal.example"
	if _, err := e.Send(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	msgs := c.Messages()
	if len(msgs) != 1 || msgs[0].From != "bounces@lojal.example" || msgs[0].To[0] != "kari@example.no" {
		t.Fatalf("envelope: %+v", msgs)
	}
	m, text, html := decodeParts(t, msgs[0].Data)
	h := m.Header
	subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	for name, want := range map[string]string{
		"Message-Id":            "<abc123@lojal.example>",
		"List-Unsubscribe":      "<https://lojal.example/u/tok>, <mailto:bounces+abc@lojal.example?subject=unsubscribe>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Lojal-Key":           "journey/x/c-1@run/remind#1.1",
		"Content-Language":      "nb",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if subject != "Forsikringen din fornyes 1. april" {
		t.Errorf("subject %q", subject)
	}
	if !strings.Contains(text, "forsikringen din fornyes 1. april.") || !strings.Contains(html, "<b>1. april</b>") {
		t.Errorf("parts: %q / %q", text, html)
	}
}

func TestEmailReusesConnections(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr})
	for range 20 {
		if _, err := e.Send(context.Background(), envelope()); err != nil {
			t.Fatal(err)
		}
	}
	if c.Count() != 20 || c.Sessions() != 1 {
		t.Fatalf("%d messages over %d sessions, want 20 over 1", c.Count(), c.Sessions())
	}
}

func TestEmailStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{TLS: selfSigned(t), Users: map[string]string{"lojal": "s3cret"}})
	e := newEmail(t, EmailConfig{URL: "smtp://lojal:s3cret@" + c.Addr + "?tls=starttls", InsecureSkipVerify: true})
	if _, err := e.Send(context.Background(), envelope()); err != nil {
		t.Fatal(err)
	}
	if msgs := c.Messages(); len(msgs) != 1 || msgs[0].User != "lojal" {
		t.Fatalf("messages %+v", msgs)
	}
	bad := newEmail(t, EmailConfig{URL: "smtp://lojal:wrong@" + c.Addr + "?tls=starttls", InsecureSkipVerify: true})
	if _, err := bad.Send(context.Background(), envelope()); err == nil {
		t.Fatal("wrong password accepted")
	}
	// Mandatory STARTTLS refuses a server that does not offer it.
	plain := catcher(t, mailcatch.Options{})
	tlsOnly := newEmail(t, EmailConfig{URL: "smtp://u:p@" + plain.Addr + "?tls=starttls"})
	if _, err := tlsOnly.Send(context.Background(), envelope()); err == nil || plain.Count() != 0 {
		t.Fatalf("sent in the clear: %v", err)
	}
}

// TestEmailDKIM verifies lojal's signatures with the verifier in
// dkimverify_test.go, written from RFC 6376 apart from the library that
// signs, and checks what they cover: the fields a verifier expects, and
// List-Unsubscribe with List-Unsubscribe-Post, without which one-click
// unsubscribe does not count (RFC 8058 section 4). From and the fields
// whose addition would mislead are named twice (oversigned), so a second
// one added in transit breaks the signature.
func TestEmailDKIM(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	wantSigned := []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Reply-To",
		"List-Unsubscribe", "List-Unsubscribe-Post", "From", "To", "Subject", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post"}
	for _, tc := range []struct {
		name string
		pem  []byte
	}{
		{"rsa", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})},
		{"ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			signer, err := LoadDKIM("lojal.example", "lj1", tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			record, err := signer.Record()
			if err != nil {
				t.Fatal(err)
			}
			lookup := func(name string) (string, error) {
				if name != "lj1._domainkey.lojal.example" || name != signer.RecordName() {
					return "", fmt.Errorf("looked up %s", name)
				}
				return record, nil
			}
			c := catcher(t, mailcatch.Options{})
			e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr, DKIM: signer})
			if _, err := e.Send(context.Background(), envelope()); err != nil {
				t.Fatal(err)
			}
			raw := c.Messages()[0].Data
			rs, err := verifyDKIM(raw, lookup)
			if err != nil || len(rs) != 1 || rs[0].Domain != "lojal.example" {
				t.Fatalf("verify: %+v %v", rs, err)
			}
			if !slices.Equal(rs[0].Signed, wantSigned) {
				t.Errorf("signed header fields (h=)\n got %v\nwant %v", rs[0].Signed, wantSigned)
			}

			// What the signature covers cannot be changed or added to in
			// transit.
			for name, change := range map[string]func(string) string{
				"List-Unsubscribe changed": func(m string) string {
					return strings.Replace(m, "<https://lojal.example/u/tok>", "<https://evil.example/u/tok>", 1)
				},
				"second List-Unsubscribe added": func(m string) string { return "List-Unsubscribe: <https://evil.example/u>\r\n" + m },
				"List-Unsubscribe-Post removed": func(m string) string {
					return strings.Replace(m, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "", 1)
				},
				"second From added": func(m string) string { return "From: ceo@lojal.example\r\n" + m },
				"Reply-To added":    func(m string) string { return "Reply-To: thief@evil.example\r\n" + m },
				"body changed":      func(m string) string { return strings.Replace(m, "fornyes", "forsvinner", 1) },
			} {
				changed := change(string(raw))
				if changed == string(raw) {
					t.Fatalf("%s: the message did not change", name)
				}
				if _, err := verifyDKIM([]byte(changed), lookup); err == nil {
					t.Errorf("%s: the signature still verifies", name)
				}
			}

			// A Reply-To, when a message has one, is signed.
			m, err := e.Build(envelope())
			if err != nil {
				t.Fatal(err)
			}
			if err := m.ReplyTo("kundeservice@lojal.example"); err != nil {
				t.Fatal(err)
			}
			signed, err := e.encode(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifyDKIM(signed, lookup); err != nil || !bytes.Contains(signed, []byte("Reply-To: <kundeservice@lojal.example>")) {
				t.Fatalf("with Reply-To: %v\n%s", err, signed)
			}
			if _, err := verifyDKIM(bytes.Replace(signed, []byte("kundeservice@"), []byte("thief@"), 1), lookup); err == nil {
				t.Error("a changed Reply-To still verifies")
			}
		})
	}
}

func TestEmailHardBounceIsPermanent(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{RejectRecipient: func(string) bool { return true }})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr})
	_, err := e.Send(context.Background(), envelope())
	perm, ok := IsPermanent(err)
	if !ok || !perm.Bounce || perm.Code != 550 {
		t.Fatalf("err = %v", err)
	}
	env := envelope()
	env.To = "not an address"
	if _, err := e.Send(context.Background(), env); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestEmailServerDownIsTemporary(t *testing.T) {
	t.Parallel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	e := newEmail(t, EmailConfig{URL: "smtp://" + addr, Timeout: 2 * time.Second})
	_, err := e.Send(context.Background(), envelope())
	if _, perm := IsPermanent(err); err == nil || perm {
		t.Fatalf("err = %v, want a temporary failure", err)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestConfirmIsTheCommitPoint: Confirm runs when the server holds the whole
// message but has not delivered it; a failing Confirm means no delivery.
func TestConfirmIsTheCommitPoint(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr})
	env := envelope()
	calls := 0
	env.Confirm = func() error {
		calls++
		if n := c.Count(); n != 0 {
			t.Errorf("delivered before the commit point (%d)", n)
		}
		return nil
	}
	if _, err := e.Send(context.Background(), env); err != nil || calls != 1 || c.Count() != 1 {
		t.Fatalf("send: %v, %d confirms, %d delivered", err, calls, c.Count())
	}
	env.Confirm = func() error { return io.ErrUnexpectedEOF } // the database is down
	if _, err := e.Send(context.Background(), env); err == nil {
		t.Fatal("a failed confirm must fail the send")
	}
	time.Sleep(100 * time.Millisecond)
	if c.Count() != 1 {
		t.Fatalf("a message whose confirm failed was delivered (%d)", c.Count())
	}
	// The pool recovers: the next send goes out.
	env.Confirm = nil
	if _, err := e.Send(context.Background(), env); err != nil || c.Count() != 2 {
		t.Fatalf("after an abandoned send: %v, %d delivered", err, c.Count())
	}
}

// TestEndOfDataOutcomes: what each answer to the final "." proves.
func TestEndOfDataOutcomes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		reply     mailcatch.Reply
		uncertain bool
		permanent bool
		kept      int
	}{
		{"lost reply", mailcatch.Reply{Action: mailcatch.QueueAndDrop}, true, false, 1},
		{"slower than our timeout", mailcatch.Reply{Action: mailcatch.QueueAndDelay, Delay: 2 * time.Second}, true, false, 1},
		{"temporary refusal", mailcatch.Reply{Action: mailcatch.Refuse, Code: 451, Text: "try later"}, false, false, 0},
		{"permanent refusal", mailcatch.Reply{Action: mailcatch.Refuse, Code: 554, Text: "spam"}, false, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := catcher(t, mailcatch.Options{AfterData: func(mailcatch.Message, int) mailcatch.Reply { return tc.reply }})
			e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr, Timeout: 500 * time.Millisecond})
			_, err := e.Send(context.Background(), envelope())
			if err == nil {
				t.Fatal("no error")
			}
			if IsUncertain(err) != tc.uncertain {
				t.Errorf("uncertain = %v, want %v (%v)", IsUncertain(err), tc.uncertain, err)
			}
			perm, isPerm := IsPermanent(err)
			if isPerm != tc.permanent || (isPerm && perm.Bounce) {
				t.Errorf("permanent = %v (bounce %v), want %v and never a bounce (%v)", isPerm, isPerm && perm.Bounce, tc.permanent, err)
			}
			if c.Count() != tc.kept {
				t.Errorf("server kept %d, want %d", c.Count(), tc.kept)
			}
		})
	}
}

// scriptedSMTP is a minimal SMTP server that advertises PIPELINING or not
// and records, for each command, whether more input had already arrived
// behind it (the client pipelined).
type scriptedSMTP struct {
	addr      string
	pipelined chan bool // one value per MAIL command: RCPT and DATA came with it
	delivered chan string
}

func startScripted(t *testing.T, advertise bool) *scriptedSMTP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &scriptedSMTP{addr: l.Addr().String(), pipelined: make(chan bool, 10), delivered: make(chan string, 10)}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(conn, advertise)
		}
	}()
	return s
}

func (s *scriptedSMTP) serve(conn net.Conn, advertise bool) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string) { _, _ = io.WriteString(conn, line+"\r\n") }
	say("220 scripted ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if advertise {
				say("250-scripted")
				say("250 PIPELINING")
			} else {
				say("250 scripted")
			}
		case strings.HasPrefix(cmd, "MAIL"):
			s.pipelined <- r.Buffered() > 0
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT"):
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			s.delivered <- body.String()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

// TestPipelining: with a server that offers PIPELINING (RFC 2920), MAIL,
// RCPT and DATA go out together, so a message costs two round trips; a
// server that does not offer it gets one command at a time.
func TestPipelining(t *testing.T) {
	t.Parallel()
	for _, advertise := range []bool{true, false} {
		srv := startScripted(t, advertise)
		e := newEmail(t, EmailConfig{URL: "smtp://" + srv.addr, Timeout: 5 * time.Second})
		if _, err := e.Send(context.Background(), envelope()); err != nil {
			t.Fatalf("advertise %v: %v", advertise, err)
		}
		if got := <-srv.pipelined; got != advertise {
			t.Errorf("server offers PIPELINING %v: client pipelined %v", advertise, got)
		}
		if body := <-srv.delivered; !strings.Contains(body, "Message-ID: <abc123@lojal.example>") {
			t.Errorf("advertise %v: delivered %q", advertise, body)
		}
	}
}

// TestHandOverOrder: Confirm and HandOver both run while the server holds
// the whole message but before the final "."; the wait HandOver returns
// runs once the server has answered.
func TestHandOverOrder(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr})
	env := envelope()
	var order []string
	env.Confirm = func() error { order = append(order, fmt.Sprintf("confirm %d", c.Count())); return nil }
	env.HandOver = func() (func() error, error) {
		order = append(order, fmt.Sprintf("hand over %d", c.Count()))
		return func() error { order = append(order, fmt.Sprintf("wait %d", c.Count())); return nil }, nil
	}
	if _, err := e.Send(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if want := []string{"confirm 0", "hand over 0", "wait 1"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	// A failed Confirm abandons the message before any hand-over.
	order = nil
	env.Confirm = func() error { return io.ErrUnexpectedEOF }
	if _, err := e.Send(context.Background(), env); err == nil || len(order) != 0 || c.Count() != 1 {
		t.Fatalf("failed confirm: %v, order %v, %d delivered", err, order, c.Count())
	}
	// A refused hand-over does the same: no ".", nothing delivered, and
	// an error that is neither uncertain nor permanent (a retry sends).
	env.Confirm = nil
	env.HandOver = func() (func() error, error) { return nil, io.ErrUnexpectedEOF }
	_, err := e.Send(context.Background(), env)
	if _, perm := IsPermanent(err); err == nil || IsUncertain(err) || perm || c.Count() != 1 {
		t.Fatalf("refused hand-over: %v, %d delivered", err, c.Count())
	}
}
