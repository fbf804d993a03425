package journey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the journey parser. Nothing may panic
// or hang; every rejection must carry a file position or a file name.
// Seeds: the shipped journeys, the test journey, and malformed variants
// (see also testdata/fuzz/FuzzParse).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../journeys/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(renewal))
	for _, s := range []string{"", "---", "id: [", "steps: *a", "a: &a [*a, *a]", "id: x\nsteps:\n  - id: a\n    goto: a\n",
		strings.Repeat("- ", 200) + "x", "audience: '" + strings.Repeat("(", 300) + "'"} {
		f.Add([]byte(s))
	}
	schema := mustSchema(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			j, errs := Parse("f.yaml", src, schema, time.UTC)
			if j == nil && len(errs) == 0 {
				t.Error("no journey and no error")
			}
			for _, e := range errs {
				if e.File != "f.yaml" {
					t.Errorf("error without file: %v", e)
				}
			}
			if j != nil {
				// A valid journey must also run without panicking.
				_, _, _ = j.Start(Customer{ID: "c", Attributes: map[string]any{"plan": "home"}}, nil, time.Now())
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("parse took more than 10s")
		}
	})
}

func FuzzParseSchemaAndRules(f *testing.F) {
	f.Add([]byte(testSchema))
	if b, err := os.ReadFile("../../journeys/policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if s, errs := ParseSchema("s.yaml", src); s == nil && len(errs) == 0 {
			t.Error("schema: no result and no error")
		}
		if r, errs := ParseRules("p.yaml", src); r == nil && len(errs) == 0 {
			t.Error("rules: no result and no error")
		}
	})
}

func TestHugeAndHostileInputsAreRejected(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t)
	for name, tc := range map[string]struct {
		src  string
		want string
	}{
		"10 MB file":           {renewal + "#" + strings.Repeat("x", 10<<20), "the limit is"},
		"deep flow nesting":    {"id: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000), ""},
		"deep block nesting":   {"id: x\nsteps:\n" + deepBlock(60), "nesting deeper than"},
		"billion laughs":       {"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "anchors and aliases are not supported"},
		"many nodes":           {"id: x\nname: [" + strings.Repeat("1,", 60000) + "1]\n", "too many YAML nodes"},
		"long expression":      {strings.Replace(renewal, `customer.plan in ["home", "car"]`, strings.Repeat("true && ", 400)+"true", 1), "the limit is 2000"},
		"recursive expression": {strings.Replace(renewal, `customer.plan in ["home", "car"]`, strings.Repeat("(", 100)+"true"+strings.Repeat(")", 100), 1), "exceeded"},
	} {
		start := time.Now()
		_, errs := Parse("x.yaml", []byte(tc.src), schema, time.UTC)
		if len(errs) == 0 {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, errs, tc.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %s", name, d)
		}
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat("  ", i+1) + "- a:\n")
	}
	return b.String()
}

// TestCostLimitAtRuntime: the static estimate assumes lists of at most 100
// items; a customer with far more still cannot make an expression run away.
func TestCostLimitAtRuntime(t *testing.T) {
	t.Parallel()
	j := mustParse(t, strings.Replace(renewal, `customer.plan in ["home", "car"]`, `customer.tags.all(a, a != "")`, 1))
	tags := make([]any, 5000)
	for i := range tags {
		tags[i] = "t"
	}
	c := customer("home", "family")
	c.Attributes["tags"] = tags
	_, _, err := j.Start(c, renewalEvent(time.Now()), time.Now())
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("err = %v, want the cost limit", err)
	}
}
