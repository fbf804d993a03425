package journey

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// mistake is one thing a marketer can get wrong, and where and how
// validation must say so: "line:col: message" (the message as a
// substring).
type mistake struct {
	name string
	src  string
	want string
}

func checkMistakes(t *testing.T, parse func(src string) ErrorList, tests []mistake) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := parse(tt.src)
			if len(errs) == 0 {
				t.Fatalf("accepted; want %q", tt.want)
			}
			at, msg, _ := strings.Cut(tt.want, ": ")
			for _, e := range errs {
				if strings.HasSuffix(e.File+":"+strconv.Itoa(e.Line)+":"+strconv.Itoa(e.Col), ":"+at) && strings.Contains(e.Msg, msg) {
					return
				}
			}
			t.Fatalf("errors:\n%v\nwant one at %s containing %q", errs, at, msg)
		})
	}
}

func parseJourney(t *testing.T) func(string) ErrorList {
	schema := mustSchema(t)
	return func(src string) ErrorList {
		_, errs := Parse("j.yaml", []byte(src), schema, time.UTC)
		return errs
	}
}

// head is a journey's top, five lines, so step lines are easy to count:
// steps start on line 6.
const head = "id: j\nname: J\ntopic: service\ntrigger: { event: policy.renewal_scheduled }\nsteps:\n"

// TestMistakesAtTheirPosition: each mistake is reported at the line and
// column of the mistake itself, not at the step or file that holds it.
func TestMistakesAtTheirPosition(t *testing.T) {
	t.Parallel()
	checkMistakes(t, parseJourney(t), []mistake{
		{"branch goto names no step", head +
			"  - id: pick\n" +
			"    branch:\n" +
			"      - when: customer.plan == \"home\"\n" +
			"        goto: hme\n" +
			"      - goto: other\n" +
			"  - id: home\n    exit: {}\n  - id: other\n    exit: {}\n",
			`9:15: goto "hme" names no step (did you mean "home"?)`},
		{"on_timeout names no step", head +
			"  - id: wait\n" +
			"    wait_for: { event: policy.renewed, timeout: 7d, on_timeout: nuge }\n" +
			"  - id: done\n    exit: {}\n  - id: nudge\n    exit: {}\n",
			`7:65: on_timeout "nuge" names no step (did you mean "nudge"?)`},
		{"step goto names no step", head +
			"  - id: a\n" +
			"    send: { channel: email, template: t }\n" +
			"    goto: ende\n" +
			"  - id: end\n    exit: {}\n",
			`8:11: goto "ende" names no step (did you mean "end"?)`},
		{"cron that never fires", strings.Replace(head, "{ event: policy.renewal_scheduled }", `{ schedule: { cron: "0 9 31 2 *" } }`, 1) +
			"  - id: a\n    exit: {}\n",
			`4:30: cron "0 9 31 2 *" never fires`},
		{"CEL duration with a d unit", head +
			"  - id: a\n" +
			"    wait: { until: 'event.renews_at - duration(\"30d\")' }\n",
			`7:48: duration("30d"): CEL durations have no "d" unit; write duration("720h")`},
		{"CEL duration that does not parse", head +
			"  - id: a\n" +
			"    wait: { until: 'event.renews_at - duration(\"soon\")' }\n",
			`7:48: duration("soon")`},
		{"CEL timestamp that does not exist", head +
			"  - id: a\n" +
			"    wait: { until: 'timestamp(\"2026-02-30T09:00:00Z\")' }\n",
			`7:31: timestamp("2026-02-30T09:00:00Z") is not a valid time`},
		{"CEL field misspelt", head +
			"  - id: a\n" +
			"    branch:\n" +
			"      - when: customer.segmnt == \"family\"\n" +
			"        goto: b\n" +
			"  - id: b\n    exit: {}\n",
			`8:24: when: customer has no field "segmnt" (did you mean "segment"?)`},
		{"CEL event field misspelt", head +
			"  - id: a\n" +
			"    wait: { until: event.renew_at }\n",
			`7:26: wait until: event policy.renewal_scheduled has no field "renew_at" (did you mean "renews_at"?)`},
		{"CEL variable misspelt", head +
			"  - id: a\n" +
			"    branch:\n" +
			"      - when: custmer.plan == \"home\"\n" +
			"        goto: b\n" +
			"  - id: b\n    exit: {}\n",
			`8:15: when: unknown name "custmer" (did you mean "customer"?)`},
		{"CEL error inside a block expression", head +
			"  - id: a\n" +
			"    branch:\n" +
			"      - when: >\n" +
			"          customer.plan == \"home\" &&\n" +
			"          customer.segmnt == \"family\"\n" +
			"        goto: b\n" +
			"  - id: b\n    exit: {}\n",
			`10:20: customer has no field "segmnt"`},
		{"YAML syntax on the first line", "id: 'it's'\n", `1:9: YAML syntax`},
		{"YAML syntax: bad indentation", head + "  - id: a\n    exit: {}\n   - id: b\n", `8:4: YAML syntax`},
	})
}

