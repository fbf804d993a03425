package metrics

import (
	"regexp"
	"slices"
	"strings"
)

// metricRef finds names of lojal's and the Temporal SDK's metrics in a
// PromQL expression. Label values cannot match: lojal's queues and label
// values use hyphens (lojal-journeys), and a name is never quoted.
var metricRef = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:"])((?:lojal|temporal)_[a-zA-Z0-9_:]+)`)

// NamesIn returns the metric families a PromQL expression reads, as a
// registry names them: a histogram's _bucket, _sum and _count series are
// its family's.
func NamesIn(expr string) []string {
	var names []string
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		n := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok {
				n = base
				break
			}
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}
