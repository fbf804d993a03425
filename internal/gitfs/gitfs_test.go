package gitfs

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestOpenReadsADirectoryAtARevision(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	run(t, repo, "init", "-q")
	j := filepath.Join(repo, "journeys")
	if err := os.MkdirAll(filepath.Join(j, "templates", "hi"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(j, "a.yaml"), []byte("old\n"), 0o644)
	os.WriteFile(filepath.Join(j, "templates", "hi", "en.yaml"), []byte("subject: hi\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "other.txt"), []byte("x"), 0o644)
	run(t, repo, "add", ".")
	run(t, repo, "commit", "-q", "-m", "one")
	os.WriteFile(filepath.Join(j, "a.yaml"), []byte("new\n"), 0o644)
	run(t, repo, "commit", "-q", "-am", "two")

	ctx := context.Background()
	fsys, err := Open(ctx, repo, "HEAD~1:journeys")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "a.yaml"); err != nil || string(b) != "old\n" {
		t.Errorf("a.yaml at HEAD~1: %q %v", b, err)
	}
	if _, err := fs.ReadFile(fsys, "templates/hi/en.yaml"); err != nil {
		t.Error(err)
	}
	if _, err := fs.Stat(fsys, "other.txt"); err == nil {
		t.Error("a file outside the directory was read")
	}
	// Relative to the directory the command runs in, as git does.
	fsys, err = Open(ctx, j, "HEAD:.")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(fsys, "a.yaml"); err != nil || string(b) != "new\n" {
		t.Errorf("HEAD:. from journeys/: %q %v", b, err)
	}
	for spec, want := range map[string]string{
		"nosuchrev:journeys":  "no such revision",
		"--output=x:journeys": "cannot start with -",
		"HEAD:../..":          "outside the repository",
		"HEAD:missing":        "missing",
		"journeys":            "want REV:PATH",
	} {
		if _, err := Open(ctx, repo, spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	if _, err := Open(ctx, t.TempDir(), "HEAD:."); err == nil || !strings.Contains(err.Error(), "not inside a git repository") {
		t.Errorf("outside a repository: %v", err)
	}
	if IsSpec(repo) || !IsSpec("HEAD:journeys") {
		t.Error("IsSpec")
	}
}

// TestOpenTakesThePathAsAPath: the path half of REV:PATH comes from a
// command line or the studio's query string; one that reads as an option
// of git archive (--output writes the archive anywhere the user can
// write, --remote reaches out) must stay a path.
func TestOpenTakesThePathAsAPath(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	run(t, repo, "init", "-q")
	os.WriteFile(filepath.Join(repo, "a.yaml"), []byte("a\n"), 0o644)
	run(t, repo, "add", ".")
	run(t, repo, "commit", "-q", "-m", "one")
	victim := filepath.Join(t.TempDir(), "authorized_keys")
	for _, spec := range []string{"HEAD:--output=" + victim, "HEAD:-o" + victim, "HEAD::(top)--output=" + victim} {
		if _, err := Open(context.Background(), repo, spec); err == nil {
			t.Errorf("%s: read a directory", spec)
		}
		if _, err := os.Stat(victim); err == nil {
			t.Fatalf("%s: git wrote %s", spec, victim)
		}
	}
}
