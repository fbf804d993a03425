package journey

import (
	"maps"
	"testing"
)

// TestParseRulesSaysWhereWindowsAreSet: errors found after parsing (a
// retention too short for a window) point at the window's value.
func TestParseRulesSaysWhereWindowsAreSet(t *testing.T) {
	t.Parallel()
	src := "default_timezone: Europe/Oslo\nmin_gap: 24h\ncaps:\n  - { window: 7d, max: 3 }\n  - window: 90d\n    max: 6\nmax_defer: 7d\npurpose_window: 60d\n"
	r, errs := ParseRules("journeys/policy.yaml", []byte(src))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string]string{
		"min_gap":        "journeys/policy.yaml:2:10",
		"caps[0]":        "journeys/policy.yaml:4:5",
		"caps[1]":        "journeys/policy.yaml:5:5",
		"max_defer":      "journeys/policy.yaml:7:12",
		"purpose_window": "journeys/policy.yaml:8:17",
	}
	if !maps.Equal(r.Where, want) {
		t.Errorf("where: %v\nwant %v", r.Where, want)
	}
	r, errs = ParseRules("policy.yaml", []byte("default_timezone: Europe/Oslo\n"))
	if len(errs) > 0 || len(r.Where) != 0 {
		t.Errorf("settings left out have a place: %v %v", r.Where, errs)
	}
}
