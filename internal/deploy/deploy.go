// Package deploy publishes journeys directories to Postgres and keeps
// running processes on the newest one. A deployment holds every file of a
// validated directory and its content hash; workers and the API watch for
// new deployments and swap their catalog without restarting. Runs already
// in flight are unaffected: each carries its own definition.
package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/store"
)

// Files reads every YAML file of a journeys directory (demo data aside).
func Files(dir fs.FS) (map[string]string, error) {
	files := map[string]string{}
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "demo" {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		b, err := fs.ReadFile(dir, p)
		if err != nil {
			return err
		}
		files[p] = string(b)
		return nil
	})
	return files, err
}

// Hash is the content hash of a set of files.
func Hash(files map[string]string) string {
	h := sha256.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s%d:", len(n), n, len(files[n]))
		h.Write([]byte(files[n]))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Bundle is a journeys directory in one JSON document: how it travels in a
// Kubernetes ConfigMap, whose keys cannot hold paths.
type Bundle struct {
	Files map[string]string `json:"files"`
}

// ReadBundle turns a bundle into a file system catalog.Load can read.
func ReadBundle(b []byte) (fs.FS, error) {
	var bundle Bundle
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bundle); err != nil {
		return nil, err
	}
	fsys := fstest.MapFS{}
	for n, data := range bundle.Files {
		if !fs.ValidPath(n) {
			return nil, fmt.Errorf("bad path %q", n)
		}
		fsys[n] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys, nil
}

// Load builds a catalog from deployed files.
func Load(d store.Deployment) (*catalog.Catalog, error) {
	fsys := fstest.MapFS{}
	for n, data := range d.Files {
		fsys[n] = &fstest.MapFile{Data: []byte(data)}
	}
	return catalog.Load(fsys, fmt.Sprintf("deployment %d", d.ID))
}

// Publish validates a journeys directory and stores it as the new
// deployment. Nothing is stored when validation fails.
func Publish(ctx context.Context, st *store.Store, dir fs.FS, name, by string) (store.Deployment, *catalog.Catalog, error) {
	cat, err := catalog.Load(dir, name)
	if err != nil {
		return store.Deployment{}, nil, err
	}
	files, err := Files(dir)
	if err != nil {
		return store.Deployment{}, nil, err
	}
	ids := make([]string, len(cat.Journeys))
	for i, j := range cat.Journeys {
		ids[i] = j.ID + "@" + j.Version
	}
	d, err := st.Deploy(ctx, store.Deployment{Hash: Hash(files), Files: files}, strings.Join(ids, " "), by)
	return d, cat, err
}

// Live is a catalog.Source that follows deployments.
type Live struct {
	st   *store.Store
	log  *slog.Logger
	cur  atomic.Pointer[catalog.Catalog]
	id   atomic.Int64
	base *catalog.Catalog
}

// NewLive starts from the newest deployment, or from base (the journeys
// directory on disk) when nothing was ever deployed.
func NewLive(ctx context.Context, st *store.Store, base *catalog.Catalog, log *slog.Logger) (*Live, error) {
	l := &Live{st: st, log: log, base: base}
	l.cur.Store(base)
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Current implements catalog.Source.
func (l *Live) Current() *catalog.Catalog { return l.cur.Load() }

// DeploymentID is the deployment in force (0: the directory on disk).
func (l *Live) DeploymentID() int64 { return l.id.Load() }

// Refresh switches to the newest deployment, if it changed. Watch calls it
// periodically.
func (l *Live) Refresh(ctx context.Context) error { return l.refresh(ctx) }

func (l *Live) refresh(ctx context.Context) error {
	id, err := l.st.LatestDeploymentID(ctx)
	if err != nil || id == l.id.Load() {
		return err
	}
	d, err := l.st.LatestDeployment(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := Load(d)
	if err != nil {
		// Publish validated it; a deployment that no longer loads (say,
		// an older binary reading a newer format) must not replace a
		// working catalog.
		return fmt.Errorf("deployment %d does not load: %w", d.ID, err)
	}
	l.cur.Store(c)
	l.id.Store(d.ID)
	l.log.Info("journeys deployment in force", "deployment", d.ID, "hash", d.Hash, "journeys", len(c.Journeys))
	return nil
}

// Watch polls for new deployments until ctx ends.
func (l *Live) Watch(ctx context.Context, every time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if err := l.refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("journeys deployment", "err", err)
		}
	}
}
