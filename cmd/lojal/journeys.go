package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lojal/lojal/internal/catalog"
)

func runJourneys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return exitError{code: 2, msg: "usage: lojal journeys validate|simulate|render|diff ..."}
	}
	switch args[0] {
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	}
	return exitError{code: 2, msg: fmt.Sprintf("lojal journeys: unknown command %q", args[0])}
}

// runValidate validates journeys directories or single journey files (with
// the schema, policy and templates of the directory they are in). Every
// error is printed as file:line:col: message.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("journeys validate", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return exitError{code: 2, msg: "usage: lojal journeys validate PATH..."}
	}
	var failed bool
	journeys, dirs := 0, 0
	// Single files are grouped by directory so each directory loads once.
	files := map[string][]string{}
	var order []string
	for _, p := range fs.Args() {
		info, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", p, errors.Unwrap(err))
			failed = true
			continue
		}
		if info.IsDir() {
			c, err := catalog.Load(os.DirFS(p), filepath.Clean(p))
			if err != nil {
				fmt.Fprintln(stdout, err)
				failed = true
				continue
			}
			journeys += len(c.Journeys)
			dirs++
			continue
		}
		dir := filepath.Dir(p)
		if _, ok := files[dir]; !ok {
			order = append(order, dir)
		}
		files[dir] = append(files[dir], filepath.Base(p))
	}
	for _, dir := range order {
		c, err := catalog.LoadFiles(os.DirFS(dir), filepath.Clean(dir), files[dir])
		if err != nil {
			fmt.Fprintln(stdout, err)
			failed = true
			continue
		}
		journeys += len(c.Journeys)
	}
	if failed {
		return exitError{code: 1}
	}
	what := []string{fmt.Sprintf("%d journeys", journeys)}
	if dirs > 0 {
		what = append(what, fmt.Sprintf("%d directories", dirs))
	}
	fmt.Fprintf(stdout, "ok: %s valid (schema, policy, conditions, templates)\n", strings.Join(what, " in "))
	return nil
}
