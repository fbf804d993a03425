package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/store"
)

// EnrolEvent is the internal event that enrols a customer in a scheduled
// journey; ingest dispatches it like any other event.
const EnrolEvent = "lojal.enrol"

// NextFireInput asks when a scheduled journey fires next.
type NextFireInput struct {
	JourneyID string
	After     time.Time
}

// NextFireOutput is the next firing: the time, and the customer time zones
// whose local cron time it is then. Found is false when the journey is no
// longer deployed as a scheduled journey.
type NextFireOutput struct {
	Found bool
	Fire  time.Time
	Zones []string
}

// NextFire computes a scheduled journey's next firing across the time
// zones customers live in: the cron spec is read in each customer's zone.
func (a *Activities) NextFire(ctx context.Context, in NextFireInput) (NextFireOutput, error) {
	j, ok := a.Catalog.Current().Journey(in.JourneyID)
	if !ok || j.Trigger.Cron == "" {
		return NextFireOutput{}, nil
	}
	zones, err := a.Store.CustomerTimezones(ctx)
	if err != nil {
		return NextFireOutput{}, err
	}
	out := NextFireOutput{Found: true}
	for _, z := range zones {
		loc := j.Location
		if z != "" {
			if l, err := journey.LoadLocation(z); err == nil {
				loc = l
			}
		}
		next := j.Trigger.NextFire(in.After, loc)
		switch {
		case next.IsZero():
		case out.Fire.IsZero() || next.Before(out.Fire):
			out.Fire, out.Zones = next, []string{z}
		case next.Equal(out.Fire):
			out.Zones = append(out.Zones, z)
		}
	}
	if out.Fire.IsZero() {
		// No customers yet: look again in a day.
		out.Fire = in.After.Add(24 * time.Hour)
	}
	return out, nil
}

// EnrolInput enrols the audience of a scheduled journey in some zones.
type EnrolInput struct {
	JourneyID string
	Zones     []string
	Fire      time.Time
	// PageSize bounds how many customers are held in memory at once.
	PageSize int
}

// EnrolOutput counts what happened.
type EnrolOutput struct {
	Scanned  int
	Enrolled int
}

// Enrol pages through the customers in the zones (keyset pagination, a page
// at a time, so memory stays flat however many there are), keeps those in
// the journey's audience, and queues an enrolment event for each. The
// event ids are deterministic, so a retried or resumed activity enrols no
// one twice; progress is heartbeated so a retry resumes where it stopped.
func (a *Activities) Enrol(ctx context.Context, in EnrolInput) (EnrolOutput, error) {
	var out EnrolOutput
	j, ok := a.Catalog.Current().Journey(in.JourneyID)
	if !ok {
		return out, nil
	}
	if in.PageSize <= 0 {
		in.PageSize = 1000
	}
	after := ""
	inActivity := activity.IsActivity(ctx)
	if inActivity && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &after, &out)
	}
	for {
		page, err := a.Store.CustomersPage(ctx, in.Zones, after, in.PageSize)
		if err != nil {
			return out, err
		}
		if len(page) == 0 {
			return out, nil
		}
		evs := make([]journey.Event, 0, len(page))
		for _, c := range page {
			out.Scanned++
			if j.Audience != nil {
				vars, err := j.Schema.CustomerVars(c)
				if err != nil {
					continue
				}
				if in, err := j.Audience.Bool(journey.Vars{Customer: vars}); err != nil || !in {
					continue
				}
			}
			evs = append(evs, journey.Event{ID: fmt.Sprintf("enrol:%s:%d:%s", j.ID, in.Fire.Unix(), c.ID), Type: EnrolEvent,
				CustomerID: c.ID, At: in.Fire, Data: map[string]any{"journey": j.ID}})
		}
		if len(evs) > 0 {
			res, err := a.Store.AcceptEventsIn(ctx, store.LaneBulk, evs)
			if err != nil {
				return out, err
			}
			for _, r := range res {
				if r.Status == "accepted" {
					out.Enrolled++
				}
			}
		}
		after = page[len(page)-1].ID
		if inActivity {
			activity.RecordHeartbeat(ctx, after, out)
		}
	}
}

// FiringInput records one firing of a scheduled journey.
type FiringInput struct {
	JourneyID string
	Fire      time.Time
	Zones     []string
	Skipped   bool
	Reason    string
	Scanned   int
	Enrolled  int
}

// RecordFiring records a firing, enrolled or skipped with its reason.
func (a *Activities) RecordFiring(ctx context.Context, in FiringInput) error {
	status := "enrolled"
	if in.Skipped {
		status = "skipped"
	}
	return a.Store.RecordFiring(ctx, store.Firing{JourneyID: in.JourneyID, At: in.Fire, Zones: in.Zones, Status: status,
		Reason: in.Reason, Scanned: in.Scanned, Enrolled: in.Enrolled})
}
