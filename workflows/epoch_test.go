package workflows_test

import (
	"fmt"
	"slices"
	"testing"

	"go.temporal.io/api/enums/v1"

	"github.com/lojal/lojal/workflows"
)

// Runs started by code that takes an epoch (changeEpochs) record one
// marker for every change in it and before it. These scenarios record such
// runs again under each epoch (names start with "epoch-" for the first,
// "epoch2-" for the second, "epoch3-" for the third, "epoch4-" for the
// fourth): the send step and the journey language's
// constructs, and the shapes that cross workflow tasks and executions. The
// histories recorded before keep replaying the changes one by one.
func init() {
	for _, prefix := range []string{"epoch-", "epoch2-", "epoch3-", "epoch4-"} {
		historyScenarios = append(historyScenarios, again(prefix, historyScenarios, "order-thanks-shipped",
			"card-expiry-retrigger-fallback-answered")...)
		shapeScenarios = append(shapeScenarios, again(prefix, shapeScenarios, "shape-settle-and-deferral-loop", "shape-continue-as-new",
			"shape-push-fallback", "shape-holdout-held-out-goal")...)
	}
}

// again returns the named scenarios of list under prefixed names.
func again(prefix string, list []historyScenario, names ...string) []historyScenario {
	var out []historyScenario
	for _, name := range names {
		found := false
		for _, sc := range list {
			if sc.name == name {
				out, found = append(out, historyScenario{name: prefix + name, run: sc.run}), true
			}
		}
		if !found {
			panic(fmt.Sprintf("no history scenario %q to record under an epoch", name))
		}
	}
	return out
}

// TestAOneSendRunIsLean: a run this code starts records one version
// marker (the epoch) however many changes it takes, where it recorded one
// marker and one TemporalChangeVersion upsert per change (seven for a
// one-send run) before changeEpochs; and its decision runs in the workflow
// task that asks (decide-local-v1), so the delivery is its only activity
// task.
func TestAOneSendRunIsLean(t *testing.T) {
	t.Parallel()
	s := languageStack(t)
	ctx := waitCtx(t)
	id := orderScenario("c-epoch", "o-epoch", "order.shipped", "e-epoch-2", "e-epoch-1")(t, ctx, s)
	var markers, upserts, tasks []string
	for _, ev := range history(t, ctx, s, id).GetEvents() {
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "Version" {
			markers = append(markers, string(m.GetDetails()["change-id"].GetPayloads()[0].GetData()))
		}
		if ev.GetEventType() == enums.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES {
			upserts = append(upserts, "upsert")
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			tasks = append(tasks, a.GetActivityType().GetName())
		}
	}
	if len(markers) != 1 || len(upserts) != 1 {
		t.Errorf("the run recorded %d version markers %v and %d search attribute upserts; want the epoch's one of each", len(markers), markers,
			len(upserts))
	}
	if !slices.Equal(tasks, []string{workflows.DeliverActivity}) {
		t.Errorf("the run's activity tasks were %v; want only its delivery (the decision runs in the workflow task)", tasks)
	}
}
