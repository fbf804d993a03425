package catalog

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadShippedJourneys(t *testing.T) {
	t.Parallel()
	c, err := Load(os.DirFS("../../journeys"), "journeys")
	if err != nil {
		t.Fatalf("shipped journeys do not validate:\n%v", err)
	}
	if len(c.Journeys) < 5 {
		t.Fatalf("got %d journeys, want at least 5", len(c.Journeys))
	}
	for _, j := range c.Journeys {
		for name := range j.Templates() {
			for _, l := range []string{"nb", "sv", "da", "en"} {
				if _, ok := c.Templates.Get(name, l); !ok {
					t.Errorf("journey %s: template %s has no %s locale", j.ID, name, l)
				}
			}
		}
	}
}

func testFS(t *testing.T, edits map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	root := "../../workflows/testdata/journeys"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fsys[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range edits {
		if data == "" {
			delete(fsys, name)
			continue
		}
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		edits map[string]string
		want  string
	}{
		"no fallback locale": {map[string]string{"templates/order-thanks/en.yaml": ""},
			`template "order-thanks" has no en.yaml, the fallback locale every template needs`},
		"template missing": {map[string]string{"templates/order-thanks/en.yaml": "", "templates/order-thanks/nb.yaml": ""},
			`template "order-thanks" has no files`},
		"unknown customer field": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"Hi {{ .Customer.frist_name }}\"\ntext: x\n"},
			`j/templates/order-thanks/en.yaml:1:27: {{ .Customer.frist_name }}: customer has no field "frist_name" in j/schema.yaml (did you mean "first_name"?)`},
		"unknown event field": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Event.order_no }}\"\ntext: x\n"},
			`j/templates/order-thanks/en.yaml:1:21: {{ .Event.order_no }}: event order.placed has no field "order_no" in j/schema.yaml (did you mean "order_id"?)`},
		"unknown root": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Shop }}\"\ntext: x\n"},
			"j/templates/order-thanks/en.yaml:1:15: {{ .Shop }}: unknown value; templates see .Customer, .Event, .Received and .Links"},
		"email template without text": {map[string]string{"templates/order-thanks/en.yaml": "subject: hi\n"},
			"j/templates/order-thanks/en.yaml:1:1: journey order-thanks sends this template on email (j/order-thanks.yaml:13:17), which needs subject and text; this file has no text"},
		"template syntax": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Customer.first_name \"\ntext: x\n"},
			"j/templates/order-thanks/en.yaml:1:11: subject: unclosed action"},
		"unknown template field": {map[string]string{"templates/order-thanks/en.yaml": "subject: x\ntext: y\nfooter: z\n"},
			`j/templates/order-thanks/en.yaml:3:1: unknown field "footer"`},
		"duplicate journey id": {map[string]string{"copy.yaml": readFile(t, "../../workflows/testdata/journeys/order-thanks.yaml")},
			`duplicate journey id "order-thanks"`},
		"no schema": {map[string]string{"schema.yaml": ""}, "schema.yaml: cannot read"},
		"impossible policy": {map[string]string{"policy.yaml": "default_timezone: Europe/Oslo\ncaps:\n  - { window: 7d, max: 0 }\n"},
			"policy.yaml:3:24: cap max is 0"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(testFS(t, tc.edits), "j")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTemplateMistakesAtTheirPosition: mistakes in templates and in how
// journeys use them are reported at the file, line and column of the
// mistake, with a suggestion where a near name exists, and nothing is
// silently ignored.
func TestTemplateMistakesAtTheirPosition(t *testing.T) {
	t.Parallel()
	const two = "id: two\nname: Two\ntopic: service\ntrigger: { event: order.placed }\nsteps:\n" +
		"  - id: thank\n    send: { channel: email, template: order-thanks }\n" +
		"  - id: hello\n    send: { channel: email, template: monthly-hello }\n"
	const answered = "id: asked\nname: Asked\ntopic: service\ntrigger: { event: order.placed }\nsteps:\n" +
		"  - id: wait\n    wait_for: { event: review.written, timeout: 7d, on_timeout: nothing }\n" +
		"  - id: thank\n    send: { channel: email, template: review-thanks }\n" +
		"  - id: nothing\n    exit: {}\n"
	reviewThanks := "subject: \"Thanks for reviewing {{ .Received.review_written.order_id }}\"\ntext: x\n"
	for name, tc := range map[string]struct {
		edits map[string]string
		want  string
	}{
		"locale file with the wrong extension": {map[string]string{"templates/order-thanks/sv.yml": "subject: x\ntext: y\n"},
			"j/templates/order-thanks/sv.yml:1:1: template files end in .yaml: rename it sv.yaml"},
		"country code for a locale": {map[string]string{"templates/order-thanks/se.yaml": "subject: x\ntext: y\n"},
			`j/templates/order-thanks/se.yaml:1:1: "se" is not a language lojal writes messages in (Swedish is "sv"; se is the country code)`},
		"not a locale at all": {map[string]string{"templates/order-thanks/english.yaml": "subject: x\ntext: y\n"},
			`j/templates/order-thanks/english.yaml:1:1: "english" is not a language lojal writes messages in`},
		"stray file in a template": {map[string]string{"templates/order-thanks/notes.txt": "todo"},
			"j/templates/order-thanks/notes.txt:1:1: not a template file"},
		"template file outside a directory": {map[string]string{"templates/welcome.yaml": "subject: x\ntext: y\n"},
			"j/templates/welcome.yaml:1:1: a template is a directory of one file per locale"},
		"template name misspelt": {map[string]string{"order-thanks.yaml": strings.Replace(readFile(t, "../../workflows/testdata/journeys/order-thanks.yaml"), "template: order-thanks", "template: order-thank", 1)},
			`j/order-thanks.yaml:13:17: template "order-thank" has no files (want templates/order-thank/en.yaml) (did you mean "order-thanks"?)`},
		"locale in one template of a journey only": {map[string]string{"two.yaml": two, "templates/order-thanks/sv.yaml": "subject: x\ntext: y\n"},
			`j/two.yaml:9:39: template "monthly-hello" has no sv.yaml, but template "order-thanks" in this journey has`},
		"push template without a title": {map[string]string{"two.yaml": strings.Replace(two, "channel: email, template: monthly-hello", "channel: push, template: monthly-hello", 1)},
			"j/templates/monthly-hello/en.yaml:1:1: journey two sends this template on push (j/two.yaml:9:38), which needs title and body; this file has no title or body"},
		// A push that reaches no device falls back to email (docs/journeys.md):
		// a push-only template then failed at send, and the message was lost.
		"push-only template on a push step": {map[string]string{"two.yaml": strings.Replace(two, "channel: email, template: monthly-hello", "channel: push, template: nudge", 1),
			"templates/nudge/en.yaml": "title: Hi\nbody: There\n"},
			"j/templates/nudge/en.yaml:1:1: journey two sends this template on push (j/two.yaml:9:38), and on email when push reaches no device, which needs subject and text; this file has no subject or text"},
		".Event in a journey without a trigger event": {map[string]string{"templates/monthly-hello/en.yaml": "subject: \"Hello {{ .Event.order_id }}\"\ntext: x\n"},
			"j/templates/monthly-hello/en.yaml:1:20: {{ .Event.order_id }}: this journey is not started by an event"},
		"optional attribute read unguarded": {map[string]string{"schema.yaml": strings.Replace(readFile(t, "../../workflows/testdata/journeys/schema.yaml"), "  plan: string\n", "  plan: string\n  nickname: string\n", 1),
			"templates/monthly-hello/en.yaml": "subject: \"Hello {{ .Customer.nickname }}\"\ntext: x\n"},
			`j/templates/monthly-hello/en.yaml:1:30: {{ .Customer.nickname }} may be missing, and the message then fails: test it first ({{ with .Customer.nickname }}…{{ end }} or {{ default "…" .Customer.nickname }})`},
		"received event on a path without it": {map[string]string{"asked.yaml": strings.Replace(answered, "on_timeout: nothing", "on_timeout: thank", 1) + "", "templates/review-thanks/en.yaml": reviewThanks},
			"j/templates/review-thanks/en.yaml:1:45: {{ .Received.review_written.order_id }} may be missing: step thank can be reached without the wait_for getting review.written"},
		// Reads that validation used not to see: the message failed at
		// send, or went out with "<no value>" in it.
		"optional attribute read by index": {map[string]string{"schema.yaml": nickname(t),
			"templates/monthly-hello/en.yaml": "subject: \"Hello {{ index .Customer \\\"nickname\\\" }}\"\ntext: x\n"},
			`{{ .Customer.nickname }} may be missing, and the message then fails`},
		"root read inside with": {map[string]string{"schema.yaml": nickname(t),
			"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer.plan }} {{ $.Customer.nickname }}{{ end }}\"\ntext: x\n"},
			`{{ .Customer.nickname }} may be missing, and the message then fails`},
		"index of dot inside with": {map[string]string{"schema.yaml": nickname(t),
			"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer }} {{ index . \\\"nickname\\\" }}{{ end }}\"\ntext: x\n"},
			`{{ .Customer.nickname }} may be missing, and the message then fails`},
		"field of a value inside with": {map[string]string{"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer.plan }} {{ .Customer.plan }}{{ end }}\"\ntext: x\n"},
			`{{ .Customer.plan.Customer.plan }}: customer field plan is a string, which has no fields`},
		"field of an attribute": {map[string]string{"templates/monthly-hello/en.yaml": "subject: \"Hello {{ .Customer.plan.name }}\"\ntext: x\n"},
			`{{ .Customer.plan.name }}: customer field plan is a string, which has no fields`},
		"template defined in the file": {map[string]string{"templates/monthly-hello/en.yaml": "subject: \"Hello {{ template \\\"x\\\" . }}{{ define \\\"x\\\" }}{{ .Customer.nickname }}{{ end }}\"\ntext: x\n"},
			`subject: {{ define }}, {{ block }} and {{ template }} are not supported`},
		"received event the journey never waits for": {map[string]string{"asked.yaml": answered, "templates/review-thanks/en.yaml": strings.Replace(reviewThanks, "review_written", "order_shipped", 1)},
			`j/templates/review-thanks/en.yaml:1:45: {{ .Received.order_shipped.order_id }}: journey asked has no wait_for that gets "order_shipped"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(testFS(t, tc.edits), "j")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

// nickname is the test schema with an optional customer attribute.
func nickname(t *testing.T) string {
	return strings.Replace(readFile(t, "../../workflows/testdata/journeys/schema.yaml"), "  plan: string\n", "  plan: string\n  nickname: string\n", 1)
}

// TestBrokenTemplateIsReportedOnce: a template file that does not parse
// is reported for what is wrong in it, not also as a missing locale.
func TestBrokenTemplateIsReportedOnce(t *testing.T) {
	t.Parallel()
	_, err := Load(testFS(t, map[string]string{"templates/order-thanks/en.yaml": "subject: Hei: du\ntext: x\n"}), "j")
	if err == nil || !strings.Contains(err.Error(), "j/templates/order-thanks/en.yaml:1:13: YAML syntax: mapping values are not allowed") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "has no en.yaml") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("more than the one mistake reported:\n%v", err)
	}
}

// TestGuardedTemplatesValidate: values that may be missing are fine when
// the template tests them or the journey tested them on the way.
func TestGuardedTemplatesValidate(t *testing.T) {
	t.Parallel()
	schema := strings.Replace(readFile(t, "../../workflows/testdata/journeys/schema.yaml"), "  plan: string\n", "  plan: string\n  nickname: string\n", 1)
	const answered = "id: asked\nname: Asked\ntopic: service\ntrigger: { event: order.placed }\nsteps:\n" +
		"  - id: wait\n    wait_for: { event: review.written, timeout: 7d, on_timeout: nothing }\n" +
		"  - id: thank\n    send: { channel: email, template: review-thanks }\n" +
		"  - id: nothing\n    exit: {}\n"
	for name, edits := range map[string]map[string]string{
		"default":                         {"templates/monthly-hello/en.yaml": "subject: \"Hello {{ default \\\"you\\\" .Customer.nickname }}\"\ntext: \"{{ .Customer.nickname | default \\\"you\\\" }}\"\n"},
		"with":                            {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer.nickname }} {{ . }}{{ end }}\"\ntext: x\n"},
		"if":                              {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ if .Customer.nickname }} {{ .Customer.nickname }}{{ end }}\"\ntext: x\n"},
		"root inside a guarding with":     {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer.nickname }} {{ $.Customer.nickname }} {{ $.Customer.first_name }}{{ end }}\"\ntext: x\n"},
		"fields of .Customer inside with": {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with .Customer }} {{ .first_name }}{{ with .nickname }} {{ . }}{{ end }}{{ if .plan }} {{ .plan }}{{ end }}{{ end }}\"\ntext: x\n"},
		"index guarded":                   {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with index .Customer \\\"nickname\\\" }} {{ . }}{{ end }}\"\ntext: x\n"},
		// Forms the walker must not refuse (found by review).
		"with declaring a variable": {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with $c := .Customer }} {{ .first_name }}{{ end }}\"\ntext: x\n"},
		"with declaring, guarding":  {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ with $n := .Customer.nickname }} {{ $.Customer.nickname }}{{ end }}\"\ntext: x\n"},
		"index as the guard":        {"templates/monthly-hello/en.yaml": "subject: \"Hello{{ if index .Customer \\\"nickname\\\" }} {{ index .Customer \\\"nickname\\\" }}{{ end }}\"\ntext: x\n"},
		"a timestamp's method": {"schema.yaml": strings.Replace(schema, "  plan: string\n", "  plan: string\n  since: required timestamp\n", 1),
			"templates/monthly-hello/en.yaml": "subject: \"Customer since {{ .Customer.since.Year }}\"\ntext: x\n"},
		"journey tested it": {"monthly-hello.yaml": strings.Replace(readFile(t, "../../workflows/testdata/journeys/monthly-hello.yaml"), "steps:\n", "audience: has(customer.nickname)\nsteps:\n", 1),
			"templates/monthly-hello/en.yaml": "subject: \"Hello {{ .Customer.nickname }}\"\ntext: x\n"},
		"received on every way": {"asked.yaml": answered,
			"templates/review-thanks/en.yaml": "subject: \"Thanks for reviewing {{ .Received.review_written.order_id }}\"\ntext: x\n"},
	} {
		if edits["schema.yaml"] == "" {
			edits["schema.yaml"] = schema
		}
		if _, err := Load(testFS(t, edits), "j"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLineDiff(t *testing.T) {
	t.Parallel()
	var got []string
	for _, l := range LineDiff("a\nb\nc\n", "a\nB\nc\nd") {
		got = append(got, string(l.Op)+l.Text)
	}
	if want := " a,-b,+B, c,+d"; strings.Join(got, ",") != want {
		t.Errorf("LineDiff = %q, want %q", strings.Join(got, ","), want)
	}
}
