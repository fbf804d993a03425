package journey

import (
	"fmt"
	"time"

	"github.com/lojal/lojal/internal/policy"
)

// ZoneName names a customer's zone for people: its IANA name and what it
// is called at t, "Europe/Oslo (CET)", "America/Sao_Paulo (UTC-3)".
func ZoneName(loc *time.Location, t time.Time) string {
	if loc == nil {
		loc = time.UTC
	}
	abbrev := policy.ZoneAbbrev(t.In(loc))
	if loc.String() == abbrev || loc == time.UTC {
		return abbrev
	}
	return fmt.Sprintf("%s (%s)", loc, abbrev)
}

// LocalTime writes t in loc with the zone's short name:
// "Sun 01 Mar 07:00 UTC-3", "Mon 02 Mar 09:00 CET".
func LocalTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	return lt.Format("Mon 02 Jan 15:04") + " " + policy.ZoneAbbrev(lt)
}
