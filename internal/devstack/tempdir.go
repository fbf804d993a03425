package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerFile names the process a temporary directory belongs to.
const ownerFile = ".lojal-owner"

// TempDir makes a temporary directory (os.MkdirTemp) that records the
// process it belongs to, and first removes those of the same prefix
// whose process is gone: a test binary killed by its timeout, or lojal
// dev killed with SIGKILL, runs no cleanup, and its clusters and mail
// would otherwise stay in /tmp for good. Directories of processes still
// running, this machine's other test runs among them, are left alone.
func TempDir(prefix string) (string, error) {
	sweep(os.TempDir(), prefix)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	return dir, nil
}

// sweep removes directories under parent named prefix* whose owner
// process no longer exists. Directories without an owner file (made by
// something else, or by an older lojal) are not touched.
func sweep(parent, prefix string) {
	matches, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}