func TestSchemaTypeSuggestions(t *testing.T) {
	t.Parallel()
	checkMistakes(t, func(src string) ErrorList {
		_, errs := ParseSchema("schema.yaml", []byte(src))
		return errs
	}, []mistake{
		{"integer", "customer:\n  points: integer\nevents: {}\n", `2:11: customer.points: unknown type "integer" (did you mean "int"?)`},
		{"float", "customer:\n  ltv: float\nevents: {}\n", `2:8: customer.ltv: unknown type "float" (did you mean "double"?)`},
		{"boolean", "customer: {}\nevents:\n  a.b: { ok: boolean }\n", `3:14: event a.b.ok: unknown type "boolean" (did you mean "bool"?)`},
		{"datetime", "customer:\n  since: datetime\nevents: {}\n", `2:10: customer.since: unknown type "datetime" (did you mean "timestamp"?)`},
		{"typo", "customer:\n  name: strng\nevents: {}\n", `2:9: customer.name: unknown type "strng" (did you mean "string"?)`},
	})
}

func TestPolicyMistakes(t *testing.T) {
	t.Parallel()
	good := "default_timezone: Europe/Oslo\nquiet_hours: { start: \"21:00\", end: \"08:00\" }\nmin_gap: 24h\ncaps:\n  - { window: 7d, max: 3 }\nmax_defer: 7d\n"
	checkMistakes(t, func(src string) ErrorList {
		_, errs := ParseRules("policy.yaml", []byte(src))
		return errs
	}, []mistake{
		{"cap that min_gap never lets fill", strings.Replace(good, "{ window: 7d, max: 3 }", "{ window: 2d, max: 3 }", 1),
			`5:24: cap 3 per 2d can never be reached: min_gap 1d allows at most 2 messages in 2d`},
		{"quiet hours leave almost no time", strings.Replace(good, `start: "21:00", end: "08:00"`, `start: "09:00", end: "07:00"`, 1),
			`2:23: quiet_hours 09:00-07:00 leave only 2h a day for messages`},
		{"quiet hours swapped", strings.Replace(good, `start: "21:00", end: "08:00"`, `start: "08:00", end: "21:00"`, 1),
			`2:23: quiet_hours 08:00-21:00 are quiet in the day and send at night (did you mean start: "21:00", end: "08:00"?)`},
	})
	if _, errs := ParseRules("policy.yaml", []byte(strings.Replace(good, "{ window: 7d, max: 3 }", "{ window: 3d, max: 3 }", 1))); len(errs) > 0 {
		t.Errorf("a cap min_gap can just fill was refused: %v", errs)
	}
	for src, outside := range map[string]bool{good: false, good + "critical_counts_toward_caps: true\n": false, good + "critical_counts_toward_caps: false\n": true} {
		r, errs := ParseRules("policy.yaml", []byte(src))
		if len(errs) > 0 || r.CriticalOutsideCaps != outside {
			t.Errorf("%q: CriticalOutsideCaps %v %v, want %v", src[len(good):], r != nil && r.CriticalOutsideCaps, errs, outside)
		}
	}
}

