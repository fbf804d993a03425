package report

import "math"

// z95 is the standard normal quantile for a two-sided 95% interval.
const z95 = 1.959963984540054

// Interval is an estimate with its 95% confidence interval.
type Interval struct {
	Estimate, Lo, Hi float64
}

// Excludes0 reports whether the interval lies wholly above or below 0.
func (i Interval) Excludes0() bool { return i.Lo > 0 || i.Hi < 0 }

// Wilson is the Wilson score interval for the proportion k/n (95%). It
// stays inside [0, 1] and behaves at 0 and n, where the Wald interval
// collapses to a point. ok is false when n is 0.
func Wilson(k, n int64) (iv Interval, ok bool) {
	if n <= 0 || k < 0 || k > n {
		return Interval{}, false
	}
	p, nf, z2 := float64(k)/float64(n), float64(n), z95*z95
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z95 / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return Interval{Estimate: p, Lo: max(0, center-half), Hi: min(1, center+half)}, true
}

// Uplift is the difference of two proportions, treated k1/n1 less held
// out k2/n2, with Newcombe's hybrid score 95% confidence interval
// (Newcombe 1998, "Interval estimation for the difference between
// independent proportions", method 10), built from each group's Wilson
// interval (l, u):
//
//	lo = d - sqrt((p1-l1)² + (u2-p2)²)
//	hi = d + sqrt((u1-p1)² + (p2-l2)²)
//
// Unlike the Wald interval it keeps its coverage for small groups and
// goal rates near 0 or 1, which holdouts of a few percent produce. ok is
// false when either group is empty.
func Uplift(k1, n1, k2, n2 int64) (iv Interval, ok bool) {
	a, ok1 := Wilson(k1, n1)
	b, ok2 := Wilson(k2, n2)
	if !ok1 || !ok2 {
		return Interval{}, false
	}
	d := a.Estimate - b.Estimate
	return Interval{
		Estimate: d,
		Lo:       d - math.Sqrt(sq(a.Estimate-a.Lo)+sq(b.Hi-b.Estimate)),
		Hi:       d + math.Sqrt(sq(a.Hi-a.Estimate)+sq(b.Estimate-b.Lo)),
	}, true
}

// Wald is the difference of two proportions with the simple Wald 95%
// interval, d ± z·sqrt(p1(1-p1)/n1 + p2(1-p2)/n2). Shown for comparison
// only: it is too narrow for small groups and rates near 0 or 1.
func Wald(k1, n1, k2, n2 int64) (iv Interval, ok bool) {
	if n1 <= 0 || n2 <= 0 {
		return Interval{}, false
	}
	p1, p2 := float64(k1)/float64(n1), float64(k2)/float64(n2)
	d := p1 - p2
	se := math.Sqrt(p1*(1-p1)/float64(n1) + p2*(1-p2)/float64(n2))
	return Interval{Estimate: d, Lo: d - z95*se, Hi: d + z95*se}, true
}

func sq(x float64) float64 { return x * x }
