package channel

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// This file is a DKIM verifier (RFC 6376 with RFC 8463's Ed25519) written
// for the tests from the RFCs, apart from the library lojal signs with,
// so that a test of lojal's signatures does not ask the signer to mark its
// own work. It knows relaxed and simple canonicalization, rsa-sha256 and
// ed25519-sha256, and nothing else (no l=, no sha1).

// dkimResult is one verified signature.
type dkimResult struct {
	Domain, Selector string
	// Signed is the h= list as written.
	Signed []string
}

var (
	wspRun     = regexp.MustCompile(`[ \t]+`)
	fwsRun     = regexp.MustCompile(`[ \t\r\n]+`)
	errNoDKIM  = errors.New("no DKIM-Signature")
	errBadBody = errors.New("body hash does not match")
)

// verifyDKIM checks every DKIM-Signature of msg; lookup returns the TXT
// record for a selector's name. It fails unless all verify.
func verifyDKIM(msg []byte, lookup func(name string) (string, error)) ([]dkimResult, error) {
	head, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("no blank line after the header")
	}
	fields := splitFields(string(head) + "\r\n")
	var out []dkimResult
	for i, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		if !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			continue
		}
		r, err := verifyOne(fields, i, value, body, lookup)
		if err != nil {
			return out, fmt.Errorf("signature %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errNoDKIM
	}
	return out, nil
}

// splitFields splits a header into its fields, each with its folding and
// final CRLF as received.
func splitFields(head string) []string {
	var fields []string
	for _, line := range strings.SplitAfter(head, "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	return fields
}

func tags(value string) (map[string]string, error) {
	t := map[string]string{}
	for _, spec := range strings.Split(value, ";") {
		spec = strings.TrimSpace(fwsRun.ReplaceAllString(spec, " "))
		if spec == "" {
			continue
		}
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("tag %q has no =", spec)
		}
		k = strings.TrimSpace(k)
		if _, dup := t[k]; dup {
			return nil, fmt.Errorf("tag %s twice", k)
		}
		t[k] = strings.TrimSpace(v)
	}
	return t, nil
}

func verifyOne(fields []string, at int, value string, body []byte, lookup func(string) (string, error)) (dkimResult, error) {
	sig, err := tags(value)
	if err != nil {
		return dkimResult{}, err
	}
	for _, k := range []string{"v", "a", "b", "bh", "d", "h", "s"} {
		if sig[k] == "" {
			return dkimResult{}, fmt.Errorf("tag %s missing", k)
		}
	}
	if sig["v"] != "1" {
		return dkimResult{}, fmt.Errorf("v=%s", sig["v"])
	}
	headerCanon, bodyCanon, _ := strings.Cut(sig["c"], "/")
	if headerCanon == "" {
		headerCanon = "simple"
	}
	if bodyCanon == "" {
		bodyCanon = "simple"
	}
	if _, ok := sig["l"]; ok {
		return dkimResult{}, errors.New("l= (a partial body) is not accepted")
	}
	res := dkimResult{Domain: sig["d"], Selector: sig["s"]}
	for _, h := range strings.Split(sig["h"], ":") {
		res.Signed = append(res.Signed, strings.TrimSpace(fwsRun.ReplaceAllString(h, "")))
	}
	if !containsFold(res.Signed, "From") {
		return res, errors.New("From is not signed")
	}

	// Body hash.
	cb, err := canonBody(body, bodyCanon)
	if err != nil {
		return res, err
	}
	bh := sha256.Sum256(cb)
	if want, _ := base64.StdEncoding.DecodeString(fwsRun.ReplaceAllString(sig["bh"], "")); !bytes.Equal(bh[:], want) {
		return res, errBadBody
	}

	// Header hash: each name in h= takes the last instance not yet used;
	// a name with none left contributes nothing.
	used := map[int]bool{at: true}
	var data strings.Builder
	for _, name := range res.Signed {
		for i := len(fields) - 1; i >= 0; i-- {
			fname, _, _ := strings.Cut(fields[i], ":")
			if used[i] || !strings.EqualFold(strings.TrimSpace(fname), name) {
				continue
			}
			used[i] = true
			c, err := canonHeader(fields[i], headerCanon)
			if err != nil {
				return res, err
			}
			data.WriteString(c)
			break
		}
	}
	self, err := canonHeader(stripB(fields[at]), headerCanon)
	if err != nil {
		return res, err
	}
	data.WriteString(strings.TrimSuffix(self, "\r\n"))
	digest := sha256.Sum256([]byte(data.String()))

	// Key.
	txt, err := lookup(sig["s"] + "._domainkey." + sig["d"])
	if err != nil {
		return res, fmt.Errorf("key lookup: %w", err)
	}
	key, err := tags(txt)
	if err != nil {
		return res, fmt.Errorf("key record: %w", err)
	}
	pubBytes, err := base64.StdEncoding.DecodeString(fwsRun.ReplaceAllString(key["p"], ""))
	if err != nil || len(pubBytes) == 0 {
		return res, fmt.Errorf("key record p=: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(fwsRun.ReplaceAllString(sig["b"], ""))
	if err != nil {
		return res, fmt.Errorf("b=: %w", err)
	}
	switch sig["a"] {
	case "rsa-sha256":
		if k := key["k"]; k != "" && k != "rsa" {
			return res, fmt.Errorf("a=rsa-sha256 with a k=%s key", k)
		}
		parsed, err := x509.ParsePKIXPublicKey(pubBytes)
		if err != nil {
			return res, fmt.Errorf("rsa key: %w", err)
		}
		pub, ok := parsed.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < 1024 {
			return res, errors.New("not an RSA key of 1024 bits or more")
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], b); err != nil {
			return res, fmt.Errorf("rsa signature: %w", err)
		}
	case "ed25519-sha256":
		if key["k"] != "ed25519" || len(pubBytes) != ed25519.PublicKeySize {
			return res, errors.New("not an Ed25519 key")
		}
		// RFC 8463 section 3: Ed25519 signs the SHA-256 hash.
		if !ed25519.Verify(ed25519.PublicKey(pubBytes), digest[:], b) {
			return res, errors.New("ed25519 signature does not verify")
		}
	default:
		return res, fmt.Errorf("a=%s is not supported", sig["a"])
	}
	return res, nil
}

// stripB empties the b= tag's value, keeping everything else as received
// (RFC 6376 section 3.7).
func stripB(field string) string {
	name, value, _ := strings.Cut(field, ":")
	parts := strings.Split(value, ";")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && strings.TrimSpace(fwsRun.ReplaceAllString(k, "")) == "b" {
			parts[i] = k + "="
			if strings.HasSuffix(p, "\r\n") {
				parts[i] += "\r\n"
			}
		}
	}
	return name + ":" + strings.Join(parts, ";")
}

