package journey

import (
	"strings"
	"testing"
)

func TestParseRulesTrackLinks(t *testing.T) {
	t.Parallel()
	base := "default_timezone: Europe/Oslo\n"
	r, errs := ParseRules("policy.yaml", []byte(base))
	if len(errs) > 0 || r.TrackLinks {
		t.Fatalf("links tracked without track_links: %v %v", r.TrackLinks, errs)
	}
	r, errs = ParseRules("policy.yaml", []byte(base+"track_links: true\n"))
	if len(errs) > 0 || !r.TrackLinks {
		t.Fatalf("track_links: true: %v %v", r.TrackLinks, errs)
	}
	_, errs = ParseRules("policy.yaml", []byte(base+"track_links: always\n"))
	if !strings.Contains(errs.Error(), "policy.yaml:2:14: track_links") {
		t.Fatalf("track_links: always: %v", errs)
	}
}
