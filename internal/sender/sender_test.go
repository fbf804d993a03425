package sender

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/channel"
)

// stubDNS answers from maps; a name in down does not answer at all. It
// never touches the network.
type stubDNS struct {
	txt  map[string][]string
	mx   map[string][]*net.MX
	down bool
}

func (s stubDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if s.down {
		return nil, &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true}
	}
	if t, ok := s.txt[name]; ok {
		return t, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (s stubDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if s.down {
		return nil, &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true}
	}
	if m, ok := s.mx[name]; ok {
		return m, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func testDKIM(t *testing.T) *channel.DKIM {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	d, err := channel.LoadDKIM("lojal.example", "lj1", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func statuses(fs []Finding) map[string]string {
	out := map[string]string{}
	for _, f := range fs {
		out[f.Kind] = f.Status
	}
	return out
}

func TestRecords(t *testing.T) {
	t.Parallel()
	d := testDKIM(t)
	recs, err := Records(Config{From: "lojal <hello@lojal.example>", ReturnPath: "bounces@mail.lojal.example", DKIM: d, Relay: "smtp.relay.example"})
	if err != nil {
		t.Fatal(err)
	}
	dkimTXT, _ := d.Record()
	want := map[string][2]string{
		KindDKIM:  {"lj1._domainkey.lojal.example", dkimTXT},
		KindSPF:   {"mail.lojal.example", "v=spf1 include:<your SMTP relay's SPF domain> -all"},
		KindDMARC: {"_dmarc.lojal.example", "v=DMARC1; p=none; rua=mailto:dmarc-reports@lojal.example"},
		KindMX:    {"mail.lojal.example", "10 <the host where lojal worker listens on LOJAL_BOUNCE_SMTP_ADDR>"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if w := want[r.Kind]; r.Name != w[0] || r.Value != w[1] {
			t.Errorf("%s: %s %q, want %s %q", r.Kind, r.Name, r.Value, w[0], w[1])
		}
	}
	if !strings.HasPrefix(dkimTXT, "v=DKIM1; k=ed25519; p=") || !strings.Contains(recs[1].Note, "smtp.relay.example") {
		t.Errorf("DKIM %q, SPF note %q", dkimTXT, recs[1].Note)
	}
	if _, err := Records(Config{From: "not an address"}); err == nil {
		t.Error("a From that is not an address was accepted")
	}
}

// TestCheck: with a stub resolver, each record is ok, missing or wrong for
// the right reason, and DNS that does not answer is unchecked, not missing.
func TestCheck(t *testing.T) {
	t.Parallel()
	d := testDKIM(t)
	dkimTXT, _ := d.Record()
	cfg := Config{From: "lojal <hello@lojal.example>", ReturnPath: "bounces@lojal.example", DKIM: d}
	good := stubDNS{
		txt: map[string][]string{
			"lj1._domainkey.lojal.example": {dkimTXT},
			"lojal.example":                {"google-site-verification=abc", "v=spf1 include:_spf.relay.example -all"},
			"_dmarc.lojal.example":         {"v=DMARC1; p=none; rua=mailto:dmarc@lojal.example"},
		},
		mx: map[string][]*net.MX{"lojal.example": {{Host: "mx.lojal.example.", Pref: 10}}},
	}
	fs, err := Check(context.Background(), good, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for kind, st := range statuses(fs) {
		if st != StatusOK {
			t.Errorf("all published: %s is %s", kind, st)
		}
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	other, _ := channel.LoadDKIM("lojal.example", "lj1", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	otherTXT, _ := other.Record()
	cases := map[string]struct {
		txt  map[string][]string
		cfg  func(Config) Config
		want map[string]string
	}{
		"nothing published": {txt: map[string][]string{},
			want: map[string]string{KindDKIM: StatusMissing, KindSPF: StatusMissing, KindDMARC: StatusMissing}},
		"another DKIM key, two SPF records, DMARC without reports": {txt: map[string][]string{
			"lj1._domainkey.lojal.example": {otherTXT},
			"lojal.example":                {"v=spf1 -all", "v=spf1 include:x -all"},
			"_dmarc.lojal.example":         {"v=DMARC1; p=none"},
		}, want: map[string]string{KindDKIM: StatusWrong, KindSPF: StatusWrong, KindDMARC: StatusWarning}},
		"SPF lets anyone send, DMARC does not parse": {txt: map[string][]string{
			"lj1._domainkey.lojal.example": {dkimTXT},
			"lojal.example":                {"v=spf1 +all"},
			"_dmarc.lojal.example":         {"v=DMARC1; p=sometimes"},
		}, want: map[string]string{KindDKIM: StatusOK, KindSPF: StatusWrong, KindDMARC: StatusWrong}},
		"DMARC at the parent of a subdomain From": {txt: map[string][]string{
			"lj1._domainkey.lojal.example": {dkimTXT},
			"news.lojal.example":           {"v=spf1 include:x ~all"},
			"_dmarc.lojal.example":         {"v=DMARC1; p=quarantine; rua=mailto:d@lojal.example"},
		}, cfg: func(c Config) Config { c.From, c.ReturnPath = "hello@news.lojal.example", ""; return c },
			want: map[string]string{KindSPF: StatusOK, KindDMARC: StatusOK}},
		"envelope domain not aligned": {txt: map[string][]string{
			"bounce.example":       {"v=spf1 include:x -all"},
			"_dmarc.lojal.example": {"v=DMARC1; p=none; rua=mailto:d@lojal.example"},
		}, cfg: func(c Config) Config { c.ReturnPath = "bounces@bounce.example"; return c },
			want: map[string]string{KindSPF: StatusWarning, KindMX: StatusMissing}},
		"not signing": {txt: good.txt, cfg: func(c Config) Config { c.DKIM = nil; return c },
			want: map[string]string{KindDKIM: StatusMissing}},
	}
	for name, tc := range cases {
		c := cfg
		if tc.cfg != nil {
			c = tc.cfg(cfg)
		}
		fs, err := Check(context.Background(), stubDNS{txt: tc.txt, mx: good.mx}, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := statuses(fs)
		for kind, want := range tc.want {
			if got[kind] != want {
				t.Errorf("%s: %s is %s, want %s (%+v)", name, kind, got[kind], want, fs)
			}
		}
		for _, f := range fs {
			if f.Status != StatusOK && f.Detail == "" {
				t.Errorf("%s: %s is %s with no explanation", name, f.Kind, f.Status)
			}
		}
	}

	fs, err = Check(context.Background(), stubDNS{down: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Status != StatusUnchecked || f.Failed() {
			t.Errorf("DNS down: %s is %s, want unchecked", f.Kind, f.Status)
		}
	}
	var dnsErr *net.DNSError
	if _, err := (stubDNS{down: true}).LookupTXT(context.Background(), "x"); !errors.As(err, &dnsErr) {
		t.Fatal("stub does not fail like net.Resolver")
	}
}
