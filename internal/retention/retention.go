// Package retention runs lojal's retention job: a Temporal schedule starts
// the Retain workflow, whose activity (Job.Retain) keeps partitions ahead
// of time and drops what is past its retention (docs/retention.md).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// ScheduleID names the retention job's schedule.
const ScheduleID = "lojal-retention"

// Every is how often the job runs: partitions are created three months
// ahead, so a job that stops for weeks still leaves inserts somewhere to
// go; running often keeps each pass's drops and deletes small.
const Every = 6 * time.Hour

// SettingNames are the settings of each Retention field, for error
// messages.
func SettingNames() map[string]string {
	return map[string]string{"ledger": "LOJAL_RETAIN_LEDGER_DAYS", "events": "LOJAL_RETAIN_EVENTS_DAYS", "runs": "LOJAL_RETAIN_RUNS_DAYS",
		"consent": "LOJAL_RETAIN_CONSENT_DAYS"}
}

// Job is the retention activity.
type Job struct {
	Store     *store.Store
	Retention store.Retention
	// Rules returns the policy in force; a pass checks the retention
	// against it first and refuses to delete anything if it is too short.
	Rules func() policy.Rules
	Log   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Register registers the retention activity on a worker.
func (j *Job) Register(w worker.Registry) {
	w.RegisterActivityWithOptions(j.Retain, activity.RegisterOptions{Name: workflows.RetainActivity})
}

// ErrTooShort marks a pass refused because the retention is shorter than
// the policy in force needs remembered.
var ErrTooShort = errors.New("retention refused")

// Once runs one pass: the check against the policy, then the store's
// pass (partitions, unpartitioned tables, consent evidence). A pass the
// check refuses still creates the months ahead. The
// scheduled activity and `lojal retention` both run it. progress may be
// nil.
func (j *Job) Once(ctx context.Context, progress func(string)) (store.Retained, error) {
	now := time.Now()
	if j.Now != nil {
		now = j.Now()
	}
	if err := j.Retention.Check(j.Rules(), SettingNames()); err != nil {
		// Dropping is refused; the months ahead are still made (that
		// deletes nothing), or at the next month boundary no decision and
		// no event could be written until someone fixed the policy.
		created, perr := j.Store.EnsurePartitions(ctx, now, j.Retention.WithDefaults().Ahead)
		return store.Retained{Created: created}, errors.Join(fmt.Errorf("%w: %w", ErrTooShort, err), perr)
	}
	r, err := j.Store.Retain(ctx, now, j.Retention, progress)
	if err != nil {
		return r, fmt.Errorf("retention: %w", err)
	}
	if j.Log != nil && (len(r.Created)+len(r.Dropped) > 0 || r.Deleted() > 0) {
		j.Log.Info("retention", "created", r.Created, "dropped", r.Dropped, "event_ids", r.EventIDs,
			"push_deliveries", r.PushDeliveries, "schedule_firings", r.Firings, "runs", r.Runs, "holdout_messages", r.HoldoutMessages,
			"engagements", r.Engagements, "conversations", r.Conversations, "replies", r.Replies, "answers", r.Answers,
			"consent_entries", r.Consent)
	}
	return r, nil
}

// Retain runs one pass as an activity, heartbeating between its steps.
func (j *Job) Retain(ctx context.Context, _ workflows.RetainInput) (workflows.RetainOutput, error) {
	r, err := j.Once(ctx, func(step string) {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, step)
		}
	})
	out := workflows.RetainOutput{Created: r.Created, Dropped: r.Dropped, EventIDs: r.EventIDs, PushDeliveries: r.PushDeliveries,
		Firings: r.Firings, Runs: r.Runs, HoldoutMessages: r.HoldoutMessages, Engagements: r.Engagements, Conversations: r.Conversations, Replies: r.Replies,
		Answers: r.Answers, Consent: r.Consent}
	if errors.Is(err, ErrTooShort) {
		return out, temporal.NewNonRetryableApplicationError(err.Error(), workflows.RetentionTooShort, err)
	}
	return out, err
}

// Scheduler creates schedules (client.Client does).
type Scheduler interface {
	ScheduleClient() client.ScheduleClient
}

// EnsureSchedule creates the retention schedule on queue, if missing: a
// pass every Every, none overlapping another, the first at once.
func EnsureSchedule(ctx context.Context, c Scheduler, queue string) error {
	if queue == "" {
		queue = workflows.TaskQueue
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   ScheduleID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: Every}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        ScheduleID,
			Workflow:  workflows.RetainWorkflow,
			Args:      []any{workflows.RetainInput{}},
			TaskQueue: queue,
		},
		Overlap:            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		TriggerImmediately: true,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the retention schedule: %w", err)
	}
	return nil
}