// TestOptionalValuesMustBeTested: an expression that reads a value that
// may be missing without has() first is refused where it reads it, unless
// has() in the same expression or on every way to the step guarantees it.
func TestOptionalValuesMustBeTested(t *testing.T) {
	t.Parallel()
	parse := parseJourney(t)
	wait := "  - id: later\n    wait: { duration: 1d }\n"
	exit := "  - id: b\n    exit: {}\n"
	checkMistakes(t, parse, []mistake{
		{"optional attribute in the audience", strings.Replace(head, "steps:\n", "audience: customer.nickname == \"Kari\"\nsteps:\n", 1) + exit,
			`5:20: audience: customer.nickname may be missing, and reading it then fails the run: test it first (has(customer.nickname) && ...), or declare it required in schema.yaml (nickname: required string)`},
		{"optional event field in a purpose", head + "  - id: a\n    send: { channel: email, template: t, purpose: event.note }\n",
			`7:57: purpose: event.note may be missing, and reading it then fails the run: test it first (has(event.note) && ...); schema.yaml declares it optional (note: optional string)`},
		{"has() before a wait does not hold after it", strings.Replace(head, "steps:\n", "audience: has(customer.nickname)\nsteps:\n", 1) + wait +
			"  - id: a\n    branch:\n      - when: customer.nickname == \"Kari\"\n        goto: b\n" + exit,
			`11:24: when: customer.nickname may be missing`},
		{"has() on one way only", head +
			"  - id: a\n    branch:\n      - when: has(customer.nickname)\n        goto: c\n" +
			"  - id: c\n    branch:\n      - when: customer.nickname == \"Kari\"\n        goto: b\n" + exit,
			`12:24: when: customer.nickname may be missing`},
		{"has() on the wrong side of ||", head + "  - id: a\n    branch:\n      - when: has(customer.nickname) || customer.nickname == \"Kari\"\n        goto: b\n" + exit,
			`8:50: when: customer.nickname may be missing`},
	})
	for name, src := range map[string]string{
		"has() && read":            head + "  - id: a\n    branch:\n      - when: has(customer.nickname) && customer.nickname == \"Kari\"\n        goto: b\n" + exit,
		"!has() || read":           head + "  - id: a\n    branch:\n      - when: '!has(customer.nickname) || customer.nickname == \"Kari\"'\n        goto: b\n" + exit,
		"has() ? read : default":   head + "  - id: a\n    send: { channel: email, template: t, purpose: 'has(event.note) ? event.note : \"none\"' }\n",
		"audience has() carries":   strings.Replace(head, "steps:\n", "audience: has(customer.nickname)\nsteps:\n", 1) + "  - id: a\n    send: { channel: email, template: t, purpose: customer.nickname }\n",
		"earlier case failed":      head + "  - id: a\n    branch:\n      - when: '!has(customer.nickname)'\n        goto: b\n      - when: customer.nickname == \"Kari\"\n        goto: b\n" + exit,
		"branch target knows":      head + "  - id: a\n    branch:\n      - when: has(customer.nickname)\n        goto: c\n      - goto: b\n  - id: c\n    send: { channel: email, template: t, purpose: customer.nickname }\n" + exit,
		"required fields are fine": strings.Replace(head, "steps:\n", "audience: customer.plan == \"home\"\nkey: event.policy_id\nsteps:\n", 1) + exit,
	} {
		if errs := parse(src); len(errs) > 0 {
			t.Errorf("%s: refused:\n%v", name, errs)
		}
	}
}

// TestBundlesOfRunningJourneysCompileLeniently: a definition already
// running was validated by the lojal that started it; a stricter release
// must not fail it when the workflow rebuilds it.
func TestBundlesOfRunningJourneysCompileLeniently(t *testing.T) {
	t.Parallel()
	src := strings.Replace(head, "steps:\n", "audience: customer.nickname == \"Kari\"\nsteps:\n", 1) +
		"  - id: a\n    wait: { until: 'event.renews_at - duration(\"30d\")' }\n"
	if errs := parseJourney(t)(src); len(errs) == 0 {
		t.Fatal("validation accepted the journey; the test needs one it refuses")
	}
	b := Bundle{File: "j.yaml", Journey: []byte(src), SchemaFile: "schema.yaml", Schema: []byte(testSchema), Timezone: "UTC"}
	if _, err := b.Compile(); err != nil {
		t.Fatalf("a running definition no longer compiles: %v", err)
	}
}

// TestRequiredFieldsAreEnforcedAtIngest: what the schema says is always
// there is refused when missing, so expressions can read it without has().
func TestRequiredFieldsAreEnforcedAtIngest(t *testing.T) {
	t.Parallel()
	s := mustSchema(t)
	c := Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari", "plan": "home", "segment": "family", "tags": []any{}}}
	if _, err := s.CheckCustomer(c); err != nil {
		t.Fatalf("customer without optional attributes refused: %v", err)
	}
	delete(c.Attributes, "segment")
	if _, err := s.CheckCustomer(c); err == nil || !strings.Contains(err.Error(), `missing field "segment"`) {
		t.Errorf("customer without a required attribute: %v", err)
	}
	e := Event{ID: "e-1", Type: "policy.renewal_scheduled", CustomerID: "c-1", At: time.Now(), Data: map[string]any{"policy_id": "p-1", "renews_at": "2026-04-01T00:00:00Z"}}
	if _, err := s.CheckEvent(e); err != nil {
		t.Fatalf("event without its optional field refused: %v", err)
	}
	delete(e.Data, "renews_at")
	if _, err := s.CheckEvent(e); err == nil || !strings.Contains(err.Error(), `missing field "renews_at", which every policy.renewal_scheduled event must carry`) {
		t.Errorf("event without a required field: %v", err)
	}
}

// TestPositionsInsideQuotedValues: escapes in double quotes and doubled
// single quotes in single quotes do not shift the column of what comes
// after them.
func TestPositionsInsideQuotedValues(t *testing.T) {
	t.Parallel()
	checkMistakes(t, parseJourney(t), []mistake{
		{"after '' in single quotes", head +
			"  - id: a\n    send: { channel: email, template: t, purpose: '\"it''s \" + customer.nickame' }\n",
			`7:72: purpose: customer has no field "nickame" (did you mean "nickname"?)`},
		{"after escapes in double quotes", head +
			"  - id: a\n    send: { channel: email, template: t, purpose: \"\\\"a\\u00e5\\\" + customer.nickame\" }\n",
			`7:75: purpose: customer has no field "nickame" (did you mean "nickname"?)`},
	})
}
