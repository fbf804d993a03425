package main

import (
	"strings"
	"testing"
)

// TestWorkerAndAPIRefuseNonHTTPSPublicURL: every message's unsubscribe and
// preference links are built on the public URL, and RFC 8058 one-click
// unsubscribe must be https; production refuses to start with anything
// else, and says what to do. Development mode (lojal dev, the tests) is
// asked for explicitly.
func TestWorkerAndAPIRefuseNonHTTPSPublicURL(t *testing.T) {
	base := []string{"--database-url=", "--smtp-url", "smtp://127.0.0.1:1", "--link-key", strings.Repeat("k", 32), "--metrics-addr="}
	for _, cmd := range []string{"worker", "api"} {
		for _, tc := range []struct {
			url, dev string
			refused  string
		}{
			{"http://lojal.example", "false", "must be https"},
			{"http://127.0.0.1:8080", "false", "must be https"},
			{"lojal.example/links", "false", "not an absolute URL"},
			{"https://lojal.example/base?x=1", "false", "query"},
			{"https://lojal.example", "false", ""},
			{"http://127.0.0.1:8080", "true", ""},
		} {
			args := append([]string{cmd, "--public-url", tc.url, "--dev-mode=" + tc.dev}, base...)
			out, err := runCLI(t, args...)
			switch {
			case tc.refused == "" && err != nil && strings.Contains(err.Error(), "LOJAL_PUBLIC_URL"):
				t.Errorf("%s with %s (dev %s): refused: %v", cmd, tc.url, tc.dev, err)
			case tc.refused == "" && (err == nil || !strings.Contains(err.Error(), "DATABASE_URL")):
				// Past the check, it stops at the missing database.
				t.Errorf("%s with %s (dev %s): %v, want the missing database\n%s", cmd, tc.url, tc.dev, err, out)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), "LOJAL_PUBLIC_URL") || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("%s with %s: %v, want a refusal naming LOJAL_PUBLIC_URL and %q", cmd, tc.url, err, tc.refused)
			}
		}
	}
}
