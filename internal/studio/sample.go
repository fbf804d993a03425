package studio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
)

// sample is the customer, events and customer file the pages use; the
// marketer edits them in the page.
type sample struct {
	// Customer is one customer as JSON, as the API takes it.
	Customer string
	// Events are JSON lines, as the API takes them.
	Events string
	// Customers is a JSON array or JSON lines of customers, for the
	// audience preview and to pick a customer from.
	Customers string
	Days      int
}

// defaultSample is the first demo customer and their demo events when the
// directory has demo/ (journeys/demo does), otherwise a customer made
// from the schema.
func defaultSample(dir string, cat *catalog.Catalog) sample {
	s := sample{Days: 30}
	demo := filepath.Join(dir, "demo")
	if b, err := os.ReadFile(filepath.Join(demo, "customers.json")); err == nil {
		s.Customers = string(b)
	}
	customers, _ := parseCustomers(s.Customers)
	if len(customers) > 0 {
		b, _ := json.MarshalIndent(customers[0], "", "  ")
		s.Customer = string(b)
		if evs, err := os.ReadFile(filepath.Join(demo, "events.jsonl")); err == nil {
			var lines []string
			seen := map[string]bool{}
			for _, l := range strings.Split(string(evs), "\n") {
				var e journey.Event
				if json.Unmarshal([]byte(l), &e) == nil && e.CustomerID == customers[0].ID && !seen[e.ID] {
					seen[e.ID] = true
					lines = append(lines, strings.TrimSpace(l))
				}
			}
			s.Events = strings.Join(lines, "\n")
		}
		return s
	}
	c := journey.Customer{ID: "c-1", Email: "kari.nordmann@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true, "push": true}, Attributes: map[string]any{}}
	if cat != nil && cat.Schema != nil {
		for _, f := range cat.Schema.Customer.Names() {
			c.Attributes[f] = exampleValue(f, cat.Schema.Customer[f])
		}
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	s.Customer = string(b)
	s.Customers = "[" + string(b) + "]"
	return s
}

// exampleValue is a plausible value of a schema type, for a sample.
func exampleValue(name string, t journey.Type) any {
	switch t {
	case journey.Int:
		return 1200
	case journey.Double:
		return 420.5
	case journey.Bool:
		return true
	case journey.Timestamp:
		return time.Now().UTC().AddDate(0, 0, 21).Truncate(24 * time.Hour).Format(time.RFC3339)
	case journey.Duration:
		return "36h"
	case journey.StringList:
		return []string{"example"}
	}
	switch {
	case strings.HasSuffix(name, "first_name"):
		return "Kari"
	case strings.HasSuffix(name, "last_name"):
		return "Nordmann"
	case strings.HasSuffix(name, "_id"):
		return "x-1001"
	case strings.HasSuffix(name, "phone"):
		return "+47 22 00 10 01"
	case strings.HasSuffix(name, "name"):
		return "Ingrid Solberg"
	}
	return "example"
}

// exampleEvent is an event of a type, made from the schema, for templates
// whose sample has none of it.
func exampleEvent(cat *catalog.Catalog, typ, customer string, at time.Time) journey.Event {
	e := journey.Event{ID: "sample-" + typ, Type: typ, CustomerID: customer, At: at, Data: map[string]any{}}
	if f, ok := cat.Schema.Events[typ]; ok {
		for _, n := range f.Names() {
			e.Data[n] = exampleValue(n, f[n])
		}
	}
	return e
}

func parseCustomer(s string) (journey.Customer, error) {
	var c journey.Customer
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("customer: %w", err)
	}
	return c, nil
}

// parseCustomers reads a JSON array or JSON lines of customers.
func parseCustomers(s string) ([]journey.Customer, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var out []journey.Customer
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("customer file: %w", err)
		}
		return out, nil
	}
	var out []journey.Customer
	for i, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		var c journey.Customer
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return nil, fmt.Errorf("customer file line %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseEvents(s string) ([]journey.Event, error) {
	var out []journey.Event
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var e journey.Event
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("events line %d: %w", line, err)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b journey.Event) int { return a.At.Compare(b.At) })
	return out, sc.Err()
}

// pages a form may return to.
var returnTo = []string{"/", "/templates", "/simulate"}

// saveSample stores the sample edited in a page, or picks a customer from
// the customer file.
func (s *Studio) saveSample(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	smp := s.sample
	if v, ok := r.PostForm["customer"]; ok {
		smp.Customer = v[0]
	}
	if v, ok := r.PostForm["events"]; ok {
		smp.Events = v[0]
	}
	if v, ok := r.PostForm["customers"]; ok {
		smp.Customers = v[0]
	}
	if v := r.PostForm.Get("days"); v != "" {
		var d int
		if _, err := fmt.Sscan(v, &d); err == nil && d > 0 && d <= 400 {
			smp.Days = d
		}
	}
	if id := r.PostForm.Get("pick"); id != "" {
		if cs, err := parseCustomers(smp.Customers); err == nil {
			for _, c := range cs {
				if c.ID == id {
					b, _ := json.MarshalIndent(c, "", "  ")
					smp.Customer = string(b)
				}
			}
		}
	}
	s.sample = smp
	s.mu.Unlock()
	back := r.PostForm.Get("back")
	if !slices.Contains(returnTo, back) {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (s *Studio) currentSample() sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sample
}
