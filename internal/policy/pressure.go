package policy

import (
	"strconv"
	"time"
)

// Adaptive is the adaptive_pressure section of policy.yaml: caps that
// listen. Every run of After consecutive messages the customer let pass
// without engaging (a click on a tracked link, a reply, an answer, a
// journey goal reached) halves every cap again, down to Floor; the first
// engagement restores them in full.
//
//	adaptive_pressure:
//	  halve_after: 3   # ignored messages per halving
//	  floor: 1         # no cap goes below this many messages
//	  grace: 48h       # a message counts as ignored once this old
//
// Ignored messages are counted within the contact window Decide sees
// (Rules.Lookback), so a customer who has heard nothing for that long
// starts afresh.
type Adaptive struct {
	HalveAfter int
	Floor      int
	// Grace is how long a message has to be engaged with before it counts
	// as ignored, so the message sent an hour ago does not count against
	// the customer yet.
	Grace time.Duration
}

// Defaults for adaptive_pressure fields left out.
const (
	DefaultAdaptiveFloor = 1
	DefaultAdaptiveGrace = 48 * time.Hour
)

// pressure is how far the customer's caps are lowered, and why.
type pressure struct {
	ignored int
	since   time.Time
	shift   int
}

// pressure counts the consecutive non-critical messages in window (newest
// first) sent after the customer last engaged and older than the grace.
// Critical messages neither count nor break the run: a security alert says
// nothing about whether marketing is welcome.
func (r Rules) pressure(rel Relationship, window []Contact, key string, now time.Time) pressure {
	a := r.Adaptive
	if a == nil || a.HalveAfter <= 0 {
		return pressure{}
	}
	grace := a.Grace
	if grace <= 0 {
		grace = DefaultAdaptiveGrace
	}
	cutoff := now.Add(-grace)
	var p pressure
	for _, c := range window {
		if !c.At.After(rel.LastEngaged) {
			break
		}
		if c.Critical || c.Key == key || c.At.After(cutoff) {
			continue
		}
		p.ignored++
		p.since = c.At
	}
	p.shift = min(p.ignored/a.HalveAfter, r.floorShift())
	return p
}

// floorShift is the number of halvings that brings every cap to its
// floor; halving further changes nothing, and facts should not claim it.
// A cap at or below the floor is never lowered.
func (r Rules) floorShift() int {
	floor := DefaultAdaptiveFloor
	if r.Adaptive != nil && r.Adaptive.Floor > 0 {
		floor = r.Adaptive.Floor
	}
	n := 0
	for _, c := range r.Caps {
		k := 0
		for m := c.Max; m > floor; m >>= 1 {
			k++
		}
		n = max(n, k)
	}
	return n
}

// effectiveMax is cap c's Max lowered by shift halvings, never below the
// floor (nor above the cap itself when the cap is lower than the floor).
func (r Rules) effectiveMax(c Cap, shift int) int {
	if shift == 0 {
		return c.Max
	}
	floor := DefaultAdaptiveFloor
	if r.Adaptive.Floor > 0 {
		floor = r.Adaptive.Floor
	}
	return max(c.Max>>shift, min(floor, c.Max))
}

// ScaleWord says how far caps are lowered by n halvings: halved,
// quartered, divided by 8.
func ScaleWord(n int) string {
	switch n {
	case 0:
		return "in full"
	case 1:
		return "halved"
	case 2:
		return "quartered"
	}
	return "divided by " + strconv.Itoa(1<<n)
}
