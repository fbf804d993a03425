package activities_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lojal/lojal/activities"
)

// The shipped check-in journey fires at 10:00 local time on the first day
// of each quarter, for customers since before June 2026.
func TestNextFireAcrossTimeZones(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i, tz := range []string{"Europe/Oslo", "America/New_York", "Europe/Stockholm"} {
		c := kari()
		c.ID, c.Timezone = fmt.Sprint("c-", i), tz
		b.customer(t, c)
	}
	after := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	out, err := b.acts.NextFire(ctx, activities.NextFireInput{JourneyID: "checkin", After: after})
	if err != nil {
		t.Fatal(err)
	}
	// 1 January 2027 10:00 CET = 09:00 UTC, for Oslo and Stockholm.
	if !out.Found || !out.Fire.Equal(time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)) || len(out.Zones) != 2 {
		t.Fatalf("first firing %+v", out)
	}
	out, err = b.acts.NextFire(ctx, activities.NextFireInput{JourneyID: "checkin", After: out.Fire})
	if err != nil {
		t.Fatal(err)
	}
	// Then 10:00 in New York, five hours later.
	if !out.Fire.Equal(time.Date(2027, 1, 1, 15, 0, 0, 0, time.UTC)) || len(out.Zones) != 1 || out.Zones[0] != "America/New_York" {
		t.Fatalf("second firing %+v", out)
	}
	if out, _ := b.acts.NextFire(ctx, activities.NextFireInput{JourneyID: "renewal-reminder", After: after}); out.Found {
		t.Fatal("an event-triggered journey has no firings")
	}
}

func TestEnrolPagesThroughTheAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const n = 2500
	for i := range n {
		c := kari()
		c.ID = fmt.Sprintf("c-%05d", i)
		if i%5 == 0 {
			c.Attributes["customer_since"] = "2026-10-01T00:00:00Z" // too new for the check-in
		} else {
			c.Attributes["customer_since"] = "2024-01-01T00:00:00Z"
		}
		if i%2 == 0 {
			c.Timezone = "America/New_York"
		}
		b.customer(t, c)
	}
	fire := time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)
	in := activities.EnrolInput{JourneyID: "checkin", Zones: []string{"UTC"}, Fire: fire, PageSize: 300}
	out, err := b.acts.Enrol(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Odd customers are in UTC (1250); of those, the odd multiples of 5
	// (5, 15, 25 ...: 250) are too new.
	if out.Scanned != 1250 || out.Enrolled != 1000 {
		t.Fatalf("%+v, want 1250 scanned, 1000 enrolled", out)
	}
	again, err := b.acts.Enrol(ctx, in)
	if err != nil || again.Enrolled != 0 {
		t.Fatalf("re-run enrolled %+v %v; want nobody twice", again, err)
	}
	evs, err := b.store.PendingEvents(ctx, 5000)
	if err != nil || len(evs) != 1000 || evs[0].Type != activities.EnrolEvent || evs[0].Data["journey"] != "checkin" {
		t.Fatalf("%d pending events %v", len(evs), err)
	}
}
