package activities_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/store"
)

// TestHelperWebhookURLNeverShows: a customer's own helper webhook carries
// its secret in the URL; forwarding a reply to it, whether it fails, is
// refused or succeeds, never writes that secret into the activity's
// error (Temporal history), its result or the log.
func TestHelperWebhookURLNeverShows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var logs bytes.Buffer
	b.acts.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.acts.Webhooks = channel.NewWebhook(&channel.Egress{AllowLoopback: true}, 2*time.Second)
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) }))
	t.Cleanup(srv.Close)
	const secret = "/hooks/T0KEN?key=s3cr3t"
	c := kari()
	c.Attributes["helper_webhook"] = srv.URL + secret
	b.customer(t, c)
	ctx := context.Background()
	if _, err := b.store.RecordReply(ctx, store.Reply{ID: "r-1", CustomerID: "c-1", From: "kari@example.no", FromCustomer: true,
		Source: "reply", Subject: "Re: hei", Body: "Ring meg", At: time.Now()}, "conv-1", "feedback", "customer"); err != nil {
		t.Fatal(err)
	}
	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, "T0KEN") || strings.Contains(s, "s3cr3t") {
			t.Errorf("%s shows the webhook's secret: %s", what, s)
		}
	}
	for _, tc := range []struct {
		status       int
		nonRetryable bool
	}{{503, false}, {404, true}} {
		status.Store(int32(tc.status))
		_, err := b.acts.ForwardReply(ctx, activities.ForwardReplyInput{ReplyID: "r-1"})
		if err == nil {
			t.Fatalf("%d: forwarded", tc.status)
		}
		check("the error", err.Error())
		var app *temporal.ApplicationError
		if nr := asApp(err, &app) && app.NonRetryable(); nr != tc.nonRetryable {
			t.Errorf("%d: non-retryable %v, want %v: %v", tc.status, nr, tc.nonRetryable, err)
		}
	}
	status.Store(200)
	out, err := b.acts.ForwardReply(ctx, activities.ForwardReplyInput{ReplyID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	check("the result", out.Webhook)
	if out.Webhook != srv.URL+"/…" {
		t.Errorf("result names %q, want the host only", out.Webhook)
	}
	// Nor does the log.
	check("the log", logs.String())
}

// TestHelperWebhookToInternalAddressIsRefused: a helper_webhook on a
// customer record that points at the worker's own network is refused
// for good (no retries for a day), and nothing is dialled.
func TestHelperWebhookToInternalAddressIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Webhooks = channel.NewWebhook(&channel.Egress{Resolver: metadataDNS{}}, 2*time.Second)
	c := kari()
	c.Attributes["helper_webhook"] = "https://helpdesk.example/hooks/T0KEN"
	b.customer(t, c)
	ctx := context.Background()
	if _, err := b.store.RecordReply(ctx, store.Reply{ID: "r-1", CustomerID: "c-1", From: "kari@example.no", FromCustomer: true,
		Source: "reply", Body: "Hei", At: time.Now()}, "conv-1", "feedback", "customer"); err != nil {
		t.Fatal(err)
	}
	_, err := b.acts.ForwardReply(ctx, activities.ForwardReplyInput{ReplyID: "r-1"})
	var app *temporal.ApplicationError
	if !asApp(err, &app) || !app.NonRetryable() || !strings.Contains(err.Error(), "169.254.169.254") || strings.Contains(err.Error(), "T0KEN") {
		t.Fatalf("got %v, want a non-retryable refusal naming the address, not the path", err)
	}
}

// metadataDNS answers every lookup with the cloud metadata address; it
// is never dialled.
type metadataDNS struct{}

func (metadataDNS) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return []net.IPAddr{{IP: net.ParseIP("169.254.169.254")}}, nil
}

func asApp(err error, app **temporal.ApplicationError) bool { return errors.As(err, app) }
