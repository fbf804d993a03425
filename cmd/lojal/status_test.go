package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/retention"
)

// fakeSchedules answers DescribeSchedule for one schedule id with desc,
// or NotFound when desc is nil.
type fakeSchedules struct {
	client.ScheduleClient
	id   string
	desc *client.ScheduleDescription
}

func (f fakeSchedules) GetHandle(_ context.Context, id string) client.ScheduleHandle {
	return fakeHandle{id: id, f: f}
}

type fakeHandle struct {
	client.ScheduleHandle
	id string
	f  fakeSchedules
}

func (h fakeHandle) Describe(context.Context) (*client.ScheduleDescription, error) {
	if h.id != h.f.id || h.f.desc == nil {
		return nil, serviceerror.NewNotFound("schedule not found")
	}
	return h.f.desc, nil
}

// TestStatusShowsRetentionSchedule: lojal status shows the retention
// job's schedule (how often, paused or not, its last and next pass and
// how the last one ended) and calls a missing or paused schedule, or a
// failed last pass, a problem that says what to do.
func TestStatusShowsRetentionSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	desc := func(paused bool, note string) *client.ScheduleDescription {
		return &client.ScheduleDescription{
			Schedule: client.Schedule{
				Spec:  &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: retention.Every}}},
				State: &client.ScheduleState{Paused: paused, Note: note},
			},
			Info: client.ScheduleInfo{
				RecentActions: []client.ScheduleActionResult{{ActualTime: now.Add(-2 * time.Hour),
					StartWorkflowResult: &client.ScheduleWorkflowExecution{WorkflowID: "lojal-retention-2026-11-23T10:00:00Z", FirstExecutionRunID: "r-1"}}},
				NextActionTimes: []time.Time{now.Add(4 * time.Hour)},
			},
		}
	}
	for _, c := range []struct {
		name     string
		desc     *client.ScheduleDescription
		lastRun  string
		text     []string
		problems []string
	}{
		{name: "running", desc: desc(false, ""), lastRun: "completed",
			text: []string{`Retention \(schedule lojal-retention, every 6h0m0s\)`,
				`state +active, 0 running +last started 2h0m0s ago \(completed\), next in 4h0m0s`}},
		{name: "paused", desc: desc(true, "upgrade"), lastRun: "completed",
			text:     []string{`state +paused: upgrade, 0 running`},
			problems: []string{`the retention schedule lojal-retention is paused \("upgrade"\): .*temporal schedule toggle --schedule-id lojal-retention --unpause.*docs/retention\.md#the-retention-job`}},
		{name: "failed pass", desc: desc(false, ""), lastRun: "failed",
			text:     []string{`last started 2h0m0s ago \(failed\)`},
			problems: []string{`the last retention pass \(workflow lojal-retention-2026-11-23T10:00:00Z\) failed: .*temporal workflow show --workflow-id lojal-retention-2026-11-23T10:00:00Z.*RetentionTooShort.*docs/retention\.md`}},
		{name: "missing", desc: nil,
			text:     []string{`Retention \(schedule lojal-retention\)\n +state +missing or unknown`},
			problems: []string{`the retention schedule lojal-retention does not exist: .*partitions are created ahead.*a worker creates it when it starts.*lojal retention.*docs/retention\.md#the-retention-job`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Status{At: now, Problems: []string{}}
			runState := func(_ context.Context, id, run string) (string, error) {
				if id != "lojal-retention-2026-11-23T10:00:00Z" || run != "r-1" {
					return "", errors.New("no such run")
				}
				return c.lastRun, nil
			}
			s.Retention = retentionStatus(ctx, fakeSchedules{id: retention.ScheduleID, desc: c.desc}, runState, s)
			var b strings.Builder
			printStatus(&b, s)
			for _, re := range c.text {
				if !regexp.MustCompile(re).MatchString(b.String()) {
					t.Errorf("status lacks /%s/:\n%s", re, b.String())
				}
			}
			if len(s.Problems) != len(c.problems) {
				t.Fatalf("problems %q, want %d", s.Problems, len(c.problems))
			}
			for i, re := range c.problems {
				if !regexp.MustCompile(re).MatchString(s.Problems[i]) {
					t.Errorf("problem %q does not match /%s/", s.Problems[i], re)
				}
			}
		})
	}
}

// TestAWorkerTheSDKStoppedIsNotReady: the SDK stops a worker for good on
// errors it will not retry (the namespace gone); the process used to stay
// up and ready, polling nothing, so Kubernetes never restarted it. Its
// readiness now fails, and runWorker's wait ends (halted).
func TestAWorkerTheSDKStoppedIsNotReady(t *testing.T) {
	var w temporalWait
	w.set(true, nil)
	if err := w.err(); err != nil {
		t.Fatalf("a started worker: %v", err)
	}
	select {
	case <-w.waitHalted():
		t.Fatal("halted before any worker stopped")
	default:
	}
	w.stopped(errors.New("namespace lojal not found"))
	w.stopped(errors.New("a second worker's error"))
	select {
	case <-w.waitHalted():
	case <-time.After(time.Second):
		t.Fatal("not halted after a worker was stopped for good")
	}
	if err := w.err(); err == nil || !strings.Contains(err.Error(), "stopped for good: namespace lojal not found") {
		t.Fatalf("readiness after the stop: %v", err)
	}
}
