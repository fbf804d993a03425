package journey

import (
	"testing"
	"time"

	"github.com/lojal/lojal/internal/policy"
)

func TestZoneNamesAreReadable(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for zone, want := range map[string]string{
		"Europe/Oslo":       "Europe/Oslo (CET)",
		"America/Sao_Paulo": "America/Sao_Paulo (UTC-3)",
		"Asia/Kolkata":      "Asia/Kolkata (IST)",
		"Asia/Singapore":    "Asia/Singapore (UTC+8)",
		"Australia/Sydney":  "Australia/Sydney (AEDT)",
		"UTC":               "UTC",
	} {
		loc, err := LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		if got := ZoneName(loc, at); got != want {
			t.Errorf("ZoneName(%s) = %q, want %q", zone, got, want)
		}
	}
	sp, _ := LoadLocation("America/Sao_Paulo")
	if got := LocalTime(at, sp); got != "Sun 01 Mar 07:00 UTC-3" {
		t.Errorf("LocalTime = %q", got)
	}
	if got := policy.UTCOffset(5*3600 + 1800); got != "UTC+5:30" {
		t.Errorf("UTCOffset = %q", got)
	}
}
