package bounce

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func parseFile(t *testing.T, name string) (Report, error) {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Parse(f)
}

func TestDSN(t *testing.T) {
	t.Parallel()
	rep, err := parseFile(t, "dsn.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 2 {
		t.Fatalf("recipients %+v", rep.Recipients)
	}
	hard, soft := rep.Recipients[0], rep.Recipients[1]
	if hard.Address != "kari@example.no" || hard.Kind != HardBounce || hard.Status != "5.1.1" || !strings.Contains(hard.Diagnostic, "550") {
		t.Errorf("hard: %+v", hard)
	}
	if soft.Address != "ola@example.no" || soft.Kind != SoftBounce {
		t.Errorf("soft: %+v", soft)
	}
	if rep.MessageID != "5975cf1bba432391c94667f5886225f6@lojal.example" || rep.Key != "journey/renewal-reminder/c-1001/p-9@run/remind#1.1" {
		t.Errorf("original: %q %q", rep.MessageID, rep.Key)
	}
}

func TestComplaint(t *testing.T) {
	t.Parallel()
	rep, err := parseFile(t, "arf.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 1 || rep.Recipients[0].Address != "astrid@example.se" || rep.Recipients[0].Kind != Complaint || rep.MessageID != "abc@lojal.example" {
		t.Fatalf("%+v", rep)
	}
}

func TestNotAReport(t *testing.T) {
	t.Parallel()
	if _, err := parseFile(t, "autoreply.eml"); !errors.Is(err, ErrNotAReport) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse(strings.NewReader("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"dsn.eml", "arf.eml", "autoreply.eml"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Parse(strings.NewReader(string(b)))
		if err == nil && len(rep.Recipients) == 0 {
			t.Fatal("a report without recipients")
		}
	})
}

type suppressions struct {
	mu   sync.Mutex
	got  map[string]string
	fail bool
}

func (s *suppressions) Suppress(_ context.Context, channel, address, reason, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("database down")
	}
	s.got[address] = reason
	return nil
}

func TestSMTPIntake(t *testing.T) {
	t.Parallel()
	sup := &suppressions{got: map[string]string{}}
	in := &Intake{Store: sup, Log: slog.New(slog.DiscardHandler)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go in.ServeSMTP(l) //nolint:errcheck
	t.Cleanup(func() { l.Close() })
	send := func(name string) error {
		b, _ := os.ReadFile("testdata/" + name)
		return smtp.SendMail(l.Addr().String(), nil, "mailer-daemon@mx.example.no", []string{"bounces@lojal.example"}, b)
	}
	for _, n := range []string{"dsn.eml", "arf.eml", "autoreply.eml"} {
		if err := send(n); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	want := map[string]string{"kari@example.no": "hard_bounce", "astrid@example.se": "complaint"}
	if !reflect.DeepEqual(sup.got, want) {
		t.Fatalf("suppressed %v, want %v", sup.got, want)
	}
	sup.fail = true
	if err := send("dsn.eml"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("store failure: %v, want a 451 so the sender retries", err)
	}
}
