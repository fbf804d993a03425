package api_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lojal/lojal/internal/links"
)

// TestPreferenceCentreInChromium opens the preference centre in headless
// Chromium (Debian's chromium package, installed by make tools), checks
// what a customer sees, clicks "unsubscribe from everything", and checks
// both the page and the database. Screenshots are compared against what
// the page must show: the form in the customer's language with the
// primary button's colour, then the confirmation.
func TestPreferenceCentreInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make tools (apt-get install chromium)")
	}
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"locale": "nb"`, `"locale": "sv"`, 1))
	link := f.srv.URL + f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	var heading, greeting string
	var before, after []byte
	steps := []func() error{
		func() error { return chromedp.Do(ctx, chromedp.Navigate(link)) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("form"))) },
		func() (err error) { heading, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); return err },
		func() (err error) {
			greeting, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main > p")))
			return err
		},
		func() (err error) { before, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); return err },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="unsubscribe_all"]`))) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#note"))) },
		func() (err error) { after, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d: %v", i, err)
		}
	}
	if heading != "Vad vi skickar till dig" || !strings.Contains(greeting, "Hej Kari") {
		t.Errorf("page shows %q / %q, want the Swedish page", heading, greeting)
	}
	dir := t.TempDir()
	if keep := os.Getenv("LOJAL_SCREENSHOTS"); keep != "" {
		dir = keep
	}
	for name, b := range map[string][]byte{"preferences.png": before, "unsubscribed.png": after} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := decodePNG(t, before)
	if img.Bounds().Dx() < 700 || img.Bounds().Dy() < 400 {
		t.Errorf("screenshot is %v", img.Bounds())
	}
	if !hasColour(img, color.RGBA{R: 0x2f, G: 0x6f, B: 0xb3, A: 0xff}, 500) {
		t.Error("screenshot lacks the primary button")
	}
	if !hasColour(decodePNG(t, after), color.RGBA{R: 0xee, G: 0xf5, B: 0xee, A: 0xff}, 500) {
		t.Error("second screenshot lacks the confirmation")
	}
	c := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if c["consent"].(map[string]any)["email"] != false || len(list(c["topics_opted_out"])) != 4 {
		t.Fatalf("after unsubscribing from everything: %v", c)
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
