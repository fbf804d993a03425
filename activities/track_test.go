package activities_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/links"
)

// TestComposeTracksLinksForTheMessage: a tracked link in a composed
// message names the customer, the message's ledger key and the
// destination; policy.yaml track_links reaches the renderer.
func TestComposeTracksLinksForTheMessage(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journeys")
	if err := os.CopyFS(dir, os.DirFS("../journeys")); err != nil {
		t.Fatal(err)
	}
	nudge := filepath.Join(dir, "templates", "onboarding-nudge", "en.yaml")
	b, err := os.ReadFile(nudge)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nudge, append(b, []byte("url: https://app.example/setup\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := links.NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := kari()
	c.Locale = "en"
	msg := activities.Message{Template: "onboarding-nudge", Channel: "push", Topic: "service", Customer: c, IdempotencyKey: "journey/x/c-1/nudge#1.1"}
	compose := func() string {
		t.Helper()
		cat, err := catalog.Load(os.DirFS(dir), "journeys")
		if err != nil {
			t.Fatal(err)
		}
		env, err := activities.Compose(cat, signer, msg, noon()())
		if err != nil {
			t.Fatal(err)
		}
		return env.Message.URL
	}
	if u := compose(); u != "https://app.example/setup" {
		t.Fatalf("without track_links the url was rewritten: %q", u)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	p, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policyFile, append(p, []byte("\ntrack_links: true\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	u := compose()
	tok, ok := strings.CutPrefix(u, "https://lojal.example/k/")
	if !ok {
		t.Fatalf("with track_links: %q", u)
	}
	claims, err := signer.VerifyClick(tok, noon()())
	if err != nil || claims.CustomerID != "c-1" || claims.MessageKey != msg.IdempotencyKey || claims.URL != "https://app.example/setup" {
		t.Fatalf("claims %+v %v", claims, err)
	}
}
