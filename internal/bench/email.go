package bench

import (
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
		BaseName: "bare net/smtp client loop", Target: 0.5}
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
	raw := []byte("From: lojal <hello@lojal.example>\r\nTo: Kari Nordmann <kari@example.no>\r\nSubject: Din forsikring fornyes 1. april\r\n" +
		"Message-ID: <bench@lojal.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + msg.Text)
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
