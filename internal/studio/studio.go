// Package studio is lojal's local desk for marketers: a web application
// that reads a journeys directory and shows every journey as a diagram
// with its problems on the steps they concern, every template in every
// locale as the customer will see it, a simulation of all journeys at
// once with the policy between them, an audience preview, and a diff
// between two directories or git revisions. It needs no Postgres or
// Temporal, loads nothing from outside (no CDN), and reloads the page when
// a file changes.
package studio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
)

// Options configure a studio.
type Options struct {
	// Dir is the journeys directory.
	Dir string
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Studio serves one journeys directory.
type Studio struct {
	dir string
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	snap   *snapshot
	sample sample
}

// snapshot is the directory as last read.
type snapshot struct {
	hash     string
	cat      *catalog.Catalog
	errs     journey.ErrorList
	outlines []*journey.Outline
	loadedAt time.Time
}

// New reads the directory once; Watch keeps it current.
func New(o Options) (*Studio, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if st, err := os.Stat(o.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("journeys directory %s: not a directory (give --journeys DIR)", o.Dir)
	}
	s := &Studio{dir: filepath.Clean(o.Dir), log: o.Log, now: o.Now}
	if _, err := s.reload(); err != nil {
		return nil, err
	}
	s.sample = defaultSample(s.dir, s.current().cat)
	return s, nil
}

func (s *Studio) current() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Watch reads the directory again whenever a file in it changes, until
// ctx ends. Pages poll /version and reload themselves.
func (s *Studio) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := s.reload()
			if err != nil {
				s.log.Warn("studio: read journeys", "dir", s.dir, "err", err)
			} else if changed {
				s.log.Info("studio: journeys changed, pages reload", "dir", s.dir)
			}
		}
	}
}

// reload reads the directory if its files changed since the last read.
func (s *Studio) reload() (bool, error) {
	hash, err := dirHash(s.dir)
	if err != nil {
		return false, err
	}
	if cur := s.current(); cur != nil && cur.hash == hash {
		return false, nil
	}
	fsys := os.DirFS(s.dir)
	cat, errs := catalog.Inspect(fsys, s.dir)
	snap := &snapshot{hash: hash, cat: cat, errs: errs, loadedAt: s.now()}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == catalog.SchemaFile || n == catalog.PolicyFile || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		src, err := fs.ReadFile(fsys, n)
		if err != nil {
			return false, err
		}
		o, _ := journey.ParseOutline(path.Join(s.dir, n), src)
		if o == nil {
			o = &journey.Outline{File: path.Join(s.dir, n)}
		}
		snap.outlines = append(snap.outlines, o)
	}
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
	return true, nil
}

// dirHash is a hash of every file's name, size and modification time:
// cheap enough to take twice a second.
func dirHash(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != dir {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// CheckAddr refuses a listen address that is not on loopback: the studio
// reads local files and git history and has no login.
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want 127.0.0.1:PORT", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--addr %q: the studio listens on loopback only (127.0.0.1:PORT): it reads local files and has no login", addr)
}

// guard refuses requests a web page elsewhere could make through the
// user's browser: a Host that is not loopback (DNS rebinding), a POST
// from another origin, and any request another site's page makes but a
// link to the front page (a GET such as /diff runs git on what its query
// names).
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "lojal studio answers on 127.0.0.1 and localhost only", http.StatusMisdirectedRequest)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); (site == "cross-site" || site == "same-site") && r.URL.Path != "/" {
			http.Error(w, "cross-site request refused: open lojal studio from its address", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// Handler serves the studio.
func (s *Studio) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.journeysPage)
	mux.HandleFunc("GET /diagram/{id}", s.diagram)
	mux.HandleFunc("GET /templates", s.templatesPage)
	mux.HandleFunc("GET /simulate", s.simulatePage)
	mux.HandleFunc("GET /diff", s.diffPage)
	mux.HandleFunc("POST /sample", s.saveSample)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(s.current().hash))
	})
	mux.HandleFunc("GET /studio.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write([]byte(reloadScript))
	})
	return guard(mux)
}

// reloadScript reloads the page when the journeys directory changes.
const reloadScript = `(function () {
  var seen = document.documentElement.getAttribute("data-version");
  function poll() {
    fetch("/version", {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (v) {
      if (v && v !== seen) { location.reload(); return; }
      setTimeout(poll, 700);
    }).catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 700);
})();
`

// problemsByStep sorts a snapshot's problems: by journey file and step,
// for the diagrams; the rest by file.
func (sn *snapshot) problemsByStep() (map[string]map[int][]string, map[string][]string, []journey.Error) {
	steps := map[string]map[int][]string{}
	whole := map[string][]string{}
	var other []journey.Error
	byFile := map[string]*journey.Outline{}
	for _, o := range sn.outlines {
		byFile[o.File] = o
	}
	for _, e := range sn.errs {
		o, ok := byFile[e.File]
		if !ok {
			other = append(other, e)
			// A template's problem is also shown on the steps that send
			// it.
			if tmpl := templateOf(e.File); tmpl != "" {
				for _, o := range sn.outlines {
					for i, st := range o.Steps {
						if st.Template == tmpl {
							if steps[o.File] == nil {
								steps[o.File] = map[int][]string{}
							}
							steps[o.File][i] = appendOnce(steps[o.File][i], fmt.Sprintf("%s:%d: %s", path.Base(path.Dir(e.File))+"/"+path.Base(e.File), e.Line, e.Msg))
						}
					}
				}
			}
			continue
		}
		msg := fmt.Sprintf("line %d: %s", e.Line, e.Msg)
		if i := o.StepAt(e.Line); i >= 0 {
			if steps[o.File] == nil {
				steps[o.File] = map[int][]string{}
			}
			steps[o.File][i] = append(steps[o.File][i], msg)
			continue
		}
		whole[o.File] = append(whole[o.File], msg)
	}
	return steps, whole, other
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// templateOf returns the template a file under templates/ belongs to.
func templateOf(file string) string {
	dir := path.Dir(file)
	if path.Base(path.Dir(dir)) != catalog.TemplatesDir {
		return ""
	}
	return path.Base(dir)
}
