// Package gitfs reads a directory as it was at a git revision, so a
// journeys directory can be compared with an earlier version of itself
// without checking anything out.
package gitfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing/fstest"
)

// MaxSize bounds what one revision of a directory may hold.
const MaxSize = 64 << 20

// IsSpec reports whether s names a directory at a revision, REV:PATH
// (HEAD:journeys, main~3:journeys), rather than a path that exists.
func IsSpec(s string) bool {
	if _, err := os.Stat(s); err == nil {
		return false
	}
	rev, _, ok := strings.Cut(s, ":")
	return ok && rev != ""
}

// Open returns the directory PATH at revision REV of the git repository
// that holds dir, from spec "REV:PATH". PATH is relative to dir, as on the
// command line.
func Open(ctx context.Context, dir, spec string) (fs.FS, error) {
	rev, p, ok := strings.Cut(spec, ":")
	if !ok || rev == "" {
		return nil, fmt.Errorf("%q: want REV:PATH, such as HEAD:journeys", spec)
	}
	if strings.HasPrefix(rev, "-") {
		return nil, fmt.Errorf("%q: a revision cannot start with -", spec)
	}
	prefix, err := git(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, fmt.Errorf("%s: not inside a git repository: %w", dir, err)
	}
	commit, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("%q: no such revision", rev)
	}
	full := path.Clean(path.Join(strings.TrimSpace(string(prefix)), p))
	if full == ".." || strings.HasPrefix(full, "../") {
		return nil, fmt.Errorf("%q: outside the repository", spec)
	}
	// The path comes from a command line or the studio's query string:
	// after "--", and with pathspec magic off (git), git reads it as a path
	// only, never as an option (--output would write anywhere).
	args := []string{"archive", "--format=tar", strings.TrimSpace(string(commit)), "--"}
	if full != "." {
		args = append(args, full)
	}
	top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	// Paths given to archive are relative to the directory it runs in.
	out, err := git(ctx, strings.TrimSpace(string(top)), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	fsys := fstest.MapFS{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read archive: %w", spec, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := h.Name
		if full != "." {
			var ok bool
			if name, ok = strings.CutPrefix(name, full+"/"); !ok {
				continue
			}
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", spec, h.Name, err)
		}
		fsys[name] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	if len(fsys) == 0 {
		return nil, fmt.Errorf("%s: no files at that revision", spec)
	}
	return fsys, nil
}

func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_LITERAL_PATHSPECS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{w: &stdout, n: MaxSize}, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("git %s: %s", args[0], msg)
		}
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	return stdout.Bytes(), nil
}

// limited fails a write past n bytes, so a huge revision cannot fill
// memory.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("more than %d bytes", MaxSize)
	}
	l.n -= len(p)
	return l.w.Write(p)
}
