package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/smtp"
	"time"

	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/render"
)

// EmailOptions configure the email benchmark.
type EmailOptions struct {
	Conc     int
	Duration time.Duration
	Rounds   int
}

// Email compares channel.Email (go-mail, MIME multipart text + HTML,
// pooled connections) with a bare net/smtp client loop sending a
// pre-formatted message over one connection per client, against the same
// in-process SMTP server.
func Email(ctx context.Context, o EmailOptions) (Result, error) {
	res := Result{Name: fmt.Sprintf("email sends with connection reuse, %d clients", o.Conc), Unit: "messages/s",
		BaseName: "bare net/smtp loop, same message", Target: 0.75}
	log := slog.New(slog.DiscardHandler)
	srv, err := mailcatch.Start(log, mailcatch.Options{Discard: true})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + srv.Addr, From: "lojal <hello@lojal.example>", MaxIdle: o.Conc}, log)
	if err != nil {
		return res, err
	}
	defer email.Close()
	msg := render.Message{Template: "bench", Locale: "nb", Subject: "Din forsikring fornyes 1. april",
		Text: "Hei Kari,\n\nforsikringen din fornyes 1. april. Ingenting endres med mindre du vil.\n\nVennlig hilsen\nlojal\n",
		HTML: "<p>Hei Kari,</p><p>forsikringen din fornyes <strong>1. april</strong>. Ingenting endres med mindre du vil.</p>"}
	ours := func() (float64, error) {
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			key := fmt.Sprintf("bench/%d/%d", w, i)
			_, err := email.Send(ctx, channel.Envelope{Channel: "email", To: "kari@example.no", ToName: "Kari Nordmann",
				MessageID: fmt.Sprintf("%d.%d.%d@lojal.example", time.Now().UnixNano(), w, i), IdempotencyKey: key, Message: msg,
				Unsubscribe: "https://lojal.example/u/token"})
			return err
		})
	}
	// The baseline sends the very bytes lojal would, composed once: the
	// ratio is then lojal's per-message cost (composing MIME, the pool)
	// over bare SMTP transport of the same message.
	m, err := email.Build(channel.Envelope{Channel: "email", To: "kari@example.no", ToName: "Kari Nordmann",
		MessageID: "bench@lojal.example", IdempotencyKey: "bench", Message: msg, Unsubscribe: "https://lojal.example/u/token"})
	if err != nil {
		return res, err
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return res, err
	}
	raw := buf.Bytes()
	base := func() (float64, error) {
		clients := make([]*smtp.Client, o.Conc)
		defer func() {
			for _, c := range clients {
				if c != nil {
					c.Quit() //nolint:errcheck
				}
			}
		}()
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			if clients[w] == nil {
				c, err := smtp.Dial(srv.Addr)
				if err != nil {
					return err
				}
				clients[w] = c
			}
			c := clients[w]
			if err := c.Mail("hello@lojal.example"); err != nil {
				return err
			}
			if err := c.Rcpt("kari@example.no"); err != nil {
				return err
			}
			wc, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := wc.Write(raw); err != nil {
				return err
			}
			return wc.Close()
		})
	}
	res.Ours, res.Baseline, err = alternate(o.Rounds, ours, base)
	return res, err
}
