package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/deploy"
	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/retention"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// Thresholds lojal status holds a deployment to; the alert rules in
// deploy/prometheus use the same (docs/operations.md).
const (
	// statusMaxLag is how long the oldest live event may wait before
	// routing counts as stuck.
	statusMaxLag = 2 * time.Minute
	// statusPollerFresh: a worker polls again at least every minute (a
	// long poll), so a poller not seen for longer has gone.
	statusPollerFresh = 2 * time.Minute
	// statusUncertainWindow is how far back uncertain deliveries count.
	statusUncertainWindow = 24 * time.Hour
)

// Status is the health of a deployment, from Postgres and Temporal.
type Status struct {
	At        time.Time        `json:"at"`
	Events    EventsStatus     `json:"events"`
	Uncertain map[string]int64 `json:"uncertain_24h"`
	Sweeper   *SweeperStatus   `json:"sweeper,omitempty"`
	Retention *RetentionStatus `json:"retention,omitempty"`
	Schedules []ScheduleStatus `json:"schedules"`
	Queues    []QueueStatus    `json:"task_queues"`
	// Problems are what needs a person, each with what to do; none means
	// healthy (exit status 0).
	Problems []string `json:"problems"`
}

// EventsStatus is the event path (store.DispatchStats).
type EventsStatus struct {
	LiveBacklog int64   `json:"live_backlog"`
	BulkBacklog int64   `json:"bulk_backlog"`
	OldestLive  float64 `json:"oldest_live_seconds"`
	DeadLetters int64   `json:"dead_letters"`
}

// SweeperStatus is the sweeper's Temporal schedule.
type SweeperStatus struct {
	Paused     bool      `json:"paused"`
	Note       string    `json:"note,omitempty"`
	Running    int       `json:"running_workflows"`
	LastAction time.Time `json:"last_action,omitzero"`
	NextAction time.Time `json:"next_action,omitzero"`
}

// RetentionStatus is the retention job's Temporal schedule
// (docs/retention.md#the-retention-job).
type RetentionStatus struct {
	Schedule   string    `json:"schedule"`
	Every      string    `json:"every,omitempty"`
	Paused     bool      `json:"paused"`
	Note       string    `json:"note,omitempty"`
	Running    int       `json:"running_workflows"`
	LastAction time.Time `json:"last_action,omitzero"`
	// LastWorkflow is the workflow of the last pass, and LastResult how
	// it stands: running, completed, failed, ... ("unknown" when Temporal
	// no longer says).
	LastWorkflow string    `json:"last_workflow,omitempty"`
	LastResult   string    `json:"last_result,omitempty"`
	NextAction   time.Time `json:"next_action,omitzero"`
}

// ScheduleStatus is a scheduled journey: its next firing (computed as the
// scheduler does, across the customers' zones), its last recorded one and
// whether its scheduler workflow runs.
type ScheduleStatus struct {
	Journey   string        `json:"journey"`
	Cron      string        `json:"cron"`
	Next      time.Time     `json:"next,omitzero"`
	Zones     []string      `json:"zones,omitempty"`
	Last      *store.Firing `json:"last,omitempty"`
	Scheduler string        `json:"scheduler"`
}

// QueueStatus is one task queue of one kind (workflow or activity tasks).
type QueueStatus struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Pollers []Poller `json:"pollers"`
	// Backlog and BacklogAge are the server's estimates (when it gives
	// them).
	Backlog    int64   `json:"backlog"`
	BacklogAge float64 `json:"backlog_age_seconds"`
	// RateLimit is the rate the server holds the queue to (send queues,
	// LOJAL_EMAIL_RATE); 0: none.
	RateLimit float64 `json:"rate_limit,omitempty"`
}

