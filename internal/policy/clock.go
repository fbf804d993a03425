package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Clock is a wall-clock time of day, in minutes since midnight.
type Clock int

// ParseClock parses "HH:MM" (24-hour).
func ParseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("time of day %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("time of day %q: want HH:MM between 00:00 and 23:59", s)
	}
	return Clock(hh*60 + mm), nil
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// On returns the instant at clock c on the calendar day of t, in t's
// location. A clock the day does not have (in the spring-forward gap) or
// has twice (in the hour clocks fall back through) is read as time.Date
// reads it: one of the offsets around the change, which may be the earlier
// one; callers that need an instant after t check (EndIfInside).
func (c Clock) On(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, int(c)/60, int(c)%60, 0, 0, t.Location())
}

// NextAtOrAfter returns the first instant at or after t whose wall clock in
// t's location reads c.
func (c Clock) NextAtOrAfter(t time.Time) time.Time {
	at := c.On(t)
	if at.Before(t) {
		y, m, d := t.Date()
		at = c.On(time.Date(y, m, d+1, 12, 0, 0, 0, t.Location()))
	}
	return at
}

func clockOf(t time.Time) Clock { return Clock(t.Hour()*60 + t.Minute()) }

// QuietHours is a nightly window in the customer's local time. Start after
// End means the window spans midnight (21:00-08:00).
type QuietHours struct {
	Start Clock
	End   Clock
}

func (q QuietHours) String() string { return q.Start.String() + "-" + q.End.String() }

// EndIfInside reports whether local (a time in the customer's location) is
// inside the quiet window, and when the window ends.
func (q QuietHours) EndIfInside(local time.Time) (time.Time, bool) {
	c := clockOf(local)
	y, m, d := local.Date()
	today := func(offset int) time.Time {
		return q.End.On(time.Date(y, m, d+offset, 12, 0, 0, 0, local.Location()))
	}
	// sameDay is the end later today. On the night clocks fall back, the
	// hour before the change comes twice and time.Date reads an end in it
	// as its first time: inside the second, that is already past, and the
	// end is the same wall-clock time this far ahead.
	sameDay := func() time.Time {
		if end := today(0); end.After(local) {
			return end
		}
		return local.Add(time.Duration(int(q.End)-int(c))*time.Minute - time.Duration(local.Second())*time.Second -
			time.Duration(local.Nanosecond()))
	}
	switch {
	case q.Start < q.End:
		if c >= q.Start && c < q.End {
			return sameDay(), true
		}
	case q.Start > q.End:
		if c >= q.Start {
			return today(1), true
		}
		if c < q.End {
			return sameDay(), true
		}
	}
	return time.Time{}, false
}

// maxDays bounds a duration written in days or weeks; MaxDuration is the
// same bound, which validation holds every duration to.
const (
	maxDays     = 3660
	MaxDuration = maxDays * 24 * time.Hour
)

// ParseDuration parses durations as journeys write them: "30m", "24h", "7d",
// "2w", or any Go duration ("1h30m"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var d time.Duration
	if unit := s[len(s)-1]; unit == 'd' || unit == 'w' {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want a whole number of days (7d) or weeks (2w)", s)
		}
		day := 24 * time.Hour
		if unit == 'w' {
			// Compared before multiplying: a huge count of weeks
			// wrapped round to a few days, or to a negative gap.
			if n > maxDays/7 {
				return 0, fmt.Errorf("duration %q is longer than ten years", s)
			}
			n *= 7
		}
		if n > maxDays {
			return 0, fmt.Errorf("duration %q is longer than ten years", s)
		}
		d = time.Duration(n) * day
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want forms like 30m, 24h, 7d or 2w", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
	}
	return d, nil
}

// FormatDuration prints d the way journeys write it (7d rather than 168h).
func FormatDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// ZoneAbbrev is the short name of t's zone at t as people read it: CET,
// IST, EDT, or the offset from UTC where the zone has no letters of its
// own (UTC-3 in São Paulo, UTC+8 in Singapore, which Go writes "-03").
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
