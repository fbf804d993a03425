package simulate

import (
	"fmt"
	"time"

	"github.com/lojal/lojal/internal/journey"
)

// AudienceCount is how many of a sample of customers one journey's
// audience lets in.
type AudienceCount struct {
	Journey string `json:"journey"`
	// Audience is the condition as written ("" lets everyone in).
	Audience string `json:"audience,omitempty"`
	Matched  int    `json:"matched"`
	Total    int    `json:"total"`
	// Names are the customers let in, as "First Last (id)", or the id.
	Names []string `json:"names,omitempty"`
	// Undecided counts customers the condition could not be decided for
	// without an event (it reads event fields), or whose record the
	// schema refuses; Problems says why, once per reason.
	Undecided int      `json:"undecided,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// Audience counts, for each journey, the customers of a sample its
// audience lets in, as of now.
func Audience(journeys []*journey.Journey, customers []journey.Customer, now time.Time) []AudienceCount {
	out := make([]AudienceCount, 0, len(journeys))
	for _, j := range journeys {
		ac := AudienceCount{Journey: j.ID, Total: len(customers)}
		if j.Audience != nil {
			ac.Audience = j.Audience.Source
		}
		seen := map[string]bool{}
		problem := func(msg string) {
			ac.Undecided++
			if !seen[msg] {
				seen[msg] = true
				ac.Problems = append(ac.Problems, msg)
			}
		}
		for _, c := range customers {
			checked, err := j.Schema.CheckCustomer(c)
			if err != nil {
				problem(fmt.Sprintf("customer %s: %v", c.ID, err))
				continue
			}
			in := true
			if j.Audience != nil {
				cv, err := j.Schema.CustomerVars(checked)
				if err != nil {
					problem(err.Error())
					continue
				}
				in, err = j.Audience.Bool(journey.Vars{Customer: cv, Now: now})
				if err != nil {
					problem("the audience needs the trigger event to decide: " + err.Error())
					continue
				}
			}
			if in {
				ac.Matched++
				ac.Names = append(ac.Names, displayName(checked))
			}
		}
		out = append(out, ac)
	}
	return out
}

func displayName(c journey.Customer) string {
	fn, _ := c.Attributes["first_name"].(string)
	ln, _ := c.Attributes["last_name"].(string)
	switch {
	case fn != "" && ln != "":
		return fmt.Sprintf("%s %s (%s)", fn, ln, c.ID)
	case fn != "":
		return fmt.Sprintf("%s (%s)", fn, c.ID)
	}
	return c.ID
}
