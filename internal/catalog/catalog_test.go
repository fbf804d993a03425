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
		"unknown customer field": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"Hi {{ .Customer.nickname }}\"\ntext: x\n"},
			`{{ .Customer.nickname }}: customer has no field "nickname"`},
		"unknown event field": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Event.order_no }}\"\ntext: x\n"},
			`event order.placed has no field "order_no"`},
		"unknown root": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Shop }}\"\ntext: x\n"},
			"unknown value; templates see .Customer, .Event and .Links"},
		"email template without text": {map[string]string{"templates/order-thanks/en.yaml": "subject: hi\n"},
			"used for email but has no text"},
		"template syntax": {map[string]string{"templates/order-thanks/en.yaml": "subject: \"{{ .Customer.first_name \"\ntext: x\n"},
			"subject: template: subject:1: unclosed action"},
		"unknown template field": {map[string]string{"templates/order-thanks/en.yaml": "subject: x\ntext: y\nfooter: z\n"},
			"field footer not found"},
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
