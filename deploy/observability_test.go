package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lojal/lojal/internal/metrics"
)

const (
	rulesFile     = "prometheus/lojal-alerts.yaml"
	rulesTestFile = "prometheus/lojal-alerts.test.yaml"
	dashboardFile = "grafana/lojal.json"
	runbook       = "../docs/operations.md"
)

// promtool finds Debian's promtool (package prometheus), which .ci/tools
// installs.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run .ci/tools (or apt-get install prometheus) — the alert rules are checked with it")
	}
	return p
}

// TestAlertRulesCheckAndFire runs promtool: the rules parse and lint
// clean, and each alert fires on the series that should page someone and
// stays quiet on healthy ones (lojal-alerts.test.yaml).
func TestAlertRulesCheckAndFire(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// anchors are the GitHub-style anchors of a Markdown file's headings.
func anchors(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			out = append(out, strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-"))
		}
	}
	return out
}

// TestEveryAlertHasARunbook: the alerts the issue asks for exist, each
// has a severity, a summary and a runbook_url naming a section of
// docs/operations.md that exists, and reads only metrics lojal exports
// (the Temporal SDK's are checked against a running worker in
// cmd/lojal's TestOperatorsView).
func TestEveryAlertHasARunbook(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatal(err)
	}
	sections := anchors(t, runbook)
	lojal := metrics.New().Names()
	var alerts []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			for _, name := range metrics.NamesIn(r.Expr) {
				if strings.HasPrefix(name, "lojal_") && !slices.Contains(lojal, name) {
					t.Errorf("%s%s reads %s, which lojal does not export", r.Alert, r.Record, name)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", r.Alert)
			}
			file, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
			if file != "docs/operations.md" || anchor != strings.ToLower(r.Alert) || !slices.Contains(sections, anchor) {
				t.Errorf("%s: runbook_url %q, want docs/operations.md#%s with that section in docs/operations.md", r.Alert,
					r.Annotations["runbook_url"], strings.ToLower(r.Alert))
			}
		}
	}
	for _, want := range []string{"LojalDeadLettersGrowing", "LojalUncertainDeliveries", "LojalComplaintRateHigh", "LojalScheduleToStartSlow",
		"LojalSendQueueBehind", "LojalNoDispatchProgress", "LojalSweeperStopped", "LojalBounceIntakeDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no %s alert", want)
		}
	}
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboard decodes the Grafana dashboard: panels have unique ids,
// fit the 24-column grid without overlapping, query Prometheus through
// the dashboard's datasource variable, read only metrics lojal exports
// (or the Temporal SDK's), and cover what an operator looks at first.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" ||
		d.Templating.List[0].Query != "prometheus" {
		t.Fatalf("dashboard %q (uid %q) lacks a title, a uid or the Prometheus datasource variable", d.Title, d.UID)
	}
	lojal := metrics.New().Names()
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	var read []string
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
					goto next
				}
				taken[cell{x, y}] = p.Title
			}
		}
	next:
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q does not query Prometheus through ${datasource}", p.Title)
		}
		for _, tg := range p.Targets {
			names := metrics.NamesIn(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: %q reads no lojal or Temporal metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if strings.HasPrefix(n, "lojal_") && !slices.Contains(lojal, n) {
					t.Errorf("panel %q reads %s, which lojal does not export", p.Title, n)
				}
				read = append(read, n)
			}
		}
	}
	for _, want := range []string{"lojal_events_total", "lojal_event_routes_total", "lojal_events_dead_letters", "lojal_events_oldest_pending_seconds",
		"lojal_policy_decisions_total", "lojal_messages_total", "lojal_deliveries_uncertain_total", "lojal_spam_complaints_per_1000",
		"temporal_workflow_task_schedule_to_start_latency_seconds", "temporal_activity_schedule_to_start_latency_seconds",
		"temporal_activity_execution_failed_total"} {
		if !slices.Contains(read, want) {
			t.Errorf("no panel reads %s", want)
		}
	}
}

// TestRunbookLinksResolve: every docs/operations.md#section that lojal
// prints (lojal status names the section for each problem) or that the
// docs link to is a section of docs/operations.md.
func TestRunbookLinksResolve(t *testing.T) {
	sections := anchors(t, runbook)
	link := regexp.MustCompile(`operations\.md#([a-z0-9_-]+)`)
	var files []string
	for _, pattern := range []string{"../cmd/lojal/*.go", "../internal/*/*.go", "../docs/*.md", "../README.md"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			found++
			if !slices.Contains(sections, m[1]) {
				t.Errorf("%s links docs/operations.md#%s: no such section", f, m[1])
			}
		}
	}
	if found < 5 {
		t.Fatalf("found %d links to docs/operations.md; the glob patterns are wrong", found)
	}
}
