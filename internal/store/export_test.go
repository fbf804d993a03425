package store

// QuerySQL returns the text of a named query in queries/*.sql, for tests
// that EXPLAIN it.
func QuerySQL(name string) string {
	sqls := map[string]string{}
	files, _ := queryFiles.ReadDir("queries")
	for _, f := range files {
		b, _ := queryFiles.ReadFile("queries/" + f.Name())
		_ = splitQueries(f.Name(), b, sqls)
	}
	return sqls[name]
}
