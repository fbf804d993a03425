package devstack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweepRemovesOnlyDirectoriesOfGoneProcesses: a directory whose
// process has exited is removed; those of running processes, and those
// that are not ours, stay.
func TestSweepRemovesOnlyDirectoriesOfGoneProcesses(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dead := mk("lojal-x-1", strconv.Itoa(gone.Process.Pid))
	alive := mk("lojal-x-2", strconv.Itoa(os.Getppid()))
	foreign := mk("lojal-x-3", "")
	other := mk("other-4", strconv.Itoa(gone.Process.Pid))
	sweep(parent, "lojal-x-")
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("the directory of a process that exited is still there")
	}
	for _, d := range []string{alive, foreign, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
}
