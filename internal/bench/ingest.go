package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/store"
)

// IngestOptions configure the ingest benchmark.
type IngestOptions struct {
	URL       string
	Journeys  catalog.Source
	Conc      int
	Duration  time.Duration
	Rounds    int
	Customers int
	Batch     int
}

// Ingest measures events accepted per second through the HTTP API (auth,
// strict decoding, schema validation, idempotent insert into Postgres),
// one event per request, and in batches.
func Ingest(ctx context.Context, o IngestOptions) ([]LimitResult, error) {
	single := LimitResult{Name: fmt.Sprintf("event ingest via the API, 1 event per request, %d clients", o.Conc), Unit: "events/s", Min: 2000}
	batch := LimitResult{Name: fmt.Sprintf("event ingest via the API, %d events per request, %d clients", o.Batch, o.Conc), Unit: "events/s", Min: 2000}
	st, _, closeStore, err := schemaStore(ctx, o.URL, "ingest", o.Conc+4)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	if err := copyCustomers(ctx, st, "c-", o.Customers, []string{"Europe/Oslo"}, `{"first_name": "Kari", "plan": "home"}`); err != nil {
		return nil, err
	}
	const token = "lj_bench"
	if _, err := st.CreateToken(ctx, "bench", token); err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	d := &ingest.Dispatcher{Store: st, Catalog: o.Journeys, Log: log}
	srv := httptest.NewServer((&api.Server{Store: st, Dispatcher: d, Catalog: o.Journeys, Log: log}).Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Conc * 2}}
	seq := time.Now().UnixNano()
	post := func(path string, body []byte) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s", path, resp.Status)
		}
		return nil
	}
	event := func(w, i, k int) map[string]any {
		return map[string]any{"id": fmt.Sprintf("e-%d-%d-%d-%d", seq, w, i, k), "type": "order.placed",
			"customer_id": fmt.Sprintf("c-%07d", (w*7919+i*31+k)%o.Customers), "at": time.Now().UTC().Format(time.RFC3339),
			"data": map[string]any{"order_id": fmt.Sprintf("o-%d-%d", i, k), "total": 499.0}}
	}
	for range o.Rounds {
		seq++
		rate, err := throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			b, _ := json.Marshal(event(w, i, 0))
			return post("/v1/events", b)
		})
		if err != nil {
			return nil, fmt.Errorf("single: %w", err)
		}
		single.Values = append(single.Values, rate)
		seq++
		rate, err = throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			evs := make([]map[string]any, o.Batch)
			for k := range evs {
				evs[k] = event(w, i, k)
			}
			b, _ := json.Marshal(map[string]any{"events": evs})
			return post("/v1/events/batch", b)
		})
		if err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		batch.Values = append(batch.Values, rate*float64(o.Batch))
	}
	return []LimitResult{single, batch}, nil
}

// copyCustomers bulk-loads n customers with COPY, ids prefix0000000...,
// all in one time zone, with the given attributes JSON.
func copyCustomers(ctx context.Context, st *store.Store, prefix string, n int, zones []string, attrs string) error {
	rows := make([][]any, 0, 10000)
	flush := func() error {
		_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"customers"},
			[]string{"id", "email", "locale", "timezone", "attributes"}, pgx.CopyFromRows(rows))
		rows = rows[:0]
		return err
	}
	for i := range n {
		rows = append(rows, []any{fmt.Sprintf("%s%07d", prefix, i), fmt.Sprintf("%s%d@example.no", prefix, i), "nb", zones[i%len(zones)], attrs})
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(rows) > 0 {
		return flush()
	}
	return nil
}

// EnrolOptions configure the enrolment benchmark.
type EnrolOptions struct {
	URL      string
	Journeys catalog.Source
	// Journey is a scheduled journey in Journeys.
	Journey string
	Sizes   []int
	// Zones is how many time zones each audience is spread across, all
	// enrolled by one firing (default 1).
	Zones int
}

// benchZones are time zones for audiences: each size takes its own.
func benchZones() []string {
	return []string{"Europe/Oslo", "America/New_York", "Asia/Tokyo", "Europe/London", "Europe/Stockholm", "Europe/Copenhagen",
		"Europe/Helsinki", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Rome", "Europe/Warsaw", "America/Chicago", "America/Denver",
		"America/Los_Angeles", "Asia/Singapore", "Australia/Sydney", "Africa/Lagos", "Asia/Kolkata", "UTC", "Europe/Dublin", "Europe/Lisbon",
		"Europe/Vienna", "Europe/Prague", "Europe/Athens", "Europe/Istanbul", "Asia/Dubai", "Asia/Shanghai", "Asia/Seoul", "Asia/Jakarta",
		"America/Toronto", "America/Sao_Paulo", "America/Mexico_City", "America/Bogota", "Africa/Cairo", "Africa/Johannesburg",
		"Pacific/Auckland", "Atlantic/Reykjavik", "America/Anchorage", "Pacific/Honolulu"}
}

// EnrolResult is memory and time at each audience size.
type EnrolResult struct {
	Size     int
	Enrolled int
	Took     time.Duration
	// PeakRSS is the process's peak resident set (VmHWM) after enrolling.
	PeakRSS int64
	// PeakHeap is the highest Go heap in use seen while enrolling.
	PeakHeap uint64
}

// Enrol enrols audiences of growing size from a scheduled journey, a page
// at a time, and reports the process's peak memory after each: flat memory
// means the peak does not grow with the audience.
func Enrol(ctx context.Context, o EnrolOptions) ([]EnrolResult, error) {
	st, _, closeStore, err := schemaStore(ctx, o.URL, "enrol", 8)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	a := &activities.Activities{Store: st, Catalog: o.Journeys, Log: slog.New(slog.DiscardHandler)}
	var out []EnrolResult
	zones, all := max(o.Zones, 1), benchZones()
	for i, size := range o.Sizes {
		// Each size has time zones of its own.
		var sizeZones []string
		for z := range zones {
			sizeZones = append(sizeZones, all[(i*zones+z)%len(all)])
		}
		if err := copyCustomers(ctx, st, fmt.Sprintf("z%d-", i), size, sizeZones, `{"first_name": "Kari", "customer_since": "2024-01-01T00:00:00Z"}`); err != nil {
			return nil, err
		}
		runtime.GC()
		stop := make(chan struct{})
		peak := make(chan uint64)
		go func() {
			var ms runtime.MemStats
			var max uint64
			for {
				runtime.ReadMemStats(&ms)
				max = maxU(max, ms.HeapInuse)
				select {
				case <-stop:
					peak <- max
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		res, err := a.Enrol(ctx, activities.EnrolInput{JourneyID: o.Journey, Zones: sizeZones, Fire: time.Now(), PageSize: 1000})
		took := time.Since(start)
		close(stop)
		heap := <-peak
		if err != nil {
			return nil, err
		}
		out = append(out, EnrolResult{Size: size, Enrolled: res.Enrolled, Took: took, PeakRSS: vmHWM(), PeakHeap: heap})
	}
	return out, nil
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// vmHWM reads the process's peak resident set size in bytes.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
