package journey

import (
	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// adaptivePressureField decodes policy.yaml's adaptive_pressure section
// (see policy.Adaptive):
//
//	adaptive_pressure:
//	  halve_after: 3   # consecutive ignored messages per halving of the caps
//	  floor: 1         # no cap goes below this
//	  grace: 48h       # how old a message must be to count as ignored
func adaptivePressureField(d *decoder, r *policy.Rules) field {
	return field{name: "adaptive_pressure", decode: func(_, v *yaml.Node) {
		a := &policy.Adaptive{Floor: policy.DefaultAdaptiveFloor, Grace: policy.DefaultAdaptiveGrace}
		seen := false
		d.mapping(v, "adaptive_pressure",
			field{name: "halve_after", decode: func(_, v *yaml.Node) {
				seen = true
				if n, ok := d.integer(v, "adaptive_pressure.halve_after"); ok {
					if n < 1 {
						d.errorf(v, "adaptive_pressure.halve_after must be at least 1 (the number of ignored messages that halves the caps)")
					}
					a.HalveAfter = n
				}
			}},
			field{name: "floor", decode: func(_, v *yaml.Node) {
				if n, ok := d.integer(v, "adaptive_pressure.floor"); ok {
					if n < 1 {
						d.errorf(v, "adaptive_pressure.floor must be at least 1, or a customer who stopped reading could never hear from you again")
					}
					a.Floor = n
				}
			}},
			field{name: "grace", decode: func(_, v *yaml.Node) {
				if dur, ok := d.duration(v, "adaptive_pressure.grace"); ok {
					if dur <= 0 {
						d.errorf(v, "adaptive_pressure.grace must be longer than 0 (how long a message may go unanswered before it counts as ignored, such as 48h; leave it out for 48h)")
					}
					a.Grace = dur
				}
			}},
		)
		if !seen && v.Kind == yaml.MappingNode {
			d.errorf(v, "adaptive_pressure needs halve_after: how many ignored messages in a row halve the caps (such as halve_after: 3)")
			return
		}
		r.Adaptive = a
	}}
}
