// Package devstack starts the real services lojal needs, locally and
// throw-away, for `lojal dev`, tests and benchmarks: a PostgreSQL cluster in
// a temporary directory and the Temporal CLI's dev server, each on a free
// loopback port. Nothing is downloaded: the binaries must be installed
// (`make tools` does it).
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throw-away PostgreSQL cluster.
type Postgres struct {
	// URL connects as the superuser to the lojal database.
	URL string

	bin  string
	dir  string
	port int
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{}
	opts PostgresOptions
	log  *slog.Logger
}

// PostgresOptions tune the cluster.
type PostgresOptions struct {
	// Durable keeps fsync on. Tests turn it off for speed; benchmarks and
	// the demo keep Postgres honest.
	Durable bool
	// Database is created after start (default "lojal").
	Database string
}

// FindPostgres returns the directory holding initdb and postgres: from
// LOJAL_PG_BIN, pg_config, Debian's /usr/lib/postgresql/<v>/bin (newest
// first) or PATH.
func FindPostgres() (string, error) {
	if dir := os.Getenv("LOJAL_PG_BIN"); dir != "" {
		return dir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(matches, func(a, b string) int { return versionOf(b) - versionOf(a) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: run `make tools` " +
		"(apt-get install -y postgresql), set LOJAL_PG_BIN, or set DATABASE_URL to use an existing server")
}

func versionOf(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// StartPostgres initialises and starts a cluster in a new temporary
// directory. initdb and postgres refuse to run as root, so as root they run
// as the postgres OS user on a directory it owns.
func StartPostgres(ctx context.Context, log *slog.Logger, opts PostgresOptions) (*Postgres, error) {
	bin, err := FindPostgres()
	if err != nil {
		return nil, err
	}
	if opts.Database == "" {
		opts.Database = "lojal"
	}
	p := &Postgres{bin: bin, opts: opts, log: log}
	p.dir, err = TempDir("lojal-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(p.dir)
			return nil, fmt.Errorf("postgres: running as root needs the postgres OS user (apt-get install postgresql creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(p.dir, uid, gid); err != nil {
			os.RemoveAll(p.dir)
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	data := filepath.Join(p.dir, "data")
	initdb := p.command(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(p.dir)
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	if err := p.Start(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	conn, err := pgx.Connect(ctx, p.adminURL("postgres"))
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{opts.Database}.Sanitize()); err != nil {
		p.Stop()
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	p.URL = p.adminURL(opts.Database)
	return p, nil
}

func (p *Postgres) adminURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// Start starts (or restarts, after Kill) the server on its port.
func (p *Postgres) Start(ctx context.Context) error {
	if p.port == 0 {
		port, err := FreePort()
		if err != nil {
			return err
		}
		p.port = port
	}
	args := []string{"-D", filepath.Join(p.dir, "data"), "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "max_connections=300", "-c", "shared_buffers=256MB"}
	if !p.opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logFile, err := os.OpenFile(filepath.Join(p.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// The server outlives ctx (it is stopped by Stop), so it gets its own.
	cmd := p.command(context.WithoutCancel(ctx), "postgres", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("postgres: start: %w", err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, p.adminURL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
			return fmt.Errorf("postgres exited during start:\n%s", tail(log, 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: not ready after 60s: %w", err)
		}
	}
}

// Kill stops the server abruptly (for fault tests); Start brings it back.
func (p *Postgres) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Stop shuts the server down and removes its directory.
func (p *Postgres) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		p.cmd = nil
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
