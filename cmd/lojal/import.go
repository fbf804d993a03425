package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/progress"
)

// runImport loads customers from a JSON Lines file through the same path as
// the API (schema validation, consent, segment-entry journeys), with a
// progress bar. Bad lines are reported by line number and skipped.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "customers" {
		return exitError{code: 2, msg: "usage: lojal import customers FILE.jsonl [--parallel N]"}
	}
	cfg := defaultConfig()
	fs := newFlagSet("import customers", stderr)
	parallel := fs.Int("parallel", 8, "customers upserted at once")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{code: 2, msg: "usage: lojal import customers FILE.jsonl [--parallel N]"}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	svc, err := connect(ctx, cfg, log, client.Dial)
	if err != nil {
		return err
	}
	defer svc.Close()
	d := &ingest.Dispatcher{Store: svc.st, Temporal: svc.tc, Catalog: svc.cat, Log: log}

	type line struct {
		no   int
		text []byte
	}
	lines := make(chan line, *parallel*4)
	bar := progress.New(stderr, "importing customers", st.Size())
	var mu sync.Mutex
	var bad []string
	imported, started := 0, 0
	var wg sync.WaitGroup
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range lines {
				err := importLine(ctx, d, l.text, &started, &mu)
				mu.Lock()
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s:%d: %v", fs.Arg(0), l.no, err))
				} else {
					imported++
				}
				mu.Unlock()
				bar.Add(int64(len(l.text)+1), 1)
			}
		}()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	no := 0
	for sc.Scan() && ctx.Err() == nil {
		no++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			bar.Add(1, 0)
			continue
		}
		lines <- line{no: no, text: append([]byte(nil), text...)}
	}
	close(lines)
	wg.Wait()
	bar.Finish()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "imported %d customers (%d segment-entry runs started), %d lines refused\n", imported, started, len(bad))
	for i, b := range bad {
		if i == 20 {
			fmt.Fprintf(stdout, "... and %d more\n", len(bad)-20)
			break
		}
		fmt.Fprintln(stdout, b)
	}
	if len(bad) > 0 {
		return exitError{code: 1}
	}
	return ctx.Err()
}

func importLine(ctx context.Context, d *ingest.Dispatcher, text []byte, started *int, mu *sync.Mutex) error {
	var c journey.Customer
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return err
	}
	res, err := d.Customer(ctx, c)
	if err != nil {
		return err
	}
	for _, o := range res.Journeys {
		if o.Action == "started" {
			mu.Lock()
			*started++
			mu.Unlock()
		}
	}
	return nil
}
