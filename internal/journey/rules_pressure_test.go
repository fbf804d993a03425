package journey

import (
	"strings"
	"testing"
	"time"
)

func TestParseRulesAdaptivePressure(t *testing.T) {
	t.Parallel()
	good := `default_timezone: Europe/Oslo
caps:
  - { max: 3, window: 7d }
adaptive_pressure:
  halve_after: 3
  floor: 1
  grace: 36h
`
	r, errs := ParseRules("policy.yaml", []byte(good))
	if len(errs) > 0 {
		t.Fatalf("good policy rejected: %v", errs)
	}
	if a := r.Adaptive; a == nil || a.HalveAfter != 3 || a.Floor != 1 || a.Grace != 36*time.Hour {
		t.Fatalf("parsed %+v", r.Adaptive)
	}
	for name, tc := range map[string]struct{ src, want string }{
		"zero halve_after":    {strings.Replace(good, "halve_after: 3", "halve_after: 0", 1), "policy.yaml:5:16: adaptive_pressure.halve_after must be at least 1"},
		"missing halve_after": {strings.Replace(good, "  halve_after: 3\n", "", 1), "policy.yaml:5:3: adaptive_pressure needs halve_after"},
		"floor zero":          {strings.Replace(good, "floor: 1", "floor: 0", 1), "policy.yaml:6:10: adaptive_pressure.floor must be at least 1"},
		"negative grace":      {strings.Replace(good, "grace: 36h", "grace: -1h", 1), "policy.yaml:7:10: adaptive_pressure.grace"},
		"zero grace":          {strings.Replace(good, "grace: 36h", "grace: 0s", 1), "policy.yaml:7:10: adaptive_pressure.grace must be longer than 0 (how long"},
		"not a number":        {strings.Replace(good, "halve_after: 3", "halve_after: three", 1), "policy.yaml:5:16: adaptive_pressure.halve_after must be a whole number"},
		"unknown field":       {strings.Replace(good, "floor", "flor", 1), `unknown field "flor"`},
	} {
		_, errs := ParseRules("policy.yaml", []byte(tc.src))
		if !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s: errors %q, want %q", name, errs.Error(), tc.want)
		}
	}
}
