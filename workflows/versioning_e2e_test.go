package workflows_test

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

var updateHistories = flag.Bool("update-histories", false, "record new testdata/histories from live runs (existing ones are kept)")

// historySet names the histories recordHistories writes: bump it with each
// change to workflow code, so the new code's histories are added beside
// the old ones, which stay as they are (runs of every earlier version must
// still replay).
const historySet = "send-queues"

func runInfo(t *testing.T, ctx context.Context, c client.Client, id string) workflows.RunInfo {
	t.Helper()
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err != nil {
		t.Fatal(err)
	}
	var info workflows.RunInfo
	if err := v.Get(&info); err != nil {
		t.Fatal(err)
	}
	return info
}

// editedCatalog is the test journeys with order-thanks edited: a longer
// wait and a follow-up step.
func editedCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	fsys := fstest.MapFS{}
	root := "testdata/journeys"
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		fsys[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b}
		return nil
	})
	src := string(fsys["order-thanks.yaml"].Data)
	src = strings.Replace(src, "timeout: 30d", "timeout: 45d", 1)
	fsys["order-thanks.yaml"] = &fstest.MapFile{Data: []byte(src)}
	c, err := catalog.Load(fsys, "edited")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEditedJourneyKeepsInFlightVersion: editing a journey's YAML while a
// customer is in it leaves their run on the version it started with; new
// entrants get the new one; migrate moves a run on request.
func TestEditedJourneyKeepsInFlightVersion(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, "e-v1", "o-v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Catcher.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	v1, _ := s.Catalog.Journey("order-thanks")
	edited := editedCatalog(t)
	v2, _ := edited.Journey("order-thanks")
	if v1.Version == v2.Version {
		t.Fatal("edit did not change the version")
	}
	// Deploy the edit: the dispatcher now starts new runs on v2. Another
	// customer enters (the first is inside the min gap).
	d2 := *s.Dispatcher
	d2.Catalog = edited
	c2 := c
	c2.ID += "-2"
	if _, err := d2.Customer(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Event(ctx, orderPlaced(c2, "e-v2", "o-v2")); err != nil {
		t.Fatal(err)
	}
	old, nw := "journey/order-thanks/"+c.ID+"/o-v1", "journey/order-thanks/"+c2.ID+"/o-v2"
	waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, nw).State.Current.Kind == journey.ActAwait })
	if got := runInfo(t, ctx, s.Client, old).Version; got != v1.Version {
		t.Errorf("in-flight run is on %s, want its original %s", got, v1.Version)
	}
	if got := runInfo(t, ctx, s.Client, nw).Version; got != v2.Version {
		t.Errorf("new run is on %s, want %s", got, v2.Version)
	}
	// An explicit migration moves the old run.
	sig := workflows.MigrateSignal{Bundle: v2.Bundle(), Version: v2.Version}
	if err := s.Client.SignalWorkflow(ctx, old, "", workflows.SignalMigrate, sig); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, old).Version == v2.Version })
	// A migration to a version without the run's step is refused.
	bad := strings.Replace(string(v2.Source), "id: wait-for-shipping", "id: wait-for-delivery", 1)
	badJ, errs := journey.Parse("order-thanks.yaml", []byte(bad), v2.Schema, v2.Location)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := s.Client.SignalWorkflow(ctx, nw, "", workflows.SignalMigrate, workflows.MigrateSignal{Bundle: badJ.Bundle(), Version: badJ.Version}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := runInfo(t, ctx, s.Client, nw); got.Version != v2.Version || got.State.Current.Step != "wait-for-shipping" {
		t.Errorf("refused migration changed the run: %+v", got)
	}
	// Both finish normally.
	for i, id := range []string{old, nw} {
		order, cust := []string{"o-v1", "o-v2"}[i], []journey.Customer{c, c2}[i]
		shipped := journey.Event{ID: "e-ship-" + order, Type: "order.shipped", CustomerID: cust.ID, At: time.Now(), Data: map[string]any{"order_id": order}}
		if _, err := s.Dispatcher.Event(ctx, shipped); err != nil {
			t.Fatal(err)
		}
		var res workflows.JourneyResult
		if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil || res.Outcome != journey.OutcomeExit {
			t.Fatalf("%s: %+v %v", id, res, err)
		}
	}
}

// TestReplayHistories replays saved workflow histories against today's
// workflow code: a change that would break running journeys fails here.
// After a change to workflow code, bump historySet and record the new
// code's histories with -update-histories; old ones are never rewritten.
func TestReplayHistories(t *testing.T) {
	t.Parallel()
	if *updateHistories {
		recordHistories(t)
	}
	files, _ := filepath.Glob("testdata/histories/*.json")
	if len(files) == 0 {
		t.Fatal("no saved histories in testdata/histories")
	}
	for _, f := range files {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(workflows.New().Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// recordHistories runs scenarios end to end and saves their histories.
func recordHistories(t *testing.T) {
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	a := journey.Customer{ID: "c-replay-a", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "plan": "home"}}
	b := a
	b.ID = "c-replay-b"
	for _, c := range []journey.Customer{a, b} {
		if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	event := func(c journey.Customer, id, typ, order string) journey.Event {
		return journey.Event{ID: id, Type: typ, CustomerID: c.ID, At: time.Now(), Data: map[string]any{"order_id": order}}
	}
	scenarios := []struct {
		name   string
		events []journey.Event
	}{
		{"order-thanks-shipped", []journey.Event{orderPlaced(a, "e-r1", "o-r1"), event(a, "e-r2", "order.shipped", "o-r1")}},
		{"order-thanks-goal", []journey.Event{orderPlaced(b, "e-r3", "o-r3"), event(b, "e-r4", "review.written", "o-r3")}},
		// The min gap after o-r1 defers this thank-you; the goal ends the
		// run while the message waits.
		{"order-thanks-deferred-goal", []journey.Event{orderPlaced(a, "e-r5", "o-r5"), event(a, "e-r6", "review.written", "o-r5")}},
	}
	if err := os.MkdirAll("testdata/histories", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios {
		for i, e := range sc.events {
			if _, err := s.Dispatcher.Event(ctx, e); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				time.Sleep(2 * time.Second)
			}
		}
		id := workflows.WorkflowID("order-thanks", sc.events[0].CustomerID, sc.events[0].Data["order_id"].(string))
		if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		iter := s.Client.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		hist := &historypb.History{}
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			hist.Events = append(hist.Events, ev)
		}
		out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		// Append-only: a history already recorded is never replaced.
		f, err := os.OpenFile(filepath.Join("testdata/histories", sc.name+"."+historySet+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			t.Logf("%s.%s.json exists; kept", sc.name, historySet)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(out); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
