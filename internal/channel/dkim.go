package channel

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
)

// dkimSigned are the header fields every signature covers: those a
// verifier expects (RFC 6376 section 5.4.1), and List-Unsubscribe with
// List-Unsubscribe-Post, which must be signed for one-click unsubscribe to
// count (RFC 8058 section 4). A field named but absent from a message is
// signed as absent, so it cannot be added in transit.
var dkimSigned = []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Reply-To",
	"List-Unsubscribe", "List-Unsubscribe-Post"}

// dkimOversigned are named a second time (RFC 6376 section 8.15): the
// signature then also covers the absence of a second instance, so a From,
// Subject or unsubscribe address added above lojal's own breaks it
// instead of being shown.
var dkimOversigned = []string{"From", "To", "Subject", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post"}

// DKIM signs outgoing email for one domain and selector (RFC 6376, relaxed
// canonicalization of header and body, SHA-256 with RSA or Ed25519).
type DKIM struct {
	domain   string
	selector string
	key      crypto.Signer
}

// LoadDKIM reads a PEM private key (RSA or Ed25519) and returns a signer
// for domain and selector.
func LoadDKIM(domain, selector string, pemBytes []byte) (*DKIM, error) {
	key, err := gomail.PrivKeyFromPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() < 1024 {
		// Receivers ignore such signatures (RFC 8301 section 3.2).
		return nil, fmt.Errorf("dkim key: an RSA key of %d bits is too short; use 2048 bits (at least 1024)", k.N.BitLen())
	}
	return &DKIM{domain: domain, selector: selector, key: key}, nil
}

// Domain is the signing domain (d=).
func (d *DKIM) Domain() string { return d.domain }

// RecordName is where the public key is published:
// <selector>._domainkey.<domain>.
func (d *DKIM) RecordName() string { return d.selector + "._domainkey." + d.domain }

// Record is the TXT record to publish at RecordName.
func (d *DKIM) Record() (string, error) {
	switch pub := d.key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("dkim public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", fmt.Errorf("dkim public key: unsupported type %T", d.key.Public())
}

// Sign returns msg (header and body, CRLF line ends) with a DKIM-Signature
// field in front.
func (d *DKIM) Sign(msg []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(msg) + 1024)
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: d.domain, Selector: d.selector, Signer: d.key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: append(append([]string{}, dkimSigned...), dkimOversigned...),
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return out.Bytes(), nil
}
