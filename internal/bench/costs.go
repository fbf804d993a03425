package bench

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// Costs is what one journey run costs each tier, measured over a round of
// the journey benchmark (one event, one email per run): the figures
// docs/scaling.md sizes a deployment with.
type Costs struct {
	Runs int
	// HistoryEvents and Actions are per run, averaged over the sampled
	// runs. Actions count what Temporal Cloud bills as actions: the start,
	// signals, activities scheduled, timers and local-activity or
	// side-effect markers (version markers are not counted).
	HistoryEvents, Actions float64
	// RowWrites are rows inserted, updated or deleted in lojal's tables per
	// message, WALBytes the write-ahead log written per message, and
	// Commits the transactions committed per message.
	RowWrites, WALBytes, Commits float64
	// ByTable breaks RowWrites down, largest first.
	ByTable []TableWrites
}

// TableWrites are one table's row writes per message.
type TableWrites struct {
	Table  string
	Writes float64
}

type pgCounters struct {
	tables  map[string]int64
	wal     int64
	commits int64
}

func readPGCounters(ctx context.Context, pool *pgxpool.Pool, schema string) (pgCounters, error) {
	c := pgCounters{tables: map[string]int64{}}
	// Counters reach the shared statistics when a backend goes idle, at
	// most a second late: clear this backend's pending ones first.
	if _, err := pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return c, err
	}
	rows, err := pool.Query(ctx, `SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE schemaname = $1`, schema)
	if err != nil {
		return c, fmt.Errorf("table counters: %w", err)
	}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return c, err
		}
		c.tables[name] = n
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	err = pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, xact_commit FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&c.wal, &c.commits)
	return c, err
}

func (c *Costs) addPG(before, after pgCounters, messages int) {
	m := float64(messages)
	var total int64
	for name, n := range after.tables {
		d := n - before.tables[name]
		if d > 0 {
			c.ByTable = append(c.ByTable, TableWrites{Table: name, Writes: float64(d) / m})
			total += d
		}
	}
	slices.SortFunc(c.ByTable, func(a, b TableWrites) int {
		switch {
		case a.Writes > b.Writes:
			return -1
		case a.Writes < b.Writes:
			return 1
		}
		return 0
	})
	c.RowWrites = float64(total) / m
	c.WALBytes = float64(after.wal-before.wal) / m
	c.Commits = float64(after.commits-before.commits) / m
}

// addHistories counts history events and actions of the runs.
func (c *Costs) addHistories(ctx context.Context, tc client.Client, workflowIDs []string) error {
	var events, actions int
	for _, id := range workflowIDs {
		iter := tc.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				return fmt.Errorf("history of %s: %w", id, err)
			}
			events++
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
				enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_TIMER_STARTED,
				enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
				enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
				actions++
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				if ev.GetMarkerRecordedEventAttributes().GetMarkerName() != "Version" {
					actions++
				}
			}
		}
	}
	c.Runs = len(workflowIDs)
	c.HistoryEvents = float64(events) / float64(len(workflowIDs))
	c.Actions = float64(actions) / float64(len(workflowIDs))
	return nil
}
