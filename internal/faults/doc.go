// Package faults holds lojal's fault tests: the worker killed with SIGKILL
// at random points, Postgres restarted during sends, the SMTP server
// refusing and dropping connections, events duplicated and out of order,
// and journeys edited while customers are in them. Each prints its figures
// and fails on any duplicate or lost message. They need the faults build
// tag: make test-faults.
package faults
