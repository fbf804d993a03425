package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
)

// ScheduleWorkflow is the registered name of Workflows.Schedule.
const ScheduleWorkflow = "Schedule"

// ScheduleID is the workflow id of a scheduled journey's scheduler.
func ScheduleID(journeyID string) string { return "schedule/" + journeyID }

// ScheduleInput names the scheduled journey.
type ScheduleInput struct {
	JourneyID string
	// Fired counts enrolments, carried across continue-as-new.
	Fired int
	// Last is the last firing handled, carried across continue-as-new:
	// the next firing is computed from it, never from the clock, so a zone
	// whose time passed during an enrolment or an outage is not skipped.
	Last time.Time `json:",omitzero"`
}

// MaxLateness is how late a firing may still go out after an outage of
// the workers or Temporal. A firing later than this is recorded as
// skipped with the reason (schedule_firings): "on the first of the month
// at 10:00" must not turn into a message at midnight.
const MaxLateness = 6 * time.Hour

// changeScheduleFromLast: the next firing comes from the last one (not
// from the clock), late firings within MaxLateness still go out, later
// ones are recorded as skipped, and every firing is recorded.
const changeScheduleFromLast = "schedule-from-last-firing-v1"

// ScheduleResult says why a scheduler stopped.
type ScheduleResult struct {
	Reason string
	Fired  int
}

// firingsPerRun bounds history before continuing as new.
const firingsPerRun = 50

// Schedule enrols a scheduled journey's audience at every cron firing. The
// cron spec is read in each customer's own time zone, so one firing of
// "0 10 1 */3 *" is 10:00 in Oslo and, hours later, 10:00 in New York:
// each firing enrols the customers of the zones whose local time it is.
// Enrolment pages through Postgres and queues enrolment events; ingest's
// dispatcher starts the customers' runs from them, under the journey's
// reentry rule.
func (w *Workflows) Schedule(ctx workflow.Context, in ScheduleInput) (ScheduleResult, error) {
	var acts *activities.Activities
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry})
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute}})
	fromLast := workflow.GetVersion(ctx, changeScheduleFromLast, workflow.DefaultVersion, 1) == 1
	for i := 0; i < firingsPerRun; i++ {
		after := workflow.Now(ctx)
		if fromLast && !in.Last.IsZero() {
			after = in.Last
		}
		var next activities.NextFireOutput
		if err := workflow.ExecuteActivity(short, acts.NextFire, activities.NextFireInput{JourneyID: in.JourneyID, After: after}).Get(ctx, &next); err != nil {
			return ScheduleResult{}, err
		}
		if !next.Found {
			return ScheduleResult{Reason: "journey is no longer a deployed scheduled journey", Fired: in.Fired}, nil
		}
		if d := next.Fire.Sub(workflow.Now(ctx)); d > 0 {
			if err := workflow.Sleep(ctx, d); err != nil {
				return ScheduleResult{}, err
			}
		}
		if len(next.Zones) == 0 {
			if fromLast {
				in.Last = next.Fire
			}
			continue
		}
		if late := workflow.Now(ctx).Sub(next.Fire); fromLast && late > MaxLateness {
			reason := fmt.Sprintf("%s late (at most %s): the workers or Temporal were away", late.Round(time.Minute), MaxLateness)
			if err := workflow.ExecuteActivity(short, acts.RecordFiring, activities.FiringInput{JourneyID: in.JourneyID, Fire: next.Fire,
				Zones: next.Zones, Skipped: true, Reason: reason}).Get(ctx, nil); err != nil {
				return ScheduleResult{}, err
			}
			workflow.GetLogger(ctx).Warn("scheduled firing skipped", "journey", in.JourneyID, "fire", next.Fire, "zones", next.Zones, "reason", reason)
			in.Last = next.Fire
			continue
		}
		var out activities.EnrolOutput
		if err := workflow.ExecuteActivity(long, acts.Enrol, activities.EnrolInput{JourneyID: in.JourneyID, Zones: next.Zones, Fire: next.Fire}).Get(ctx, &out); err != nil {
			return ScheduleResult{}, err
		}
		in.Fired++
		if fromLast {
			if err := workflow.ExecuteActivity(short, acts.RecordFiring, activities.FiringInput{JourneyID: in.JourneyID, Fire: next.Fire,
				Zones: next.Zones, Scanned: out.Scanned, Enrolled: out.Enrolled}).Get(ctx, nil); err != nil {
				return ScheduleResult{}, err
			}
			in.Last = next.Fire
		}
		workflow.GetLogger(ctx).Info("scheduled journey fired", "journey", in.JourneyID, "zones", next.Zones, "scanned", out.Scanned, "enrolled", out.Enrolled)
	}
	return ScheduleResult{}, workflow.NewContinueAsNewError(ctx, ScheduleWorkflow, in)
}
