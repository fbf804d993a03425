package studio

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStudioInChromium opens the studio in headless Chromium (Debian's
// chromium package, installed by make tools) as a marketer would: the
// journeys page draws every diagram (the screenshot must show the send
// steps' fill), the messages page shows the email in its frame and the
// push notification (both colours in the screenshot), the simulation
// shows its timeline, and editing a journey file reloads the open page.
func TestStudioInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make tools (apt-get install chromium)")
	}
	dir := copyJourneys(t)
	s := newStudio(t, dir)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go s.Watch(wctx, 100*time.Millisecond)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 120*time.Second)
	defer cancel()

	var journeys, messages, timeline []byte
	var diagrams, frames, pushes, rows int
	var title string
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	steps := []func() error{
		func() error {
			return chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(css("svg.journey")))
		},
		func() (err error) {
			diagrams, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.journey g.node").length`))
			return err
		},
		func() (err error) { journeys, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()); return err },
		func() error {
			return chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/templates"), chromedp.WaitVisible(css(".push")))
		},
		func() (err error) {
			frames, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".email iframe").length`))
			return err
		},
		func() (err error) {
			pushes, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".push").length`))
			return err
		},
		func() error {
			return chromedp.Do(ctx, chromedp.ScrollIntoView(css(`[data-template="advisor-follow-up"][data-locale="nb"]`)))
		},
		func() error {
			// Frames render their srcdoc after the page has loaded: take
			// screenshots until the email text shows, for a while.
			deadline := time.Now().Add(15 * time.Second)
			for {
				var err error
				if messages, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
					return err
				}
				if hasColour(decodePNG(t, messages), color.RGBA{R: 0, G: 0, B: 0}, 200) || time.Now().After(deadline) {
					return nil
				}
				time.Sleep(300 * time.Millisecond)
			}
		},
		func() error {
			return chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/simulate"), chromedp.WaitVisible(css("table.timeline")))
		},
		func() (err error) {
			rows, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("table.timeline tr.allow").length`))
			return err
		},
		func() (err error) { timeline, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); return err },
		// The open page reloads itself when a journey file changes.
		func() error {
			return chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(css("svg.journey")))
		},
		func() error {
			edit(t, filepath.Join(dir, "checkin.yaml"), "name: How can we help? What would you miss?", "name: Quarterly check-in")
			future := time.Now().Add(2 * time.Second)
			return os.Chtimes(filepath.Join(dir, "checkin.yaml"), future, future)
		},
		func() error {
			// The page navigates while this waits: ask again until it
			// shows the new name.
			deadline := time.Now().Add(20 * time.Second)
			for {
				ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(function(){var h=document.querySelector("#j-checkin h2");return !!h && h.textContent.startsWith("Quarterly check-in")})()`))
				if err == nil && ok {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the page did not reload: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		},
		func() (err error) { title, err = chromedp.Run(ctx, chromedp.Text(css("#j-checkin h2"))); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d: %v", i, err)
		}
	}
	keep := t.TempDir()
	if d := os.Getenv("LOJAL_SCREENSHOTS"); d != "" {
		keep = d
	}
	for name, b := range map[string][]byte{"studio-journeys.png": journeys, "studio-messages.png": messages, "studio-simulate.png": timeline} {
		if err := os.WriteFile(filepath.Join(keep, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diagrams < 30 {
		t.Errorf("%d diagram nodes on the page", diagrams)
	}
	// Send steps are filled #dbeafe; the first screen shows several.
	if !hasColour(decodePNG(t, journeys), color.RGBA{R: 0xdb, G: 0xea, B: 0xfe}, 5000) {
		t.Error("the journeys screenshot shows no send step")
	}
	if frames < 30 || pushes < 20 {
		t.Errorf("%d email frames and %d push notifications", frames, pushes)
	}
	img := decodePNG(t, messages)
	// The push notification's background (#334155) and the email frame's
	// white page with text in it.
	if !hasColour(img, color.RGBA{R: 0x33, G: 0x41, B: 0x55}, 5000) {
		t.Error("the messages screenshot shows no push notification")
	}
	if !hasColour(img, color.RGBA{R: 0, G: 0, B: 0}, 200) {
		t.Error("the messages screenshot shows no text in the email frames")
	}
	if rows < 3 || !hasColour(decodePNG(t, timeline), color.RGBA{R: 0xff, G: 0xfb, B: 0xeb}, 2000) {
		t.Errorf("the simulation shows %d messages sent and no deferred row", rows)
	}
	if !strings.HasPrefix(title, "Quarterly check-in") {
		t.Errorf("after the edit the page shows %q", title)
	}
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// hasColour reports whether at least n pixels have exactly colour c.
func hasColour(img image.Image, c color.RGBA, n int) bool {
	count := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(bl>>8) == c.B {
				count++
				if count >= n {
					return true
				}
			}
		}
	}
	return false
}
