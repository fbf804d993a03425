package catalog

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinkOnlyInsideTheRepository: the README and docs/ are what the
// product ships; every relative link must lead to a file in the
// repository, and nothing may point outside it.
func TestDocsLinkOnlyInsideTheRepository(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "shared/journey-format.md") {
			t.Errorf("%s refers to the journey format outside the repository; the reference is docs/journeys.md", f)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs := filepath.Clean(filepath.Join(filepath.Dir(f), target))
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links outside the repository: %s", f, m[1])
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, m[1])
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d links", checked)
	}
}

// TestJourneyReferenceCoversTheFormat: docs/journeys.md names every field
// the parser accepts, so the reference cannot fall behind it.
func TestJourneyReferenceCoversTheFormat(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/journeys.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, name := range []string{
		// journey
		"id", "name", "topic", "priority", "audience", "trigger", "schedule", "segment_entry", "key", "reentry", "goal", "steps",
		// steps
		"wait", "duration", "until", "at_local", "wait_for", "timeout", "on_timeout", "send", "channel", "template", "purpose", "branch", "when", "goto", "exit", "reason",
		// policy
		"default_timezone", "quiet_hours", "min_gap", "caps", "window", "max", "max_defer", "purpose_window", "priority_aging", "critical_counts_toward_caps", "topics", "kind", "product_groups", "basis", "soft_opt_in",
		// schema
		"required", "optional", "list<string>", "timestamp",
		// expressions and templates
		"now", "received", "outcome(", ".Received", ".Links.Unsubscribe", "date", "number", "currency", "default", "upper", "lower", "title",
	} {
		if !strings.Contains(doc, "`"+name) {
			t.Errorf("docs/journeys.md does not mention `%s`", name)
		}
	}
}
