package api_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/lojal/lojal/internal/links"
)

// noScriptBrowser is a headless Chromium tab with JavaScript turned off,
// as some customers' mail clients and browsers have it.
func noScriptBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make tools (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})); err != nil {
		t.Fatalf("turn JavaScript off: %v", err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAnswerPageInChromium: a Danish customer clicks an answer in the
// check-in email with JavaScript off; the click records the answer and
// shows the thank-you page in Danish; the text they add is submitted by
// the plain form and kept with the answer. Then the helper opens the
// mark-as-answered link from the forwarded text and presses the button.
func TestAnswerPageInChromium(t *testing.T) {
	t.Parallel()
	f := dialogueSetup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"locale": "nb"`, `"locale": "da"`, 1))
	ctx := noScriptBrowser(t)
	answer := f.srv.URL + f.answerLink("checkin", "c-1", "checkin", "would-leave", time.Now().Add(time.Hour))

	var heading, thanks, sent string
	steps := []func() error{
		func() error { return chromedp.Do(ctx, chromedp.Navigate(answer)) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("textarea#text"))) },
		func() (err error) { heading, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); return err },
		func() (err error) {
			thanks, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#thanks")))
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d: %v", i, err)
		}
	}
	if heading != "Tak" || thanks != "Tak, Kari. Vi har fået dit svar." {
		t.Errorf("page shows %q / %q, want the Danish thank-you", heading, thanks)
	}
	// One click recorded the answer.
	d := f.dialogue(t, "c-1")
	if len(d.Answers) != 1 || d.Answers[0].Answer != "would-leave" {
		t.Fatalf("after the click: %+v", d.Answers)
	}
	steps = []func() error{
		func() error {
			return chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("textarea#text"), "Prisen er for høj; ring til mig"))
		},
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`))) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#sent"))) },
		func() (err error) { sent, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#sent"))); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d (free text): %v", i, err)
		}
	}
	if sent != "Tak. Vi vender tilbage til dig." {
		t.Errorf("after sending: %q", sent)
	}
	d = f.dialogue(t, "c-1")
	if d.Answers[0].FreeText != "Prisen er for høj; ring til mig" || len(d.Conversations) != 1 {
		t.Fatalf("after the text: %+v", d)
	}

	// The helper marks the conversation the text opened answered.
	conv := d.Conversations[0].ID
	mark := f.srv.URL + f.link(t, links.Answered, conv, "", time.Now().Add(time.Hour))
	var done string
	steps = []func() error{
		func() error { return chromedp.Do(ctx, chromedp.Navigate(mark)) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`form button`))) },
		func() error {
			if d := f.dialogue(t, "c-1"); d.Conversations[0].AnsweredAt != nil {
				t.Error("opening the link marked the conversation answered")
			}
			return nil
		},
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form button`))) },
		func() error { return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#done"))) },
		func() (err error) { done, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#done"))); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("browser step %d (mark answered): %v", i, err)
		}
	}
	if done != "Marked as answered. Thank you." {
		t.Errorf("after marking: %q", done)
	}
	if c := f.dialogue(t, "c-1").Conversations[0]; c.AnsweredAt == nil || c.AnsweredBy != "link" {
		t.Fatalf("not marked answered: %+v", c)
	}
}
