package deploy

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestHashNamesTheContent: the hash depends on every name and byte, not on
// map order, and moving bytes from one file to the next changes it.
func TestHashNamesTheContent(t *testing.T) {
	t.Parallel()
	a := map[string]string{"a.yaml": "x: 1", "b.yaml": "y: 2"}
	if Hash(a) != Hash(map[string]string{"b.yaml": "y: 2", "a.yaml": "x: 1"}) {
		t.Error("the hash depends on map order")
	}
	for _, other := range []map[string]string{
		{"a.yaml": "x: 1", "b.yaml": "y: 3"},
		{"a.yaml": "x: 1", "c.yaml": "y: 2"},
		{"a.yaml": "x: 1y", "b.yaml": ": 2"},
		{"a.yaml": "x: 1"},
	} {
		if Hash(other) == Hash(a) {
			t.Errorf("%v hashes like %v", other, a)
		}
	}
}

// TestFilesLeavesDemoDataOut: a deployment carries the journeys, the
// policy and the templates, not demo customers or other files.
func TestFilesLeavesDemoDataOut(t *testing.T) {
	t.Parallel()
	files, err := Files(fstest.MapFS{
		"policy.yaml":                {Data: []byte("p")},
		"templates/hello.nb.yml":     {Data: []byte("t")},
		"demo/customers.yaml":        {Data: []byte("d")},
		"README.md":                  {Data: []byte("r")},
		"renewal/renewal-again.yaml": {Data: []byte("j")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || files["policy.yaml"] != "p" || files["templates/hello.nb.yml"] != "t" || files["renewal/renewal-again.yaml"] != "j" {
		t.Errorf("files %v", files)
	}
}

// TestReadBundleRefusesWhatIsNotABundle: a ConfigMap someone edited by
// hand must not reach the catalog with paths outside it or fields lost.
func TestReadBundleRefusesWhatIsNotABundle(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ bundle, want string }{
		{`{"files": {"../policy.yaml": "x"}}`, `bad path "../policy.yaml"`},
		{`{"files": {"/etc/passwd": "x"}}`, `bad path "/etc/passwd"`},
		{`{"file": {"policy.yaml": "x"}}`, `unknown field "file"`},
		{`{"files": ["policy.yaml"]}`, "cannot unmarshal array"},
	} {
		if _, err := ReadBundle([]byte(c.bundle)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.bundle, err, c.want)
		}
	}
	fsys, err := ReadBundle([]byte(`{"files": {"templates/a.yaml": "x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fsys.(fstest.MapFS).Open("templates/a.yaml"); err != nil {
		t.Errorf("a bundled file is not there: %v", err)
	} else {
		b.Close()
	}
}

// TestLiveFollowsDeployments: a running process starts on the directory
// on disk, takes a published deployment on its next refresh, and keeps a
// working catalog when the newest deployment no longer loads.
func TestLiveFollowsDeployments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := pgtest.Store(t)
	dir := os.DirFS("../../journeys")
	base, err := catalog.Load(dir, "../../journeys")
	if err != nil {
		t.Fatal(err)
	}
	live, err := NewLive(ctx, st, base, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if live.Current() != base || live.DeploymentID() != 0 {
		t.Fatalf("nothing deployed: deployment %d", live.DeploymentID())
	}
	d, _, err := Publish(ctx, st, dir, "journeys", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	published := live.Current()
	if live.DeploymentID() != d.ID || published == base || len(published.Journeys) != len(base.Journeys) {
		t.Fatalf("after publishing %d: deployment %d", d.ID, live.DeploymentID())
	}
	broken, err := st.Deploy(ctx, store.Deployment{Hash: "broken", Files: map[string]string{"policy.yaml": "caps: ["}}, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	err = live.Refresh(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not load") {
		t.Errorf("refresh onto deployment %d: %v, want that it does not load", broken.ID, err)
	}
	if live.Current() != published || live.DeploymentID() != d.ID {
		t.Errorf("a broken deployment replaced the working one: deployment %d", live.DeploymentID())
	}
}

// TestPublishStoresNothingInvalid: a directory that does not validate is
// not deployed.
func TestPublishStoresNothingInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := pgtest.Store(t)
	if _, _, err := Publish(ctx, st, fstest.MapFS{"policy.yaml": {Data: []byte("caps: [")}}, "bad", "test"); err == nil {
		t.Fatal("an invalid directory was published")
	}
	if id, err := st.LatestDeploymentID(ctx); err != nil || id != 0 {
		t.Errorf("latest deployment %d (%v), want none", id, err)
	}
}
