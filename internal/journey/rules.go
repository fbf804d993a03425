package journey

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// ParseRules parses policy.yaml, the relationship policy every journey
// obeys, and refuses policies that cannot work.
func ParseRules(file string, src []byte) (*policy.Rules, ErrorList) {
	var errs ErrorList
	d := &decoder{file: file, errs: &errs}
	root, ok := d.parseYAML(src)
	if !ok {
		return nil, errs
	}
	r := &policy.Rules{MaxDefer: policy.DefaultMaxDefer}
	var minGapNode, maxDeferNode *yaml.Node
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
			}
		}},
		field{name: "min_gap", decode: func(_, v *yaml.Node) { minGapNode = v; r.MinGap, _ = d.duration(v, "min_gap") }},
		field{name: "caps", decode: func(_, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "caps must be a list")
				return
			}
			for _, item := range v.Content {
				var c policy.Cap
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
					r.Caps = append(r.Caps, c)
				}
			}
		}},
		field{name: "max_defer", decode: func(_, v *yaml.Node) {
			maxDeferNode = v
			var ok bool
			if r.MaxDefer, ok = d.duration(v, "max_defer"); ok && r.MaxDefer < time.Hour {
				d.errorf(v, "max_defer must be at least 1h, or every deferred message is dropped")
			}
		}},
		field{name: "purpose_window", decode: func(_, v *yaml.Node) { r.PurposeWindow, _ = d.duration(v, "purpose_window") }},
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
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}
