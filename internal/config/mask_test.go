package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"": "",
		"postgres://lojal:s3cret@db:5432/lojal?sslmode=require": "postgres://lojal:xxxxx@db:5432/lojal?sslmode=require",
		"postgres://db/lojal?sslmode=require&password=s3cret":   "postgres://db/lojal?sslmode=require&password=xxxxx",
		"postgres://db/lojal?sslpassword=s3cret&user=lojal":     "postgres://db/lojal?sslpassword=xxxxx&user=lojal",
		"smtp://user:p%40ss@smtp.example:587?tls=starttls":      "smtp://user:xxxxx@smtp.example:587?tls=starttls",
		"https://push.example/send?api_key=AKIA123&app=lojal":   "https://push.example/send?api_key=xxxxx&app=lojal",
		"https://push.example/send?access_token=AKIA123":        "https://push.example/send?access_token=xxxxx",
		"https://AKIA123@push.example/send":                     "https://xxxxx@push.example/send",
		"https://push.example/send#token=AKIA123":               "https://push.example/send#xxxxx",
		"host=db user=lojal password=s3cret dbname=lojal":       "host=db user=lojal password=xxxxx dbname=lojal",
		"host=db password='se cr\\'et' dbname=lojal":            "host=db password=xxxxx dbname=lojal",
		"host=db sslpassword = s3cret":                          "host=db sslpassword=xxxxx",
		"postgres://lojal:s3 cret@db:bad/lojal":                 "********",
		"s3cret-but-not-a-url":                                  "********",
		"smtp://mail.example:25":                                "smtp://mail.example:25",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

type secrets struct {
	DB       string `flag:"db" secret:"url"`
	Provider string `flag:"provider" secret:"url"`
	Key      string `flag:"key" secret:"true"`
	Plain    string `flag:"plain"`
}

// TestRedactorMasksLogLines: every secret the configuration holds, and
// everything shaped like a secret, is masked in every log line, in the
// message and in attributes of any kind.
func TestRedactorMasksLogLines(t *testing.T) {
	t.Parallel()
	cfg := secrets{DB: "host=db user=lojal password=pg-s3cret", Provider: "https://push.example/send?api_key=prov-k3y",
		Key: "link-key-0123456789abcdef0123456789", Plain: "lojal"}
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		opts := &slog.HandlerOptions{ReplaceAttr: NewRedactor(cfg).ReplaceAttr}
		log := slog.New(slog.NewTextHandler(&buf, opts))
		if format == "json" {
			log = slog.New(slog.NewJSONHandler(&buf, opts))
		}
		log.Info("connecting with pg-s3cret", "dsn", cfg.DB)
		log.Warn("push failed", "err", fmt.Errorf("post %s: %w", cfg.Provider, errors.New("timeout")))
		log.Error("smtp", "err", errors.New(`parse "smtp://u:other-pw@smtp.example:bad": invalid port`),
			"url", "https://x.example/?token=tok123&b=1", "signer", cfg.Key, "any", struct{ K string }{cfg.Key})
		log.With("component", "temporal").Info("dial", "target", "postgres://a:b-pw@db/x", "n", 3)
		out := buf.String()
		for _, secret := range []string{"pg-s3cret", "prov-k3y", "other-pw", "tok123", cfg.Key, "b-pw"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: %q in the log:\n%s", format, secret, out)
			}
		}
		for _, kept := range []string{"push failed", "push.example", "timeout", "n=3", `"n":3`} {
			if !strings.Contains(out, kept) && !(format == "json" && kept == "n=3") && !(format == "text" && kept == `"n":3`) {
				t.Errorf("%s: log lost %q:\n%s", format, kept, out)
			}
		}
	}
}

func TestRedactText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`parse "postgres://lojal:pw@db": bad`:           `parse "postgres://xxxxx@db": bad`,
		`GET https://push.example/s?key=abc&x=1 failed`: `GET https://push.example/s?key=xxxxx&x=1 failed`,
		`cannot parse password='a b' host=db`:           `cannot parse password=xxxxx host=db`,
		`token: abc123`:                                 `token: xxxxx`,
		`nothing secret here: user=lojal`:               `nothing secret here: user=lojal`,
	} {
		if got := RedactText(in); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", in, got, want)
		}
	}
}
