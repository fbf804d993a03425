// Package progress draws a progress bar for long CLI operations: on a
// terminal it redraws one line; elsewhere (CI logs) it prints a line every
// few seconds.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar tracks done out of total units.
type Bar struct {
	w     io.Writer
	label string
	total int64
	tty   bool
	start time.Time

	mu    sync.Mutex
	done  int64
	items int64
	last  time.Time
}

// New returns a bar writing to w.
func New(w io.Writer, label string, total int64) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Bar{w: w, label: label, total: total, tty: tty, start: time.Now()}
}

// Add records progress: n units (bytes) and k items (rows).
func (b *Bar) Add(n, k int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.items += k
	every := 5 * time.Second
	if b.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(b.last) >= every {
		b.draw(false)
		b.last = time.Now()
	}
}

// Finish draws the final state.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(true)
}

// String renders the bar.
func (b *Bar) String() string {
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(b.done)/float64(b.total), 1)
	}
	const width = 30
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	el := time.Since(b.start)
	rate := float64(b.items) / max(el.Seconds(), 0.001)
	eta := ""
	if frac > 0 && frac < 1 {
		eta = " eta " + (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %d rows, %.0f/s%s", b.label, bar, frac*100, b.items, rate, eta)
}

func (b *Bar) draw(final bool) {
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b)
		if final {
			fmt.Fprintln(b.w)
		}
		return
	}
	fmt.Fprintln(b.w, b.String())
}
