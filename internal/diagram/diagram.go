// Package diagram draws a journey as an SVG flow chart, on the server and
// with no script: the steps in the order they are written, top to bottom,
// each with what it does; the next step below it, and every other way on
// (a goto, a branch case, a wait_for's timeout) as a line to the right
// that enters its target from the side. Problems found in a step are
// drawn on it, in red.
package diagram

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/journey"
)

// Sizes, in pixels.
const (
	nodeWidth  = 420
	lineHeight = 16
	padTop     = 20
	gap        = 34
	left       = 16
	laneGap    = 16
	charWidth  = 6.8 // of the 12px sans-serif text, generously
)

// Colours of the node kinds: fill, then stroke. Tests look for the fills
// in screenshots.
var colours = map[string][2]string{
	"start":                     {"#e0f2fe", "#0369a1"},
	string(journey.KindSend):    {"#dbeafe", "#2563eb"},
	string(journey.KindWait):    {"#fef3c7", "#b45309"},
	string(journey.KindWaitFor): {"#ede9fe", "#6d28d9"},
	string(journey.KindBranch):  {"#dcfce7", "#15803d"},
	string(journey.KindExit):    {"#f3f4f6", "#4b5563"},
	"end":                       {"#f3f4f6", "#4b5563"},
	"problem":                   {"#fee2e2", "#dc2626"},
}

// SendFill is the fill of send steps.
const SendFill = "#dbeafe"

type node struct {
	kind   string
	id     string
	title  string
	lines  []text
	outs   []out
	y, h   int
	errors []string
}

type text struct {
	s     string
	class string
}

type out struct {
	to      int // node index
	label   string
	timeout bool
	// row is the text line the edge leaves from (-1: the bottom).
	row int
}

var outcomeRE = regexp.MustCompile(`outcome\("([a-z0-9-]+)"\)`)

