package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// The JSON Schemas in docs/schema drive editor completion
// (yaml-language-server). This keeps them in step with the parser: every
// shipped file passes, and typical mistakes are flagged.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(filepath.Join("../../docs/schema", name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func yamlValue(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJSONSchemasAcceptShippedFiles(t *testing.T) {
	t.Parallel()
	journeySchema := compileSchema(t, "lojal-journey.json")
	files, _ := filepath.Glob("../../journeys/*.yaml")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := journeySchema
		switch filepath.Base(f) {
		case "schema.yaml":
			s = compileSchema(t, "lojal-schema.json")
		case "policy.yaml":
			s = compileSchema(t, "lojal-policy.json")
		}
		if err := s.Validate(yamlValue(t, string(b))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		checked++
	}
	if checked < 7 {
		t.Fatalf("checked %d files", checked)
	}
}

func TestJSONSchemaFlagsMistakes(t *testing.T) {
	t.Parallel()
	s := compileSchema(t, "lojal-journey.json")
	good, err := os.ReadFile("../../journeys/renewal-reminder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"unknown field":         {"topic: service", "topic: service\ncolour: red"},
		"bad channel":           {"channel: email", "channel: sms"},
		"bad priority":          {"priority: high", "priority: urgent"},
		"two step kinds":        {"    exit: {}", "    exit: {}\n    wait: { duration: 1d }"},
		"bad duration":          {"timeout: 7d", "timeout: soon"},
		"bad at_local":          {`at_local: "09:00"`, `at_local: "9am"`},
		"missing trigger":       {"trigger:\n  event: policy.renewal_scheduled\n", ""},
		"channel list with sms": {"channel: email", "channel: [push, sms]"},
		"channel listed twice":  {"channel: email", "channel: [email, email]"},
	} {
		bad := strings.Replace(string(good), edit[0], edit[1], 1)
		if bad == string(good) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if err := s.Validate(yamlValue(t, bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for v, ok := range map[string]bool{"10%": true, "12.5%": true, "0%": true, "99.99%": true, "100%": false, "10": false, "-5%": false, "10.125%": false} {
		src := string(good) + "holdout: " + v + "\n"
		if err := s.Validate(yamlValue(t, src)); (err == nil) != ok {
			t.Errorf("holdout: %s: accepted %v, want %v (%v)", v, err == nil, ok, err)
		}
	}
	chain := strings.Replace(string(good), "channel: email", "channel: [push, email]", 1)
	if err := s.Validate(yamlValue(t, chain)); err != nil {
		t.Errorf("a channel list was refused: %v", err)
	}
	policySchema := compileSchema(t, "lojal-policy.json")
	if err := policySchema.Validate(yamlValue(t, "default_timezone: Europe/Oslo\ncritical_counts_toward_caps: false\n")); err != nil {
		t.Errorf("critical_counts_toward_caps refused: %v", err)
	}
	for src, ok := range map[string]bool{
		"adaptive_pressure: { halve_after: 3, floor: 1, grace: 48h }\n": true,
		"adaptive_pressure: { halve_after: 3 }\n":                       true,
		"adaptive_pressure: { floor: 1 }\n":                             false,
		"adaptive_pressure: { halve_after: 0 }\n":                       false,
		"adaptive_pressure: { halve_after: 3, grace: soon }\n":          false,
		"track_links: true\n":                                           true,
		"track_links: sometimes\n":                                      false,
	} {
		if err := policySchema.Validate(yamlValue(t, "default_timezone: Europe/Oslo\n"+src)); (err == nil) != ok {
			t.Errorf("policy %q: accepted %v, want %v (%v)", src, err == nil, ok, err)
		}
	}
	schemaSchema := compileSchema(t, "lojal-schema.json")
	for src, ok := range map[string]bool{
		"customer:\n  nickname: optional string\n  plan: required string\nevents:\n  a.b: { c: optional int }\n": true,
		"customer:\n  points: integer\nevents: {}\n":                                                             false,
		"customer:\n  points: maybe int\nevents: {}\n":                                                           false,
	} {
		if err := schemaSchema.Validate(yamlValue(t, src)); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", src, err, ok)
		}
	}
}
