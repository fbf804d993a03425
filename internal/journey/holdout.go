package journey

import (
	"crypto/sha256"
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// HoldoutScale is what a holdout is counted in: basis points, hundredths
// of a percent (holdout: 12.5% is 1250).
const HoldoutScale = 10000

// HeldOut reports whether a customer entering a journey is in its
// holdout: kept out of its sends while the run records what it would have
// sent, so the journey's goal rate can be compared with and without it.
// The draw is a pure function of journey id and customer id: the first 8
// bytes of sha256(journeyID, NUL, customerID) as a big-endian number,
// modulo 10,000, below the holdout in basis points. A customer stays in
// the same group every time they enter the journey, and each journey
// draws its own group. Changing this function would move customers
// between groups: it must never change.
func HeldOut(journeyID, customerID string, basisPoints int) bool {
	if basisPoints <= 0 {
		return false
	}
	h := sha256.New()
	h.Write([]byte(journeyID))
	h.Write([]byte{0})
	h.Write([]byte(customerID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8])%HoldoutScale < uint64(basisPoints)
}

// FormatHoldout writes basis points as a percentage (1250 as "12.5%").
func FormatHoldout(basisPoints int) string {
	return strconv.FormatFloat(float64(basisPoints)/100, 'f', -1, 64) + "%"
}

// holdout decodes a journey's holdout: a percentage from 0% to below
// 100%, with at most two decimals, in basis points.
func (d *decoder) holdout(n *yaml.Node) int {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "holdout must be a percentage, such as holdout: 10%%, not %s", kindName(n))
		return 0
	}
	s := strings.TrimSpace(n.Value)
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		shown := s
		if n.Tag == "!!str" {
			shown = strconv.Quote(s)
		}
		d.errorf(n, "holdout %s: write a percentage, such as holdout: 10%% (the share of entrants kept out of the journey's sends)", shown)
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	switch {
	case err != nil, d.strict && !percentRE.MatchString(strings.TrimSpace(num)):
		// ParseFloat also reads NaN, Inf, exponents and hex.
		d.errorf(n, "holdout %s: write a percentage, such as holdout: 10%%", strconv.Quote(s))
		return 0
	case v < 0:
		d.errorf(n, "holdout %s: must not be negative (0%% or no holdout keeps nobody out)", s)
		return 0
	case v >= 100:
		d.errorf(n, "holdout %s: must be below 100%% (holding out every entrant would send nothing); 10%% is a common choice", s)
		return 0
	}
	if _, frac, ok := strings.Cut(strings.TrimSpace(num), "."); ok && len(frac) > 2 {
		d.errorf(n, "holdout %s: use at most two decimals (such as 12.5%%)", s)
		return 0
	}
	return int(v*100 + 0.5)
}

// percentRE is the number of a holdout percentage: digits and at most
// one decimal point (a sign, which the checks after refuse with reason).
var percentRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// outcome decodes a journey's declared outcome: outcome: { event: ...,
// within: 30d }.
func (d *decoder) outcome(n *yaml.Node, schema *Schema) *OutcomeEvent {
	o := &OutcomeEvent{}
	ok := d.mapping(n, "outcome",
		field{name: "event", required: true, decode: func(_, v *yaml.Node) { o.Event = d.eventType(v, schema, "outcome event") }},
		field{name: "within", required: true, decode: func(_, v *yaml.Node) {
			w, ok := d.duration(v, "outcome within")
			switch {
			case !ok:
			case w <= 0:
				d.errorf(v, "outcome within %s: must be longer than zero (the time after entering in which the event counts)", v.Value)
			case w > MaxOutcomeWindow:
				d.errorf(v, "outcome within %s: at most 365d (runs are kept no longer in the report)", v.Value)
			default:
				o.Within = w
			}
		}})
	if !ok {
		return nil
	}
	return o
}
