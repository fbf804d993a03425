package store

import (
	"slices"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	cases := map[string]struct {
		sql  string
		want []string
	}{
		"plain": {"SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		"comments only are dropped": {"-- migrate: no-transaction\n-- why\n\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- trailing\n",
			[]string{"-- migrate: no-transaction\n-- why\n\nCREATE INDEX CONCURRENTLY i ON t (a)"}},
		"semicolon in a comment": {"SELECT 1 -- a; b\n; SELECT 2", []string{"SELECT 1 -- a; b", "SELECT 2"}},
		"semicolon in a block comment": {"/* a; /* nested; */ b; */ SELECT 1; SELECT 2",
			[]string{"/* a; /* nested; */ b; */ SELECT 1", "SELECT 2"}},
		"semicolon in quotes": {`SELECT 'a;''b'; SELECT "x;y" FROM t`, []string{`SELECT 'a;''b'`, `SELECT "x;y" FROM t`}},
		"dollar quotes": {"DO $$ BEGIN PERFORM 1; END $$; CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;",
			[]string{"DO $$ BEGIN PERFORM 1; END $$", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$"}},
		"positional parameter is not a dollar quote": {"PREPARE p AS SELECT $1; SELECT 2", []string{"PREPARE p AS SELECT $1", "SELECT 2"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := splitStatements(c.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}
	for _, bad := range []string{"SELECT 'a", "DO $$ BEGIN", "/* open", `SELECT "x`} {
		if _, err := splitStatements(bad); err == nil {
			t.Errorf("%q: no error, want one naming what is unterminated", bad)
		}
	}
}

func TestEveryNoTransactionMigrationSplits(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.NoTransaction {
			continue
		}
		stmts, err := splitStatements(m.SQL)
		if err != nil || len(stmts) == 0 {
			t.Errorf("%03d_%s: %d statements, %v", m.Version, m.Name, len(stmts), err)
		}
	}
}
