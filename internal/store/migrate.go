package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationRE = regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.sql$`)

// noTransaction is the first line of a migration that must run outside a
// transaction.
const noTransaction = "-- migrate: no-transaction"

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
	// NoTransaction migrations (first line "-- migrate: no-transaction")
	// run one statement at a time outside a transaction block: CREATE
	// INDEX CONCURRENTLY, VALIDATE CONSTRAINT and long backfills, which
	// let writes go on while they run, refuse to run inside one. Each
	// statement is its own transaction, so one that fails half-way leaves
	// the earlier ones done: every statement must be safe to run again
	// (IF NOT EXISTS, ON CONFLICT DO NOTHING), because the migration is
	// run again from its first statement. An index a failed CREATE INDEX
	// CONCURRENTLY left behind (invalid) is dropped before the retry.
	NoTransaction bool
}

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: want NNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		sql := string(b)
		first, _, _ := strings.Cut(sql, "\n")
		out = append(out, Migration{Version: v, Name: m[2], SQL: sql, NoTransaction: strings.TrimSpace(first) == noTransaction})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	if err := checkNumbering(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkNumbering(ms []Migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("migrations must be numbered 001, 002, ... without gaps; found %03d at position %d", m.Version, i+1)
		}
	}
	return nil
}

// How long a migration's statement may wait for a lock before it gives up
// and tries again, and how often. A statement that needs a lock every
// decision also needs (ALTER TABLE takes ACCESS EXCLUSIVE) queues behind a
// long report, and every decision would queue behind it: giving up after
// a few seconds bounds that stall, and trying again later gets through
// between reports.
const (
	migrationLockTimeout = 5 * time.Second
	migrationAttempts    = 10
)

// Migrate applies the embedded migrations the database lacks and returns
// the versions applied.
func Migrate(ctx context.Context, cfg Config) ([]int, error) {
	return MigrateTo(ctx, cfg, 0)
}

// MigrateTo applies the embedded migrations up to version (0: all), for
// tests that upgrade a database filled by an older schema.
func MigrateTo(ctx context.Context, cfg Config, version int) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	if version > 0 && version < len(ms) {
		ms = ms[:version]
	}
	return Apply(ctx, cfg, ms)
}

// Apply applies the migrations in ms (numbered 1, 2, ...) that the
// database lacks, each in its own transaction unless it is NoTransaction,
// and returns the versions applied. Migrations of one schema are
// serialised by an advisory lock, so two workers starting at once do not
// both apply one; migrations of different schemas do not wait for each
// other.
func Apply(ctx context.Context, cfg Config, ms []Migration) ([]int, error) {
	if err := checkNumbering(ms); err != nil {
		return nil, err
	}
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.Schema != "" {
		cc.RuntimeParams["search_path"] = cfg.Schema
	}
	// A migration on a server that vanished fails within half a minute,
	// as the store's connections do (dialer).
	dialWithTimeouts(cc)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", address(cc), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if cfg.Schema != "" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{cfg.Schema}.Sanitize()); err != nil {
			return nil, fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('lojal-migrate:' || current_schema(), 0))"); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), //nolint:errcheck // unlocks on disconnect anyway
		"SELECT pg_advisory_unlock(hashtextextended('lojal-migrate:' || current_schema(), 0))")
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	if current > max(len(ms), len(all)) {
		return nil, fmt.Errorf("database is at schema version %d, newer than this binary knows (%d)", current, len(all))
	}
	var applied []int
	for _, m := range ms[min(current, len(ms)):] {
		if m.NoTransaction {
			err = applyOutsideTransaction(ctx, conn, m)
		} else {
			err = applyInTransaction(ctx, conn, m)
		}
		if err != nil {
			return applied, fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	if len(ms) == len(all) {
		// The months ahead, in case the retention job (which keeps them
		// ahead) has not run for a while: `lojal migrate` is the remedy
		// the error of a missing partition names.
		if _, err := conn.Exec(ctx, `SELECT ensure_monthly_partitions(table_name, now() - interval '1 month',
			date_trunc('month', now()) + interval '4 months') FROM partitioned_tables`); err != nil {
			return applied, fmt.Errorf("create partitions ahead: %w", err)
		}
	}
	return applied, nil
}

func applyInTransaction(ctx context.Context, conn *pgx.Conn, m Migration) error {
	return retryLockTimeout(ctx, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", pgInterval(migrationLockTimeout)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
	})
}

// applyOutsideTransaction runs a NoTransaction migration statement by
// statement, each in a transaction of its own, so CREATE INDEX
// CONCURRENTLY works and writers are never held up for the whole of it.
// A statement may change lock_timeout or statement_timeout for those
// after it (CREATE INDEX CONCURRENTLY waits for every older transaction,
// and lock_timeout bounds that wait too); both are reset afterwards.
func applyOutsideTransaction(ctx context.Context, conn *pgx.Conn, m Migration) error {
	stmts, err := splitStatements(m.SQL)
	if err != nil {
		return err
	}
	if err := dropInvalidIndexes(ctx, conn, m.SQL); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout; RESET statement_timeout") //nolint:errcheck // the connection closes after migrating
	if _, err := conn.Exec(ctx, "SELECT set_config('lock_timeout', $1, false)", pgInterval(migrationLockTimeout)); err != nil {
		return err
	}
	for i, stmt := range stmts {
		// A CREATE INDEX CONCURRENTLY that gave up waiting leaves its index
		// behind, invalid; IF NOT EXISTS would then skip it. Each retry
		// drops it first.
		tried := false
		err := retryLockTimeout(ctx, func() error {
			if tried {
				if err := dropInvalidIndexes(ctx, conn, stmt); err != nil {
					return err
				}
			}
			tried = true
			_, err := conn.Exec(ctx, stmt)
			return err
		})
		if err != nil {
			return fmt.Errorf("statement %d (%s): %w", i+1, firstLine(stmt), err)
		}
	}
	left, err := invalidIndexes(ctx, conn, m.SQL)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("indexes %v are left invalid; run the migration again", left)
	}
	_, err = conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
	return err
}

// dropInvalidIndexes drops the indexes of the current schema that a
// CREATE INDEX CONCURRENTLY interrupted before (a killed migration, a
// unique index that met a duplicate) left invalid, when the migration
// about to run names them: CREATE INDEX ... IF NOT EXISTS would otherwise
// keep the invalid one, which no query can use.
func dropInvalidIndexes(ctx context.Context, conn *pgx.Conn, sql string) error {
	names, err := invalidIndexes(ctx, conn, sql)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
			return fmt.Errorf("drop invalid index %s left by an earlier attempt: %w", n, err)
		}
	}
	return nil
}

// invalidIndexes names the invalid indexes of the current schema that sql
// names.
func invalidIndexes(ctx context.Context, conn *pgx.Conn, sql string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("find invalid indexes: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find invalid indexes: %w", err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.Contains(sql, n) }), nil
}

// retryLockTimeout runs f again while it fails on lock_timeout.
func retryLockTimeout(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt == migrationAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

func pgInterval(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

func firstLine(stmt string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(stmt), "\n")
	return line
}

// splitStatements splits SQL into statements at the semicolons outside
// quotes, dollar quotes and comments, dropping empty ones and those that
// are only comments.
func splitStatements(sql string) ([]string, error) {
	var out []string
	start, code := 0, false
	flush := func(end int) {
		if code {
			out = append(out, strings.TrimSpace(sql[start:end]))
		}
		start, code = end+1, false
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				i = len(sql)
			} else {
				i += j
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			depth := 0
			for ; i < len(sql); i++ {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i++
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i++
					if depth == 0 {
						break
					}
				}
			}
			if depth != 0 {
				return nil, errors.New("unterminated /* comment")
			}
		case c == '\'' || c == '"':
			j := strings.IndexByte(sql[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			i += j + 1 // a doubled quote is two strings back to back
			code = true
		case c == '$':
			tag := dollarTagRE.FindString(sql[i:])
			if tag == "" {
				code = true
				continue
			}
			j := strings.Index(sql[i+len(tag):], tag)
			if j < 0 {
				return nil, fmt.Errorf("unterminated dollar quote %s", tag)
			}
			i += len(tag) + j + len(tag) - 1
			code = true
		case c == ';':
			flush(i)
		case c != ' ' && c != '\t' && c != '\n' && c != '\r':
			code = true
		}
	}
	flush(len(sql))
	return out, nil
}

var dollarTagRE = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)
