package workflows

import (
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
}

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
	for i := 0; i < firingsPerRun; i++ {
		var next activities.NextFireOutput
		if err := workflow.ExecuteActivity(short, acts.NextFire, activities.NextFireInput{JourneyID: in.JourneyID, After: workflow.Now(ctx)}).Get(ctx, &next); err != nil {
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
			continue
		}
		var out activities.EnrolOutput
		if err := workflow.ExecuteActivity(long, acts.Enrol, activities.EnrolInput{JourneyID: in.JourneyID, Zones: next.Zones, Fire: next.Fire}).Get(ctx, &out); err != nil {
			return ScheduleResult{}, err
		}
		in.Fired++
		workflow.GetLogger(ctx).Info("scheduled journey fired", "journey", in.JourneyID, "zones", next.Zones, "scanned", out.Scanned, "enrolled", out.Enrolled)
	}
	return ScheduleResult{}, workflow.NewContinueAsNewError(ctx, ScheduleWorkflow, in)
}
