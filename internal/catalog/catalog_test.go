package catalog

import (
	"os"
	"testing"
)

func TestLoadShippedJourneys(t *testing.T) {
	t.Parallel()
	c, err := Load(os.DirFS("../../journeys"), "journeys")
	if err != nil {
		t.Fatalf("shipped journeys do not validate:\n%v", err)
	}
	if len(c.Journeys) < 5 {
		t.Fatalf("got %d journeys, want at least 5", len(c.Journeys))
	}
	for _, j := range c.Journeys {
		for name := range j.Templates() {
			for _, l := range []string{"nb", "sv", "da", "en"} {
				if _, ok := c.Templates.Get(name, l); !ok {
					t.Errorf("journey %s: template %s has no %s locale", j.ID, name, l)
				}
			}
		}
	}
}
