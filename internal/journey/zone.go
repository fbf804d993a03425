package journey

import (
	"fmt"
	"time"
)

// ZoneAbbrev is the short name of t's zone at t as people read it: CET,
// IST, EDT, or the offset from UTC where the zone has no letters of its
// own (UTC-3 in São Paulo, UTC+8 in Singapore; Go prints those "-03").
func ZoneAbbrev(t time.Time) string {
	name, offset := t.Zone()
	if name != "" && name[0] != '+' && name[0] != '-' {
		return name
	}
	return UTCOffset(offset)
}

// UTCOffset writes an offset in seconds as UTC+1, UTC-3, UTC+5:30.
func UTCOffset(seconds int) string {
	sign := "+"
	if seconds < 0 {
		sign, seconds = "-", -seconds
	}
	h, m := seconds/3600, seconds%3600/60
	if m != 0 {
		return fmt.Sprintf("UTC%s%d:%02d", sign, h, m)
	}
	return fmt.Sprintf("UTC%s%d", sign, h)
}

// ZoneName names a customer's zone for people: its IANA name and what it
// is called at t, "Europe/Oslo (CET)", "America/Sao_Paulo (UTC-3)".
func ZoneName(loc *time.Location, t time.Time) string {
	if loc == nil {
		loc = time.UTC
	}
	abbrev := ZoneAbbrev(t.In(loc))
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
	return lt.Format("Mon 02 Jan 15:04") + " " + ZoneAbbrev(lt)
}
