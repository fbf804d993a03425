package journey

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// ParseRules parses policy.yaml, the relationship policy every journey
// obeys, and refuses policies that cannot work.
func ParseRules(file string, src []byte) (*policy.Rules, ErrorList) {
	var errs ErrorList
	d := &decoder{file: file, errs: &errs, src: src, strict: true}
	root, ok := d.parseYAML(src)
	if !ok {
		return nil, errs
	}
	r := &policy.Rules{MaxDefer: policy.DefaultMaxDefer, Where: map[string]string{}}
	at := func(name string, n *yaml.Node) { r.Where[name] = fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column) }
	var minGapNode, maxDeferNode, quietNode *yaml.Node
	var capMaxNodes []*yaml.Node
	d.mapping(root, "policy",
		field{name: "default_timezone", required: true, decode: func(_, v *yaml.Node) {
			r.Location, _ = d.location(v, "default_timezone")
		}},
		field{name: "quiet_hours", decode: func(_, v *yaml.Node) {
			var q policy.QuietHours
			var startNode *yaml.Node
			okS, okE := false, false
			d.mapping(v, "quiet_hours",
				field{name: "start", required: true, decode: func(_, v *yaml.Node) { startNode = v; q.Start, okS = d.clock(v, "quiet_hours.start") }},
				field{name: "end", required: true, decode: func(_, v *yaml.Node) { q.End, okE = d.clock(v, "quiet_hours.end") }},
			)
			if okS && okE {
				if q.Start == q.End {
					d.errorf(startNode, "quiet_hours: start and end are both %s, which would be quiet for 24 hours (no message could ever go out)", q.Start)
					return
				}
				r.Quiet = &q
				quietNode = startNode
			}
		}},
		field{name: "min_gap", decode: func(_, v *yaml.Node) {
			minGapNode = v
			at("min_gap", v)
			r.MinGap, _ = d.duration(v, "min_gap")
		}},
		field{name: "caps", decode: func(_, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "caps must be a list")
				return
			}
			for _, item := range v.Content {
				var c policy.Cap
				var maxNode *yaml.Node
				ok := true
				d.mapping(item, "cap",
					field{name: "channel", decode: func(_, v *yaml.Node) {
						c.Channel, _ = d.str(v, "cap channel")
						if c.Channel != policy.Email && c.Channel != policy.Push {
							d.errorf(v, "cap channel %q: want email or push (leave it out to count all channels)", c.Channel)
							ok = false
						}
					}},
					field{name: "window", required: true, decode: func(_, v *yaml.Node) {
						var wok bool
						c.Window, wok = d.duration(v, "cap window")
						if wok && c.Window <= 0 {
							d.errorf(v, "cap window must be longer than zero")
							ok = false
						}
						ok = ok && wok
					}},
					field{name: "max", required: true, decode: func(_, v *yaml.Node) {
						maxNode = v
						var mok bool
						c.Max, mok = d.integer(v, "cap max")
						if mok && c.Max < 1 {
							d.errorf(v, "cap max is %d: a cap must allow at least 1 message (remove the journey instead)", c.Max)
							ok = false
						}
						ok = ok && mok
					}},
				)
				if ok && item.Kind == yaml.MappingNode {
					at(fmt.Sprintf("caps[%d]", len(r.Caps)), item)
					r.Caps = append(r.Caps, c)
					capMaxNodes = append(capMaxNodes, maxNode)
				}
			}
		}},
		field{name: "max_defer", decode: func(_, v *yaml.Node) {
			maxDeferNode = v
			at("max_defer", v)
			var ok bool
			if r.MaxDefer, ok = d.duration(v, "max_defer"); ok && r.MaxDefer < time.Hour {
				d.errorf(v, "max_defer must be at least 1h, or every deferred message is dropped")
			}
		}},
		field{name: "purpose_window", decode: func(_, v *yaml.Node) {
			at("purpose_window", v)
			r.PurposeWindow, _ = d.duration(v, "purpose_window")
		}},
		field{name: "critical_counts_toward_caps", decode: func(_, v *yaml.Node) {
			if counts, ok := d.boolean(v, "critical_counts_toward_caps"); ok {
				r.CriticalOutsideCaps = !counts
			}
		}},
		field{name: "track_links", decode: func(_, v *yaml.Node) { r.TrackLinks, _ = d.boolean(v, "track_links") }},
		conversationsField(d, r),
		adaptivePressureField(d, r),
		field{name: "topics", decode: func(_, v *yaml.Node) { r.Topics = d.topics(v) }},
		field{name: "priority_aging", decode: func(_, v *yaml.Node) {
			var ok bool
			if r.AgingStep, ok = d.duration(v, "priority_aging"); ok && r.AgingStep < time.Minute {
				d.errorf(v, "priority_aging must be at least 1m")
			}
		}},
	)
	if r.MinGap > 0 && r.MinGap >= r.MaxDefer {
		n := minGapNode
		if maxDeferNode != nil {
			n = maxDeferNode
		}
		d.errorf(n, "min_gap (%s) must be shorter than max_defer (%s), or a message behind another is always stale",
			policy.FormatDuration(r.MinGap), policy.FormatDuration(r.MaxDefer))
	}
	if r.Quiet != nil {
		checkQuietHours(d, quietNode, *r.Quiet)
	}
	if r.MinGap > 0 {
		for i, c := range r.Caps {
			// Contacts at least min_gap apart fit ceil(window/min_gap)
			// times into a window that excludes its far end.
			fit := int((c.Window + r.MinGap - 1) / r.MinGap)
			if fit < c.Max {
				noun := "messages"
				if fit == 1 {
					noun = "message"
				}
				d.errorf(capMaxNodes[i], "cap %d per %s can never be reached: min_gap %s allows at most %d %s in %s (lower max to %d, or remove the cap)",
					c.Max, policy.FormatDuration(c.Window), policy.FormatDuration(r.MinGap), fit, noun, policy.FormatDuration(c.Window), fit)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// minSendingTime is the least time a day quiet hours must leave for
// messages: with less, every message of the day queues for a sliver.
const minSendingTime = 3 * time.Hour

// checkQuietHours refuses quiet hours that leave almost no time to send,
// and quiet hours written the wrong way round (quiet by day, sending by
// night).
func checkQuietHours(d *decoder, n *yaml.Node, q policy.QuietHours) {
	const day = 24 * 60
	quiet := (int(q.End) - int(q.Start) + day) % day
	sending := time.Duration(day-quiet) * time.Minute
	inside := func(c policy.Clock) bool {
		if q.Start < q.End {
			return c >= q.Start && c < q.End
		}
		return c >= q.Start || c < q.End
	}
	switch {
	case sending < minSendingTime:
		d.errorf(n, "quiet_hours %s leave only %s a day for messages; every message would queue for that window (quiet hours are the customer's night, such as 21:00-08:00)",
			q, policy.FormatDuration(sending))
	case inside(12*60) && !inside(3*60):
		d.errorf(n, "quiet_hours %s are quiet in the day and send at night (did you mean start: %q, end: %q?)", q, q.End.String(), q.Start.String())
	}
}
