package workflows_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

var updateHistories = flag.Bool("update-histories", false, "record the histories of testdata/histories that are missing, from live runs")

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
// Histories are append-only: -update-histories records the scenarios
// that have no file yet and leaves every recorded one as it is.
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
		w := workflows.New()
		r.RegisterWorkflowWithOptions(w.Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
		r.RegisterWorkflowWithOptions(w.Schedule, workflow.RegisterOptions{Name: workflows.ScheduleWorkflow})
		r.RegisterWorkflowWithOptions(w.Conversation, workflow.RegisterOptions{Name: workflows.ConversationWorkflow})
		r.RegisterWorkflowWithOptions(w.Retain, workflow.RegisterOptions{Name: workflows.RetainWorkflow})
		r.RegisterWorkflowWithOptions(w.Sweep, workflow.RegisterOptions{Name: workflows.SweepWorkflow})
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, sc := range append(historyScenarios, shapeScenarios...) {
		if _, err := os.Stat(filepath.Join("testdata/histories", sc.name+".json")); err != nil {
			t.Errorf("scenario %s has no recorded history: run go test ./workflows/ -run Replay -args -update-histories", sc.name)
		}
	}
	for _, name := range conversationHistories {
		if _, err := os.Stat(filepath.Join("testdata/histories", name+".json")); err != nil {
			t.Errorf("%s has no recorded history: run go test ./workflows/ -run TestConversationEndToEnd -args -update-histories", name)
		}
	}
	for _, name := range retainHistories {
		if _, err := os.Stat(filepath.Join("testdata/histories", name+".json")); err != nil {
			t.Errorf("%s has no recorded history: run go test ./workflows/ -run TestRetainEndToEnd -args -update-histories", name)
		}
	}
}

// historyScenario is one recorded run. run drives it on a live stack and
// returns the workflow id whose history is saved.
type historyScenario struct {
	name string
	run  func(t *testing.T, ctx context.Context, s *stacktest.Stack) string
}

func replayCustomer(id string) journey.Customer {
	return journey.Customer{ID: id, Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "plan": "home"}}
}

// orderScenario places an order for customer a and follows it with a
// second event after the first message is on its way.
func orderScenario(customer, order, then, thenID, firstID string) func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
	return func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := replayCustomer(customer)
		if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Dispatcher.Event(ctx, orderPlaced(c, firstID, order)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		ev := journey.Event{ID: thenID, Type: then, CustomerID: c.ID, At: time.Now(), Data: map[string]any{"order_id": order}}
		if _, err := s.Dispatcher.Event(ctx, ev); err != nil {
			t.Fatal(err)
		}
		id := workflows.WorkflowID("order-thanks", c.ID, order)
		if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
}

// historyScenarios are recorded in order on one stack (the third relies
// on the min gap after the first).
var historyScenarios = []historyScenario{
	{"order-thanks-shipped", orderScenario("c-replay-a", "o-r1", "order.shipped", "e-r2", "e-r1")},
	{"order-thanks-goal", orderScenario("c-replay-b", "o-r3", "review.written", "e-r4", "e-r3")},
	// The min gap after o-r1 defers this thank-you; the goal ends the
	// run while the message waits.
	{"order-thanks-deferred-goal", orderScenario("c-replay-a", "o-r5", "review.written", "e-r6", "e-r5")},
	// The language's newer constructs: retrigger-update-v1,
	// channel-fallback-v1, send-outcome-branch-v1, wait-for-event-vars-v1.
	{"card-expiry-retrigger-fallback-answered", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := replayCustomer("c-replay-card")
		c.Consent["push"] = true
		return cardScenario(t, ctx, s, c)
	}},
	// A reminder the policy suppresses takes the not-reached branch.
	{"card-expiry-suppressed", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := replayCustomer("c-replay-card-2")
		// card-expiry is a service topic, which needs no consent: an
		// opt-out of the topic is what holds it back.
		c.Consent, c.TopicsOptedOut = map[string]bool{"email": false}, []string{"service"}
		if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		ev := journey.Event{ID: "e-card-x", Type: "card.expiry_scheduled", CustomerID: c.ID, At: now,
			Data: map[string]any{"card_id": "k-2", "expires_at": now.Add(24*time.Hour + time.Second).Format(time.RFC3339)}}
		if _, err := s.Dispatcher.Event(ctx, ev); err != nil {
			t.Fatal(err)
		}
		id := workflows.WorkflowID("card-expiry", c.ID, "k-2")
		var out workflows.JourneyResult
		if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, &out); err != nil || out.Step != "not-reached" {
			t.Fatalf("run ended %+v %v, want not-reached", out, err)
		}
		return id
	}},
}

// recordHistories runs the scenarios that have no history yet, end to
// end, and saves their histories. Recorded ones are never recorded again:
// they are what runs started by older code look like.
func recordHistories(t *testing.T) {
	record(t, historyScenarios, languageStack)
	record(t, shapeScenarios, shapesStack)
}

func record(t *testing.T, scenarios []historyScenario, stack func(*testing.T) *stacktest.Stack) {
	var todo []historyScenario
	for _, sc := range scenarios {
		if _, err := os.Stat(filepath.Join("testdata/histories", sc.name+".json")); err != nil {
			todo = append(todo, sc)
		}
	}
	if len(todo) == 0 {
		return
	}
	s := stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := os.MkdirAll("testdata/histories", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sc := range todo {
		id := sc.run(t, ctx, s)
		out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(history(t, ctx, s, id))
		if err != nil {
			t.Fatal(err)
		}
		// Append-only: a history already recorded is never replaced.
		f, err := os.OpenFile(filepath.Join("testdata/histories", sc.name+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			t.Logf("%s.json exists; kept", sc.name)
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
		sums, err := os.OpenFile("testdata/histories/SHA256SUMS", os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fmt.Fprintf(sums, "%x  %s.json\n", sha256.Sum256(out), sc.name)
		if cerr := sums.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", sc.name)
	}
}

// TestHistoriesAreAppendOnly: every recorded history is listed in
// SHA256SUMS with the checksum it was recorded with, and nothing else is
// in the directory. Recording a new scenario appends its line; an edited or
// deleted history fails here (and .ci/check-histories catches an edit of
// both in git).
func TestHistoriesAreAppendOnly(t *testing.T) {
	t.Parallel()
	sums, err := os.ReadFile("testdata/histories/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		want, file, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: bad line %q", line)
		}
		listed[file] = true
		b, err := os.ReadFile(filepath.Join("testdata/histories", file))
		if err != nil {
			t.Errorf("%s is listed but gone: recorded histories are never deleted", file)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("%s changed since it was recorded: recorded histories are never edited or re-recorded; add a new scenario instead", file)
		}
	}
	files, _ := filepath.Glob("testdata/histories/*.json")
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in SHA256SUMS (record with -update-histories, which adds it)", f)
		}
	}
}
