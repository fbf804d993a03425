package report

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/store"
)

func TestJourneyRows(t *testing.T) {
	t.Parallel()
	rows := JourneyRows([]store.JourneyStats{
		{JourneyID: "welcome", Treated: store.JourneyGroup{Entrants: 70, Goals: 56}, HeldOut: store.JourneyGroup{Entrants: 80, Goals: 48},
			Messages: 140, Unsubscribes: 7, Complaints: 1},
		{JourneyID: "plain", Treated: store.JourneyGroup{Entrants: 10, Goals: 2}, Messages: 0},
	})
	w := rows[0]
	// 80 of 150 held out; 140 messages to 70 treated; 7 and 1 per 140
	// messages are 50 and 7.14 per 1,000; the uplift is Newcombe's
	// example (a) (TestUpliftByHand).
	if w.Entrants != 150 || math.Abs(w.HeldOutShare-80.0/150) > 1e-12 || w.MessagesPerEntrant != 2 ||
		w.UnsubscribesPerK != 50 || math.Abs(w.ComplaintsPerK-1000.0/140) > 1e-12 {
		t.Errorf("welcome: %+v", w)
	}
	if !w.HasHoldout || math.Abs(w.Uplift.Lo-0.052430) > 1e-5 || math.Abs(w.Uplift.Hi-0.333873) > 1e-5 {
		t.Errorf("welcome uplift %+v", w.Uplift)
	}
	if p := rows[1]; p.HasHoldout || p.Uplift != (Interval{}) || p.UnsubscribesPerK != 0 {
		t.Errorf("plain (no holdout, no messages): %+v", p)
	}
	var buf bytes.Buffer
	if err := JourneysText(&buf, 28, rows); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"welcome", "80 (53.3%)", "80.0%", "60.0%", "+20.0", "[+5.2, +33.4] *", "50.00", "7.14", "no holdout"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b, err := JourneysPNG(rows)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 800 {
		t.Fatalf("png: %v %v", err, img.Bounds())
	}
	if _, err := JourneysPNG(nil); err != nil {
		t.Errorf("empty report: %v", err)
	}
}