// SVG draws a journey. problems holds the problems found in each step, by
// index in o.Steps; journeyProblems those about the journey as a whole.
func SVG(o *journey.Outline, problems map[int][]string, journeyProblems []string) string {
	var nodes []*node
	start := &node{kind: "start", id: "start", title: "start: " + orDash(o.Trigger)}
	if o.Audience != "" {
		start.lines = append(start.lines, text{s: "audience: " + o.Audience})
	}
	if o.Key != "" {
		start.lines = append(start.lines, text{s: "one run per key: " + o.Key})
	}
	meta := []string{}
	if o.Priority != "" {
		meta = append(meta, "priority "+o.Priority)
	}
	if o.Topic != "" {
		meta = append(meta, "topic "+o.Topic)
	}
	if o.Reentry != "" {
		meta = append(meta, "reentry "+o.Reentry)
	}
	if len(meta) > 0 {
		start.lines = append(start.lines, text{s: strings.Join(meta, " · ")})
	}
	if o.Goal != "" {
		start.lines = append(start.lines, text{s: "goal: " + o.Goal + " ends the run at any step", class: "goal"})
	}
	start.errors = journeyProblems
	nodes = append(nodes, start)

	index := map[string]int{}
	for i, s := range o.Steps {
		if _, dup := index[s.ID]; !dup && s.ID != "" {
			index[s.ID] = i + 1
		}
	}
	outcomeReaders := map[string][]string{}
	for _, s := range o.Steps {
		for _, c := range s.Cases {
			for _, m := range outcomeRE.FindAllStringSubmatch(c.When, -1) {
				outcomeReaders[m[1]] = append(outcomeReaders[m[1]], s.ID)
			}
		}
	}
	for i, s := range o.Steps {
		n := &node{kind: string(s.Kind), id: s.ID, errors: problems[i]}
		if n.kind == "" {
			n.kind = "problem"
		}
		n.title = fmt.Sprintf("%s · %s", orDash(string(s.Kind)), orDash(s.ID))
		switch s.Kind {
		case journey.KindSend:
			ch := strings.Join(s.Channels, " → ")
			n.lines = append(n.lines, text{s: "on " + orDash(ch) + ": " + orDash(s.Template)})
			var extra []string
			if s.Priority != "" {
				extra = append(extra, "priority "+s.Priority)
			}
			if s.Purpose != "" {
				extra = append(extra, "purpose "+s.Purpose)
			}
			if len(extra) > 0 {
				n.lines = append(n.lines, text{s: strings.Join(extra, " · ")})
			}
			if r := outcomeReaders[s.ID]; len(r) > 0 {
				n.lines = append(n.lines, text{s: "outcome (sent, suppressed, stale, failed) read by " + strings.Join(r, ", "), class: "note"})
			}
		case journey.KindWait:
			var w []string
			if s.Duration != "" {
				w = append(w, s.Duration)
			}
			if s.Until != "" {
				w = append(w, "until "+s.Until)
			}
			if s.AtLocal != "" {
				w = append(w, "then at "+s.AtLocal+" local time")
			}
			n.lines = append(n.lines, text{s: "wait " + strings.Join(w, ", ")})
		case journey.KindWaitFor:
			n.lines = append(n.lines, text{s: fmt.Sprintf("wait for %s, at most %s", orDash(s.Event), orDash(s.Timeout))})
			if s.Event != "" {
				n.lines = append(n.lines, text{s: "later steps see it as received." + strings.ReplaceAll(s.Event, ".", "_"), class: "note"})
			}
		case journey.KindExit:
			n.lines = append(n.lines, text{s: "ends the run" + prefixed(": ", s.Reason)})
		}
		nodes = append(nodes, n)
	}
	end := &node{kind: "end", id: "end", title: "end · completed"}
	nodes = append(nodes, end)
	endIndex := len(nodes) - 1

	// Edges: the start goes to the first step; each step to its targets.
	start.outs = []out{{to: 1, row: -1}}
	if len(o.Steps) == 0 {
		start.outs = []out{{to: endIndex, row: -1}}
	}
	usedEnd := len(o.Steps) == 0
	for i, s := range o.Steps {
		n := nodes[i+1]
		for _, e := range s.Targets() {
			to := i + 2 // the next step, or the end after the last
			if e.To != "" {
				t, ok := index[e.To]
				if !ok {
					n.lines = append(n.lines, text{s: e.Label + prefixed(" → ", e.To) + " (no such step)", class: "problem"})
					continue
				}
				to = t
			}
			if to == endIndex {
				usedEnd = true
			}
			row := -1
			if e.Label != "" {
				row = len(n.lines)
				label := e.Label
				if to != i+2 || e.To != "" {
					label += " → " + nodes[to].id
				}
				n.lines = append(n.lines, text{s: label, class: "edge"})
			}
			n.outs = append(n.outs, out{to: to, label: e.Label, timeout: e.Timeout, row: row})
		}
	}
	if !usedEnd {
		nodes = nodes[:endIndex]
	}

	// Vertical layout.
	y := 12
	for _, n := range nodes {
		n.y = y
		n.h = padTop + lineHeight*(len(n.lines)+len(n.errors)) + 10
		y += n.h + gap
	}
	height := y - gap + 12

	// Lanes for the edges that do not go straight down, so no two that
	// overlap vertically share one.
	type span struct{ from, to, lo, hi, row int }
	var routed []span
	for fi, n := range nodes {
		for _, e := range n.outs {
			if e.to == fi+1 && isFirstStraight(n, e) {
				continue
			}
			y1 := edgeY(n, e)
			y2 := nodes[e.to].y + nodes[e.to].h/2
			routed = append(routed, span{from: fi, to: e.to, lo: min(y1, y2), hi: max(y1, y2), row: e.row})
		}
	}
	lanes := make([]int, len(routed))
	var laneEnds [][]span
	for i, r := range routed {
		lane := 0
		for ; lane < len(laneEnds); lane++ {
			free := true
			for _, o := range laneEnds[lane] {
				if r.lo <= o.hi+4 && o.lo <= r.hi+4 {
					free = false
					break
				}
			}
			if free {
				break
			}
		}
		if lane == len(laneEnds) {
			laneEnds = append(laneEnds, nil)
		}
		laneEnds[lane] = append(laneEnds[lane], r)
		lanes[i] = lane
	}
	width := left + nodeWidth + 24 + laneGap*len(laneEnds) + 16

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="journey" data-journey="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		esc(o.ID), width, height, width, height, esc("journey "+o.ID))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>`)
	b.WriteString(`<style>text{font:12px sans-serif;fill:#0f172a}.t{font-weight:bold}.note{fill:#475569;font-style:italic}.edge{fill:#334155}.problem{fill:#b91c1c}.goal{fill:#7c2d12}</style>`)

	// Straight edges first, under the nodes.
	x := left + nodeWidth/2
	for fi, n := range nodes {
		for _, e := range n.outs {
			if e.to == fi+1 && isFirstStraight(n, e) {
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#475569" stroke-width="1.5" marker-end="url(#arrow)"/>`, x, n.y+n.h, x, nodes[fi+1].y-2)
			}
		}
	}
	for i, r := range routed {
		lx := left + nodeWidth + 24 + laneGap*lanes[i]
		n := nodes[r.from]
		var e out
		for _, o := range n.outs {
			if o.to == r.to && o.row == r.row {
				e = o
			}
		}
		y1 := edgeY(n, e)
		t := nodes[r.to]
		y2 := t.y + t.h/2
		dash := ""
		if e.timeout {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<path d="M%d,%d H%d V%d H%d" fill="none" stroke="#475569" stroke-width="1.5"%s marker-end="url(#arrow)"><title>%s</title></path>`,
			left+nodeWidth, y1, lx, y2, left+nodeWidth+2, dash, esc(n.id+" → "+t.id+prefixed(": ", e.label)))
	}
	for _, n := range nodes {
		c := colours[n.kind]
		if len(n.errors) > 0 {
			c = colours["problem"]
		}
		rx := 8
		if n.kind == string(journey.KindBranch) {
			rx = 2
		}
		fmt.Fprintf(&b, `<g class="node %s" data-step="%s"><title>%s</title>`, esc(n.kind), esc(n.id), esc(tooltip(n)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="%d" fill="%s" stroke="%s" stroke-width="%s"/>`,
			left, n.y, nodeWidth, n.h, rx, c[0], c[1], strokeWidth(n))
		fmt.Fprintf(&b, `<text class="t" x="%d" y="%d">%s</text>`, left+10, n.y+15, esc(fit(n.title)))
		row := 0
		for _, l := range n.lines {
			row++
			cls := ""
			if l.class != "" {
				cls = ` class="` + l.class + `"`
			}
			fmt.Fprintf(&b, `<text%s x="%d" y="%d">%s</text>`, cls, left+10, n.y+15+lineHeight*row, esc(fit(l.s)))
		}
		for _, e := range n.errors {
			row++
			fmt.Fprintf(&b, `<text class="problem" x="%d" y="%d">%s</text>`, left+10, n.y+15+lineHeight*row, esc(fit("⚠ "+e)))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// isFirstStraight reports whether e is a labelled edge to the next node
// that is drawn straight down: the first such edge of a node.
func isFirstStraight(n *node, e out) bool {
	for _, o := range n.outs {
		if o.to == e.to {
			return o.row == e.row
		}
	}
	return false
}

func edgeY(n *node, e out) int {
	if e.row < 0 {
		return n.y + n.h - 8
	}
	return n.y + 15 + lineHeight*(e.row+1) - 4
}

func strokeWidth(n *node) string {
	if len(n.errors) > 0 {
		return "2.5"
	}
	return "1.5"
}

func tooltip(n *node) string {
	parts := []string{n.title}
	for _, l := range n.lines {
		parts = append(parts, l.s)
	}
	parts = append(parts, n.errors...)
	return strings.Join(parts, "\n")
}

// fit shortens a line to the node's width.
func fit(s string) string {
	width := float64(nodeWidth - 20)
	limit := int(width / charWidth)
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func esc(s string) string { return html.EscapeString(s) }
