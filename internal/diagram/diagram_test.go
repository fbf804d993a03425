package diagram

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/journey"
)

func outline(t *testing.T, file string) *journey.Outline {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	o, errs := journey.ParseOutline(file, src)
	if o == nil {
		t.Fatal(errs)
	}
	return o
}

// TestDiagramShowsEveryStepAndWay: the checkin journey's diagram has a
// node per step, the wait_for's two ways (the answer and the timeout,
// dashed), the branch on how the question went, and is valid XML.
func TestDiagramShowsEveryStepAndWay(t *testing.T) {
	t.Parallel()
	svg := SVG(outline(t, "../../journeys/checkin.yaml"), nil, nil)
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	for _, want := range []string{
		`data-step="ask"`, `data-step="asked"`, `data-step="wait-for-answer"`, `data-step="no-answer"`, `data-step="finished"`,
		"start: schedule 0 10 1 */3 *",
		"on email: checkin",
		"outcome (sent, suppressed, stale, failed) read by asked",
		`when outcome(&#34;ask&#34;) == &#34;sent&#34; → wait-for-answer`,
		"wait for survey.answered, at most 14d",
		"got survey.answered",
		"no survey.answered in 14d → no-answer",
		"later steps see it as received.survey_answered",
		`stroke-dasharray="5 3"`,
		"ends the run: no answer; ask again next quarter",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q", want)
		}
	}
	// Every step ends in an exit: no "completed" end node.
	if strings.Contains(svg, `data-step="end"`) {
		t.Error("an end node nothing leads to")
	}
}

func TestDiagramShowsChannelListsGoalAndProblems(t *testing.T) {
	t.Parallel()
	o := outline(t, "../../journeys/renewal-reminder.yaml")
	o.Steps[1].Channels = []string{"push", "email"}
	svg := SVG(o, map[int][]string{1: {`template "renewal-remider" has no files`}}, nil)
	for _, want := range []string{
		"on push → email: renewal-reminder",
		"goal: policy.renewed ends the run at any step",
		"one run per key: event.policy_id",
		`⚠ template &#34;renewal-remider&#34; has no files`,
		`stroke="#dc2626"`,
		"when has(customer.segment)",
		`data-step="end"`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q", want)
		}
	}
	// A goto to a step that does not exist is drawn as a problem, not
	// dropped.
	o.Steps[5].Goto = "nowhere"
	if svg := SVG(o, nil, nil); !strings.Contains(svg, "→ nowhere (no such step)") {
		t.Error("a dangling goto is not shown")
	}
}
