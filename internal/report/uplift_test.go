package report

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.5f, want %.5f (±%g)", what, got, want, tol)
	}
}

// TestWilsonByHand: 56 of 70.
//
//	p = 0.8, z = 1.95996, z² = 3.84146, n = 70
//	den    = 1 + 3.84146/70           = 1.054878
//	center = (0.8 + 3.84146/140)/den  = 0.827439/1.054878 = 0.784393
//	half   = 1.95996/1.054878 · sqrt(0.16/70 + 3.84146/19600)
//	       = 1.857999 · sqrt(0.00228571 + 0.00019599)
//	       = 1.857999 · 0.0498168     = 0.092560
//	interval 0.691834 .. 0.876953
func TestWilsonByHand(t *testing.T) {
	t.Parallel()
	iv, ok := Wilson(56, 70)
	if !ok {
		t.Fatal("no interval")
	}
	near(t, "p", iv.Estimate, 0.8, 1e-12)
	near(t, "lo", iv.Lo, 0.691834, 1e-5)
	near(t, "hi", iv.Hi, 0.876953, 1e-5)
	// 0 of 29: p = 0; den = 1 + 3.84146/29 = 1.132464;
	// center = (3.84146/58)/den = 0.066232/1.132464 = 0.058485;
	// half = 1.95996/1.132464 · sqrt(3.84146/3364) = 1.730701 · 0.033793 = 0.058485;
	// interval 0 .. 0.116970.
	iv, _ = Wilson(0, 29)
	near(t, "lo 0/29", iv.Lo, 0, 1e-9)
	near(t, "hi 0/29", iv.Hi, 0.116970, 1e-5)
	if _, ok := Wilson(0, 0); ok {
		t.Error("an empty group has an interval")
	}
}

// TestUpliftByHand: Newcombe's (1998) example (a), 56/70 against 48/80,
// for which the paper gives method 10 as 0.0524 .. 0.3339.
//
//	p1 = 0.8,  Wilson 0.691834 .. 0.876953 (TestWilsonByHand)
//	p2 = 0.6,  n = 80: den = 1.048018, center = (0.6 + 0.024009)/1.048018
//	           = 0.595418, half = 1.870158 · sqrt(0.003 + 0.00015006)
//	           = 1.870158 · 0.056126 = 0.104964: 0.490454 .. 0.700382
//	d  = 0.2
//	lo = 0.2 - sqrt((0.8-0.691834)² + (0.700382-0.6)²)
//	   = 0.2 - sqrt(0.011700 + 0.010077) = 0.2 - 0.147570 = 0.052430
//	hi = 0.2 + sqrt((0.876953-0.8)² + (0.6-0.490454)²)
//	   = 0.2 + sqrt(0.005922 + 0.012000) = 0.2 + 0.133873 = 0.333873
func TestUpliftByHand(t *testing.T) {
	t.Parallel()
	iv, ok := Uplift(56, 70, 48, 80)
	if !ok {
		t.Fatal("no interval")
	}
	near(t, "d", iv.Estimate, 0.2, 1e-12)
	near(t, "lo", iv.Lo, 0.052430, 1e-5)
	near(t, "hi", iv.Hi, 0.333873, 1e-5)
	if !iv.Excludes0() {
		t.Error("0.05..0.33 does not exclude 0")
	}
	// The paper's example (d), 5/56 against 0/29: -0.0381 .. 0.1926; the
	// interval takes in 0 although the held-out group never converted.
	iv, _ = Uplift(5, 56, 0, 29)
	near(t, "lo (d)", iv.Lo, -0.0381, 1e-4)
	near(t, "hi (d)", iv.Hi, 0.1926, 1e-4)
	if iv.Excludes0() {
		t.Error("-0.04..0.19 excludes 0")
	}
	if _, ok := Uplift(1, 10, 0, 0); ok {
		t.Error("an uplift against an empty holdout")
	}
}

// TestWaldByHand: 30/100 against 20/100.
//
//	d  = 0.1
//	se = sqrt(0.3·0.7/100 + 0.2·0.8/100) = sqrt(0.0021 + 0.0016)
//	   = sqrt(0.0037) = 0.0608276
//	ci = 0.1 ± 1.959964 · 0.0608276 = 0.1 ± 0.1192199: -0.0192199 .. 0.2192199
func TestWaldByHand(t *testing.T) {
	t.Parallel()
	iv, _ := Wald(30, 100, 20, 100)
	near(t, "lo", iv.Lo, -0.0192199, 1e-6)
	near(t, "hi", iv.Hi, 0.2192199, 1e-6)
	// Newcombe is a little narrower below and wider above here:
	// -0.0202 .. 0.2167.
	nc, _ := Uplift(30, 100, 20, 100)
	near(t, "newcombe lo", nc.Lo, -0.02025, 1e-4)
	near(t, "newcombe hi", nc.Hi, 0.21673, 1e-4)
}
