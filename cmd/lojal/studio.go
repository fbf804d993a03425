package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lojal/lojal/internal/httpserver"
	"github.com/lojal/lojal/internal/studio"
)

// runStudio serves lojal studio for a journeys directory until ctx ends.
func runStudio(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("studio", stderr)
	addr := fs.String("addr", "127.0.0.1:7070", "listen address (loopback only)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if err := studio.CheckAddr(*addr); err != nil {
		return exitError{code: 2, msg: "lojal studio: " + err.Error()}
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	st, err := studio.New(studio.Options{Dir: cfg.Journeys, Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("studio: %w", err)
	}
	fmt.Fprintf(stdout, "lojal studio: http://%s  (journeys from %s; pages reload when a file changes; Ctrl-C stops)\n", ln.Addr(), cfg.Journeys)
	return serveStudio(ctx, st, ln)
}

// serveStudio serves a studio on ln until ctx ends.
func serveStudio(ctx context.Context, st *studio.Studio, ln net.Listener) error {
	srv := httpserver.New("", st.Handler(), httpserver.API)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go st.Watch(wctx, 500*time.Millisecond)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("studio: %w", err)
	}
	return nil
}
