package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type cfg struct {
	URL     string        `flag:"url" env:"TEST_LOJAL_URL" secret:"url"`
	Key     string        `flag:"key" env:"TEST_LOJAL_KEY" secret:"true"`
	Workers int           `flag:"workers" env:"TEST_LOJAL_WORKERS"`
	Wait    time.Duration `flag:"wait" env:"TEST_LOJAL_WAIT"`
	Debug   bool          `flag:"debug" env:"TEST_LOJAL_DEBUG"`
	Rate    float64       `flag:"rate" env:"TEST_LOJAL_RATE"`
}

func TestFlagsBeatEnvBeatDefaults(t *testing.T) {
	t.Setenv("TEST_LOJAL_WORKERS", "4")
	t.Setenv("TEST_LOJAL_WAIT", "3s")
	t.Setenv("TEST_LOJAL_URL", "postgres://u:secret@db/lojal")
	c := cfg{Workers: 1, Wait: time.Second, Key: "default"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Load(fs, []string{"-workers", "8", "-debug"}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Workers != 8 || c.Wait != 3*time.Second || !c.Debug || c.Key != "default" || c.URL != "postgres://u:secret@db/lojal" {
		t.Fatalf("%+v", c)
	}
	out := String(c)
	if strings.Contains(out, "secret") || strings.Contains(out, "default") || !strings.Contains(out, "url=postgres://u:xxxxx@db/lojal") || !strings.Contains(out, "key=********") {
		t.Fatalf("secrets shown:\n%s", out)
	}
	t.Setenv("TEST_LOJAL_WORKERS", "many")
	if err := Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, &cfg{}); err == nil {
		t.Fatal("bad env value accepted")
	}
}

func TestFloatFields(t *testing.T) {
	t.Setenv("TEST_LOJAL_RATE", "14.5")
	var c cfg
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Load(fs, nil, &c); err != nil || c.Rate != 14.5 {
		t.Fatalf("from env: %v %v", c.Rate, err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Load(fs, []string{"-rate", "0.5"}, &c); err != nil || c.Rate != 0.5 {
		t.Fatalf("from a flag: %v %v", c.Rate, err)
	}
	t.Setenv("TEST_LOJAL_RATE", "fast")
	if err := Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, &cfg{}); err == nil {
		t.Fatal("bad rate accepted")
	}
}