func canonHeader(field, canon string) (string, error) {
	switch canon {
	case "simple":
		return field, nil
	case "relaxed":
		name, value, _ := strings.Cut(field, ":")
		value = strings.ReplaceAll(value, "\r\n", "")
		value = strings.TrimSpace(wspRun.ReplaceAllString(value, " "))
		return strings.ToLower(strings.TrimSpace(name)) + ":" + value + "\r\n", nil
	}
	return "", fmt.Errorf("header canonicalization %q", canon)
}

func canonBody(body []byte, canon string) ([]byte, error) {
	lines := strings.Split(string(body), "\r\n")
	switch canon {
	case "simple":
	case "relaxed":
		for i, l := range lines {
			lines[i] = strings.TrimRight(wspRun.ReplaceAllString(l, " "), " ")
		}
	default:
		return nil, fmt.Errorf("body canonicalization %q", canon)
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if canon == "simple" {
			return []byte("\r\n"), nil
		}
		return nil, nil
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n"), nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// TestVerifierAgainstRFC8463: the verifier passes the signed example of
// RFC 8463 Appendix A.3 (an Ed25519 and an RSA signature made by another
// implementation) and fails it once anything signed is changed.
func TestVerifierAgainstRFC8463(t *testing.T) {
	t.Parallel()
	msg := strings.ReplaceAll(`DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
`, "\n", "\r\n")
	keys := map[string]string{
		"brisbane._domainkey.football.example.com": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"test._domainkey.football.example.com": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR" +
			"iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC" +
			"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3" +
			"Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
	}
	lookup := func(name string) (string, error) {
		if k, ok := keys[name]; ok {
			return k, nil
		}
		return "", fmt.Errorf("no record at %s", name)
	}
	rs, err := verifyDKIM([]byte(msg), lookup)
	if err != nil || len(rs) != 2 {
		t.Fatalf("RFC 8463 example: %+v %v", rs, err)
	}
	if got := strings.Join(rs[1].Signed, ":"); got != "from:to:subject:date:message-id:from:subject:date" {
		t.Errorf("h= %s", got)
	}
	for _, change := range [][2]string{
		{"Subject: Is dinner ready?", "Subject: Is dinner ready?!"},
		{"We lost the game.", "We won the game."},
		{"\r\nFrom: Joe", "\r\nSubject: Lunch?\r\nFrom: Joe"}, // a second Subject, oversigned
	} {
		if _, err := verifyDKIM([]byte(strings.Replace(msg, change[0], change[1], 1)), lookup); err == nil {
			t.Errorf("verifies after %q became %q", change[0], change[1])
		}
	}
}