// Poller is a worker polling a queue.
type Poller struct {
	Identity   string    `json:"identity"`
	LastAccess time.Time `json:"last_access"`
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("status", stderr)
	queue := fs.String("task-queue", workflows.TaskQueue, "the journey task queue; its bulk queue is QUEUE-bulk, its send queues QUEUE-email and QUEUE-push")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	quiet := slog.New(slog.DiscardHandler)
	base, err := loadCatalog(cfg.Journeys)
	if err != nil {
		return err
	}
	cat, err := deploy.NewLive(ctx, st, base, quiet)
	if err != nil {
		return err
	}
	var tc client.Client
	tc, terr := dialTemporal(cfg, quiet)
	if terr == nil {
		defer tc.Close()
	}
	s, err := gatherStatus(ctx, st, tc, cfg.TemporalNamespace, cat.Current(), *queue, time.Now())
	if err != nil {
		return err
	}
	if terr != nil {
		s.Problems = append([]string{fmt.Sprintf("Temporal is unreachable (%v): nothing runs; check TEMPORAL_ADDRESS and the Temporal service", terr)}, s.Problems...)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printStatus(stdout, s)
	}
	if len(s.Problems) > 0 {
		return exitError{code: 1}
	}
	return nil
}

// gatherStatus reads a deployment's health; tc nil leaves out what only
// Temporal knows.
func gatherStatus(ctx context.Context, st *store.Store, tc client.Client, namespace string, cat *catalog.Catalog, queue string,
	now time.Time) (*Status, error) {
	s := &Status{At: now.UTC(), Schedules: []ScheduleStatus{}, Queues: []QueueStatus{}, Problems: []string{}}
	ds, err := st.DispatchStats(ctx)
	if err != nil {
		return nil, err
	}
	s.Events = EventsStatus{LiveBacklog: ds.LiveBacklog, BulkBacklog: ds.BulkBacklog, OldestLive: ds.OldestLive.Seconds(), DeadLetters: ds.Dead}
	if ds.OldestLive > statusMaxLag {
		s.problem("the oldest live event has waited %s to be routed: routing is not keeping up (docs/operations.md#lojalnodispatchprogress)",
			ds.OldestLive.Round(time.Second))
	}
	if ds.Dead > 0 {
		s.problem("%d dead-lettered events: `lojal events failed` lists them, then retry or drop each (docs/operations.md#lojaldeadlettersgrowing)", ds.Dead)
	}
	if s.Uncertain, err = st.UncertainSince(ctx, now.Add(-statusUncertainWindow)); err != nil {
		return nil, err
	}
	for _, ch := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Uncertain {
			if !yield(k) {
				return
			}
		}
	}) {
		s.problem("%d %s deliveries uncertain in the last 24 hours: the server may have them; they are never resent (docs/operations.md#lojaluncertaindeliveries)",
			s.Uncertain[ch], ch)
	}
	acts := &activities.Activities{Store: st, Catalog: cat}
	for _, j := range cat.Journeys {
		if j.Trigger.Cron == "" {
			continue
		}
		ss := ScheduleStatus{Journey: j.ID, Cron: j.Trigger.Cron, Scheduler: "unknown"}
		next, err := acts.NextFire(ctx, activities.NextFireInput{JourneyID: j.ID, After: now})
		if err != nil {
			return nil, err
		}
		ss.Next, ss.Zones = next.Fire, next.Zones
		if last, err := st.RecentFirings(ctx, j.ID, 1); err != nil {
			return nil, err
		} else if len(last) > 0 {
			ss.Last = &last[0]
		}
		if tc != nil {
			ss.Scheduler = schedulerState(ctx, tc, workflows.ScheduleID(j.ID))
			if ss.Scheduler != "running" {
				s.problem("the scheduler of %s is %s: its firings do not happen; a worker starts it again within a minute (docs/operations.md#scheduled-journeys)",
					j.ID, ss.Scheduler)
			}
		}
		s.Schedules = append(s.Schedules, ss)
	}
	if tc == nil {
		return s, nil
	}
	s.Sweeper = sweeperStatus(ctx, tc, s)
	s.Retention = retentionStatus(ctx, tc.ScheduleClient(), func(ctx context.Context, id, run string) (string, error) {
		return runState(ctx, tc, id, run)
	}, s)
	queues := []struct {
		name string
		kind enumspb.TaskQueueType
	}{
		{queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW},
		{queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{workflows.BulkQueue(queue), enumspb.TASK_QUEUE_TYPE_WORKFLOW},
		{workflows.BulkQueue(queue), enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{workflows.SendQueue(queue, policy.Email), enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{workflows.SendQueue(queue, policy.Push), enumspb.TASK_QUEUE_TYPE_ACTIVITY},
	}
	for _, q := range queues {
		qs, err := describeQueue(ctx, tc, namespace, q.name, q.kind, now)
		if err != nil {
			s.problem("task queue %s (%s tasks): %v", q.name, qs.Kind, err)
			continue
		}
		s.Queues = append(s.Queues, qs)
		if len(qs.Pollers) == 0 {
			s.problem("no worker polls %s for %s tasks: %s wait until one does; start workers, or see why they stopped (docs/operations.md#workers)",
				q.name, qs.Kind, map[string]string{"workflow": "journeys", "activity": "decisions and messages"}[qs.Kind])
		}
	}
	return s, nil
}

func (s *Status) problem(format string, args ...any) {
	s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
}

func schedulerState(ctx context.Context, tc client.Client, id string) string {
	state, err := runState(ctx, tc, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return "not started"
	case err != nil:
		return "unknown (" + err.Error() + ")"
	}
	return state
}

// runState says how a workflow run stands, as Temporal names it in lower
// case: running, completed, failed, timed_out ...
func runState(ctx context.Context, tc client.Client, id, run string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	desc, err := tc.DescribeWorkflowExecution(ctx, id, run)
	if err != nil {
		return "", err
	}
	return strings.ToLower(strings.TrimPrefix(desc.GetWorkflowExecutionInfo().GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")), nil
}

// describeSchedule describes schedule id. The server answers
// DescribeSchedule by asking its own scheduler workflow, which fails now
// and then while that workflow is busy (starting an action): it asks
// again before giving up.
func describeSchedule(ctx context.Context, sc client.ScheduleClient, id string) (*client.ScheduleDescription, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var nf *serviceerror.NotFound
	for attempt := 1; ; attempt++ {
		desc, err := sc.GetHandle(ctx, id).Describe(ctx)
		if err == nil || errors.As(err, &nf) || attempt == 3 || ctx.Err() != nil {
			return desc, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// retentionStatus describes the retention job's schedule and how its
// last pass ended (runState says how a workflow run stands).
func retentionStatus(ctx context.Context, sc client.ScheduleClient, runState func(ctx context.Context, id, run string) (string, error),
	s *Status) *RetentionStatus {
	desc, err := describeSchedule(ctx, sc, retention.ScheduleID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		s.problem("the retention schedule %s does not exist: no partitions are created ahead and nothing past its retention is removed; "+
			"a worker creates it when it starts, and `lojal retention` runs a pass meanwhile (docs/retention.md#the-retention-job)", retention.ScheduleID)
		return nil
	case err != nil:
		s.problem("the retention schedule %s: %v", retention.ScheduleID, err)
		return nil
	}
	r := &RetentionStatus{Schedule: retention.ScheduleID, Running: len(desc.Info.RunningWorkflows)}
	if st := desc.Schedule.State; st != nil {
		r.Paused, r.Note = st.Paused, st.Note
	}
	if sp := desc.Schedule.Spec; sp != nil && len(sp.Intervals) > 0 {
		r.Every = sp.Intervals[0].Every.String()
	}
	if n := len(desc.Info.RecentActions); n > 0 {
		last := desc.Info.RecentActions[n-1]
		r.LastAction = last.ActualTime
		if wf := last.StartWorkflowResult; wf != nil {
			r.LastWorkflow = wf.WorkflowID
			if r.LastResult, err = runState(ctx, wf.WorkflowID, wf.FirstExecutionRunID); err != nil {
				r.LastResult = "unknown"
			}
		}
	}
	if len(desc.Info.NextActionTimes) > 0 {
		r.NextAction = desc.Info.NextActionTimes[0]
	}
	if r.Paused {
		s.problem("the retention schedule %s is paused (%q): partitions are not created ahead and nothing expires; unpause it with "+
			"`temporal schedule toggle --schedule-id %s --unpause` (docs/retention.md#the-retention-job)", retention.ScheduleID, r.Note, retention.ScheduleID)
	}
	switch r.LastResult {
	case "failed", "terminated", "timed_out":
		s.problem("the last retention pass (workflow %s) %s: `temporal workflow show --workflow-id %s` says why; a RetentionTooShort failure "+
			"means a retention setting is shorter than policy.yaml needs, and the pass deleted nothing (docs/retention.md#the-start-up-check)",
			r.LastWorkflow, strings.ReplaceAll(r.LastResult, "_", " "), r.LastWorkflow)
	}
	return r
}

func sweeperStatus(ctx context.Context, tc client.Client, s *Status) *SweeperStatus {
	desc, err := describeSchedule(ctx, tc.ScheduleClient(), dispatch.SweeperScheduleID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		s.problem("the sweeper schedule %s does not exist: events a replica left behind, retries and dead letters wait; a worker creates it when it starts (docs/operations.md#the-sweeper)",
			dispatch.SweeperScheduleID)
		return nil
	case err != nil:
		s.problem("the sweeper schedule %s: %v", dispatch.SweeperScheduleID, err)
		return nil
	}
	sw := &SweeperStatus{Paused: desc.Schedule.State.Paused, Note: desc.Schedule.State.Note, Running: len(desc.Info.RunningWorkflows)}
	if n := len(desc.Info.RecentActions); n > 0 {
		sw.LastAction = desc.Info.RecentActions[n-1].ActualTime
	}
	if len(desc.Info.NextActionTimes) > 0 {
		sw.NextAction = desc.Info.NextActionTimes[0]
	}
	if sw.Paused {
		s.problem("the sweeper schedule %s is paused (%q): unpause it with `temporal schedule toggle --schedule-id %s --unpause` (docs/operations.md#the-sweeper)",
			dispatch.SweeperScheduleID, sw.Note, dispatch.SweeperScheduleID)
	}
	return sw
}

func describeQueue(ctx context.Context, tc client.Client, namespace, name string, kind enumspb.TaskQueueType, now time.Time) (QueueStatus, error) {
	qs := QueueStatus{Name: name, Kind: strings.ToLower(strings.TrimPrefix(kind.String(), "TASK_QUEUE_TYPE_")), Pollers: []Poller{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := tc.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: name, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: kind,
		ReportStats:   true,
	})
	if err != nil {
		return qs, err
	}
	for _, p := range resp.GetPollers() {
		at := p.GetLastAccessTime().AsTime()
		if now.Sub(at) > statusPollerFresh {
			continue
		}
		qs.Pollers = append(qs.Pollers, Poller{Identity: p.GetIdentity(), LastAccess: at})
	}
	slices.SortFunc(qs.Pollers, func(a, b Poller) int { return strings.Compare(a.Identity, b.Identity) })
	if st := resp.GetStats(); st != nil {
		qs.Backlog = st.GetApproximateBacklogCount()
		qs.BacklogAge = st.GetApproximateBacklogAge().AsDuration().Seconds()
	}
	if rl := resp.GetEffectiveRateLimit(); rl != nil {
		qs.RateLimit = float64(rl.GetRequestsPerSecond())
	}
	return qs, nil
}

func printStatus(w io.Writer, s *Status) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := s.At.Sub(t).Round(time.Second)
		if d < 0 {
			return "in " + (-d).String()
		}
		return d.String() + " ago"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lojal status at %s\n\n", s.At.Format(time.RFC3339))
	fmt.Fprintln(tw, "Events")
	fmt.Fprintf(tw, "  live backlog\t%d\toldest waiting %s\n", s.Events.LiveBacklog, time.Duration(s.Events.OldestLive*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(tw, "  bulk backlog\t%d\t\n", s.Events.BulkBacklog)
	fmt.Fprintf(tw, "  dead letters\t%d\t\n", s.Events.DeadLetters)
	fmt.Fprintln(tw, "Deliveries")
	unc := []string{}
	for _, ch := range []string{policy.Email, policy.Push} {
		unc = append(unc, fmt.Sprintf("%s %d", ch, s.Uncertain[ch]))
	}
	fmt.Fprintf(tw, "  uncertain (24 h)\t%s\t\n", strings.Join(unc, ", "))
	fmt.Fprintln(tw, "Sweeper (schedule "+dispatch.SweeperScheduleID+")")
	switch sw := s.Sweeper; {
	case sw == nil:
		fmt.Fprintln(tw, "  state\tmissing or unknown\t")
	default:
		state := "active"
		if sw.Paused {
			state = "paused: " + sw.Note
		}
		fmt.Fprintf(tw, "  state\t%s, %d running\tlast started %s, next %s\n", state, sw.Running, ago(sw.LastAction), ago(sw.NextAction))
	}
	switch r := s.Retention; {
	case r == nil:
		fmt.Fprintln(tw, "Retention (schedule "+retention.ScheduleID+")")
		fmt.Fprintln(tw, "  state\tmissing or unknown\t")
	default:
		fmt.Fprintf(tw, "Retention (schedule %s, every %s)\n", r.Schedule, r.Every)
		state := "active"
		if r.Paused {
			state = "paused: " + r.Note
		}
		last := ago(r.LastAction)
		if r.LastResult != "" {
			last += " (" + r.LastResult + ")"
		}
		fmt.Fprintf(tw, "  state\t%s, %d running\tlast started %s, next %s\n", state, r.Running, last, ago(r.NextAction))
	}
	if len(s.Schedules) > 0 {
		fmt.Fprintln(tw, "Scheduled journeys")
		for _, sc := range s.Schedules {
			last := "no firing yet"
			if sc.Last != nil {
				last = fmt.Sprintf("last %s (%s, %d enrolled)", sc.Last.At.UTC().Format(time.RFC3339), sc.Last.Status, sc.Last.Enrolled)
			}
			fmt.Fprintf(tw, "  %s\tnext %s (%s), zones %s\t%s; scheduler %s\n", sc.Journey, sc.Next.UTC().Format(time.RFC3339), ago(sc.Next),
				strings.Join(sc.Zones, ", "), last, sc.Scheduler)
		}
	}
	if len(s.Queues) > 0 {
		fmt.Fprintln(tw, "Task queues (workers polling)")
		for _, q := range s.Queues {
			ids := make([]string, len(q.Pollers))
			for i, p := range q.Pollers {
				ids[i] = p.Identity
			}
			extra := fmt.Sprintf("backlog %d", q.Backlog)
			if q.BacklogAge > 0 {
				extra += fmt.Sprintf(" (oldest %s)", time.Duration(q.BacklogAge*float64(time.Second)).Round(time.Second))
			}
			if q.RateLimit > 0 {
				extra += fmt.Sprintf(", rate limit %g/s", q.RateLimit)
			}
			fmt.Fprintf(tw, "  %s %s\t%d pollers\t%s%s\n", q.Name, q.Kind, len(q.Pollers), extra, listed(ids))
		}
	}
	fmt.Fprintln(tw)
	if len(s.Problems) == 0 {
		fmt.Fprintln(tw, "healthy")
	} else {
		fmt.Fprintf(tw, "%d problems:\n", len(s.Problems))
		for _, p := range s.Problems {
			fmt.Fprintf(tw, "  - %s\n", p)
		}
	}
	_ = tw.Flush()
}

func listed(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ": " + strings.Join(ids, ", ")
}
