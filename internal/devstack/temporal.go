package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// TemporalVersion is the pinned Temporal CLI (newer tags carry replace
// directives and refuse `go install`).
const TemporalVersion = "v1.5.1"

// Temporal is a Temporal CLI dev server.
type Temporal struct {
	// Address is host:port of the frontend.
	Address string
	// UIAddress is the web UI, when enabled.
	UIAddress string

	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// FindTemporal returns the temporal binary: LOJAL_TEMPORAL_BIN, PATH, or
// GOPATH/bin where `go install` puts it.
func FindTemporal() (string, error) {
	if p := os.Getenv("LOJAL_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = string(trimNL(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", "temporal")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("temporal CLI not found: run `make tools` (go install github.com/temporalio/cli/cmd/temporal@%s), "+
		"set LOJAL_TEMPORAL_BIN, or set TEMPORAL_ADDRESS to use an existing server", TemporalVersion)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// TemporalOptions tune the dev server.
type TemporalOptions struct {
	// UI enables the web UI.
	UI bool
	// DBFile persists state across restarts (empty: in memory).
	DBFile string
	// Port is the frontend's port (0: a free one). A restart with the
	// same DBFile and Port is the same server to its clients.
	Port int
}

// StartTemporal starts the dev server on a free port and waits until it
// answers. Free ports are found by binding and closing them, so another
// process can take one before the server binds it: a start that fails on
// a port in use is tried again (on new ports, but for a Port the caller
// fixed).
func StartTemporal(ctx context.Context, log *slog.Logger, opts TemporalOptions) (*Temporal, error) {
	bin, err := FindTemporal()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		t, err := startTemporal(ctx, bin, opts)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 5 {
			return t, err
		}
		log.Debug("temporal dev server lost a port race; starting again", "attempt", attempt)
	}
}

func startTemporal(ctx context.Context, bin string, opts TemporalOptions) (*Temporal, error) {
	var err error
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	t := &Temporal{Address: "127.0.0.1:" + strconv.Itoa(port)}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--log-level", "error",
		"--dynamic-config-value", "limit.blobSize.warn=1048576"}
	if opts.UI {
		uiPort, err := FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
		t.UIAddress = "http://127.0.0.1:" + strconv.Itoa(uiPort)
	} else {
		args = append(args, "--headless")
	}
	for _, flag := range []string{"--http-port", "--metrics-port"} {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, flag, strconv.Itoa(p))
	}
	if opts.DBFile != "" {
		args = append(args, "--db-filename", opts.DBFile)
	}
	logf, err := os.CreateTemp("", "lojal-temporal-*.log")
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	t.log = logf.Name()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("temporal: start %s: %w", bin, err)
	}
	t.cmd = cmd
	t.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(t.done)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := client.Dial(client.Options{HostPort: t.Address, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			_, herr := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if herr == nil {
				return t, nil
			}
			err = herr
		}
		select {
		case <-t.done:
			out, _ := os.ReadFile(t.log)
			os.Remove(t.log)
			return nil, exitedDuringStart(out)
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Stop()
			return nil, errors.Join(errors.New("temporal dev server not ready after 90s"), err)
		}
	}
}

// Stop stops the server.
func (t *Temporal) Stop() {
	if t.cmd == nil || t.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.done
	}
	t.cmd = nil
	os.Remove(t.log)
}

// errPortTaken marks a start that lost a port to another process.
var errPortTaken = errors.New("a port it was given was taken meanwhile")

// exitedDuringStart is the error for a dev server that exited while it
// started, from its log: the first line (a panic names its cause there)
// and the end. A lost port race is errPortTaken wherever the log says so:
// a panic puts the bind error first and a long stack after it.
func exitedDuringStart(log []byte) error {
	first, _, _ := bytes.Cut(log, []byte("\n"))
	err := fmt.Errorf("temporal dev server exited during start: %s\n...\n%s", first, tail(log, 2000))
	if bytes.Contains(log, []byte("address already in use")) {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}
