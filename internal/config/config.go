// Package config fills a binary's typed configuration struct from flags and
// environment variables, and prints it with secrets masked.
//
// Fields declare themselves with tags:
//
//	DatabaseURL string `flag:"database-url" env:"DATABASE_URL" secret:"url" usage:"Postgres URL"`
//
// A flag given on the command line wins over the environment, which wins
// over the default (the field's value before Load). secret:"true" masks the
// whole value; secret:"url" masks the secrets inside a connection string
// (see MaskURL). NewRedactor masks the same secrets in log lines.
package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Load registers cfg's fields as flags on fs, parses args and applies the
// environment. cfg must be a pointer to a struct.
func Load(fs *flag.FlagSet, args []string, cfg any) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		usage := f.Tag.Get("usage")
		if env := f.Tag.Get("env"); env != "" {
			usage += " (env " + env + ")"
		}
		fv := v.Field(i)
		switch p := fv.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		case *float64:
			fs.Float64Var(p, name, *p, usage)
		default:
			return fmt.Errorf("config: field %s has unsupported type %s", f.Name, f.Type)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i := range t.NumField() {
		f := t.Field(i)
		env := f.Tag.Get("env")
		if env == "" || set[f.Tag.Get("flag")] {
			continue
		}
		val, ok := os.LookupEnv(env)
		if !ok {
			continue
		}
		if err := setValue(v.Field(i), val); err != nil {
			return fmt.Errorf("config: %s=%q: %w", env, val, err)
		}
	}
	return nil
}

func setValue(v reflect.Value, s string) error {
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = s
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*p = d
	case *float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		*p = f
	}
	return nil
}

// String prints cfg one field per line, secrets masked.
func String(cfg any) string {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	var b strings.Builder
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		val := fmt.Sprint(v.Field(i).Interface())
		switch f.Tag.Get("secret") {
		case "true":
			if val != "" {
				val = masked
			}
		case "url":
			val = MaskURL(val)
		}
		fmt.Fprintf(&b, "%s=%s\n", name, val)
	}
	return b.String()
}
