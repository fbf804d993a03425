package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
)

// Reconcile checks up to limit open journey_runs rows, least recently
// checked first, against Temporal, and closes those whose run is no
// longer running: a run that failed, was terminated or timed out records
// no end of its own, and its row would otherwise block reentry and keep
// its events from ever starting a new run. It returns how many it closed.
//
// Routing closes such rows too, the moment an event finds the run gone;
// the reconciler covers runs no event reaches.
func (r *Router) Reconcile(ctx context.Context, minAge time.Duration, limit int) (int, error) {
	rows, err := r.Store.RunsToCheck(ctx, minAge, limit)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	closed := 0
	checked := make([]int64, 0, len(rows))
	for _, row := range rows {
		outcome, open, err := r.judge(ctx, row.WorkflowID, row.RunID, row.EntryID, row.StartedAt)
		if err != nil {
			return closed, err
		}
		checked = append(checked, row.ID)
		if open {
			continue
		}
		ok, err := r.Store.CloseRun(ctx, row.ID, outcome)
		if err != nil {
			return closed, err
		}
		if ok {
			closed++
			r.Log.InfoContext(ctx, "reconciler closed a run that ended without recording it", "workflow_id", row.WorkflowID, "entry", row.EntryID,
				"outcome", outcome)
		}
	}
	r.Metrics.Reconciled(closed)
	return closed, r.Store.MarkRunsChecked(ctx, checked)
}

// judge says whether the run a row records is still running and, if not,
// what Temporal says of it.
func (r *Router) judge(ctx context.Context, workflowID, runID, entry string, started time.Time) (outcome string, open bool, err error) {
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		if runID == "" && r.now().Sub(started) < entryGrace {
			return "", true, nil // its start may still be under way
		}
		return "temporal: not found (past retention, or never started)", false, nil
	case err != nil:
		return "", false, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	ours := sameRun(desc, runID, entry)
	switch {
	case ours && info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "", true, nil
	case ours:
		return "temporal: " + statusName(info.GetStatus()), false, nil
	case runID == "" && (r.now().Sub(started) < entryGrace || info.GetStartTime().AsTime().Before(started)):
		// Its start may still be under way, or it waits, however long,
		// for the earlier run that holds the id to end (its event's
		// retries start it then; ErrPreviousRunFinishing).
		return "", true, nil
	}
	return "temporal: a later run of the same journey and key replaced it", false, nil
}
