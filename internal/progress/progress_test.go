package progress

import (
	"bytes"
	"strings"
	"testing"
)

// TestBarOffATerminal: in a log (not a terminal) the bar prints whole
// lines, not carriage returns, and its last line says where it ended.
func TestBarOffATerminal(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "import", 200)
	b.Add(50, 10) // the first Add draws at once
	b.Add(50, 10) // within five seconds of it: no line
	b.Finish()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(out.String(), "\r") {
		t.Fatalf("want two plain lines, got %q", out.String())
	}
	if !strings.Contains(lines[0], " 25% 10 rows") || !strings.Contains(lines[0], "eta ") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[1], " 50% 20 rows") {
		t.Errorf("last line %q", lines[1])
	}
}

// TestBarStaysInBounds: more done than the total, or no total at all,
// draws a full or empty bar, not a broken one.
func TestBarStaysInBounds(t *testing.T) {
	for _, c := range []struct {
		total, done int64
		want        string
	}{
		{100, 250, "[" + strings.Repeat("=", 30) + "] 100%"},
		{0, 10, "[>" + strings.Repeat(" ", 29) + "]   0%"},
	} {
		b := New(&bytes.Buffer{}, "x", c.total)
		b.done = c.done
		if got := b.String(); !strings.Contains(got, c.want) || strings.Contains(got, "eta") {
			t.Errorf("total %d done %d: %q, want %q and no eta", c.total, c.done, got, c.want)
		}
	}
}
