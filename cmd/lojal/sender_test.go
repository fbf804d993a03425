package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stubResolver answers from a map and never touches the network.
type stubResolver map[string][]string

func (s stubResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if t, ok := s[name]; ok {
		return t, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (s stubResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if name == "lojal.example" {
		return []*net.MX{{Host: "mx.lojal.example.", Pref: 10}}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TestSenderCheck: lojal sender check prints the records to publish for
// the configured From domain and DKIM key, and says what DNS lacks.
func TestSenderCheck(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"sender", "check", "--no-dns", "--mail-from", "lojal <hello@lojal.example>", "--bounce-address", "bounces@lojal.example",
		"--dkim-key-file", keyFile, "--dkim-selector", "lj1", "--smtp-url", "smtp://smtp.relay.example:587"}
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	for _, want := range []string{"lj1._domainkey.lojal.example", "v=DKIM1; k=rsa; p=", "v=spf1 include:", "_dmarc.lojal.example",
		"v=DMARC1; p=none; rua=mailto:dmarc-reports@lojal.example", "smtp.relay.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "What DNS publishes") {
		t.Error("--no-dns looked records up")
	}

	cfg := defaultConfig()
	cfg.MailFrom, cfg.BounceAddress, cfg.DKIMKeyFile, cfg.DKIMSelector = "hello@lojal.example", "bounces@lojal.example", keyFile, "lj1"
	sc, err := senderConfig(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	dkimTXT, _ := sc.DKIM.Record()
	if dkimTXT != "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub) {
		t.Fatalf("DKIM record %q does not carry the key's public half", dkimTXT)
	}
	dns := stubResolver{"lj1._domainkey.lojal.example": {dkimTXT}, "lojal.example": {"v=spf1 include:_spf.relay.example -all"}}
	var b strings.Builder
	err = senderCheck(context.Background(), &b, sc, dns)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "DMARC") || strings.Contains(err.Error(), "DKIM") {
		t.Fatalf("without DMARC: %v\n%s", err, b.String())
	}
	if !strings.Contains(b.String(), "MISSING  DMARC") || !strings.Contains(b.String(), "ok       DKIM") {
		t.Errorf("findings:\n%s", b.String())
	}
	dns["_dmarc.lojal.example"] = []string{"v=DMARC1; p=none; rua=mailto:dmarc@lojal.example"}
	b.Reset()
	if err := senderCheck(context.Background(), &b, sc, dns); err != nil {
		t.Fatalf("everything published: %v\n%s", err, b.String())
	}
}

// TestUnsignedMailIsSaidAtStart: a worker without a DKIM key sent every
// email unsigned and said nothing; Gmail, Yahoo and Outlook require DKIM
// of bulk senders. It says so at start (not in dev mode, where mail goes
// to the embedded catcher).
func TestUnsignedMailIsSaidAtStart(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	if w := unsignedMailWarning(cfg); !strings.Contains(w, "LOJAL_DKIM_KEY_FILE") || !strings.Contains(w, "lojal sender check") {
		t.Fatalf("warning %q", w)
	}
	cfg.DKIMKeyFile = "/run/dkim.pem"
	if w := unsignedMailWarning(cfg); w != "" {
		t.Errorf("with a key: %q", w)
	}
	cfg.DKIMKeyFile, cfg.DevMode = "", true
	if w := unsignedMailWarning(cfg); w != "" {
		t.Errorf("in dev mode: %q", w)
	}
}
