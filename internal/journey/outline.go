package journey

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Outline is a journey file's shape as written, read without validating
// it: what a diagram shows, also while the file has mistakes (the step
// they are in is still drawn, with them on it).
type Outline struct {
	File                      string
	ID, Name, Topic, Priority string
	Trigger, Audience, Key    string
	Reentry, Goal             string
	Steps                     []OutlineStep
	// Line is where the steps list starts.
	Line int
}

// OutlineStep is one step as written.
type OutlineStep struct {
	ID   string
	Kind StepKind
	// Line and EndLine are the first and last lines the step spans.
	Line, EndLine int
	Goto          string
	// Send
	Channels          []string
	Template, Purpose string
	Priority          string
	// Wait
	Duration, Until, AtLocal string
	// WaitFor
	Event, Timeout, OnTimeout string
	// Branch
	Cases []OutlineCase
	// Exit
	Reason string
}

// OutlineCase is one branch case; When is "" for the case that always
// matches.
type OutlineCase struct{ When, Goto string }

// ParseOutline reads a journey file's outline. It fails only when the
// file is not YAML at all.
func ParseOutline(file string, src []byte) (*Outline, ErrorList) {
	root, errs := ParseYAML(file, src)
	if root == nil {
		return nil, errs
	}
	o := &Outline{File: file}
	if root.Kind != yaml.MappingNode {
		return o, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, root.Content[i+1]
		switch k {
		case "id":
			o.ID = v.Value
		case "name":
			o.Name = v.Value
		case "topic":
			o.Topic = v.Value
		case "priority":
			o.Priority = v.Value
		case "audience":
			o.Audience = v.Value
		case "key":
			o.Key = v.Value
		case "reentry":
			o.Reentry = v.Value
		case "goal":
			o.Goal = get(v, "event")
		case "trigger":
			switch {
			case get(v, "event") != "":
				o.Trigger = "event " + get(v, "event")
			case child(v, "schedule") != nil:
				o.Trigger = "schedule " + get(child(v, "schedule"), "cron")
			case get(v, "segment_entry") != "":
				o.Trigger = "segment_entry"
			}
		case "steps":
			o.Line = v.Line
			if v.Kind != yaml.SequenceNode {
				continue
			}
			for n, item := range v.Content {
				s := outlineStep(item)
				s.EndLine = lastLine(item)
				if n+1 < len(v.Content) {
					s.EndLine = max(s.EndLine, v.Content[n+1].Line-1)
				}
				o.Steps = append(o.Steps, s)
			}
		}
	}
	return o, nil
}

func outlineStep(item *yaml.Node) OutlineStep {
	s := OutlineStep{Line: item.Line}
	if item.Kind != yaml.MappingNode {
		return s
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		k, v := item.Content[i].Value, item.Content[i+1]
		switch k {
		case "id":
			s.ID = v.Value
		case "goto":
			s.Goto = v.Value
		case string(KindSend):
			s.Kind = KindSend
			if ch := child(v, "channel"); ch != nil && ch.Kind == yaml.SequenceNode {
				for _, c := range ch.Content {
					s.Channels = append(s.Channels, c.Value)
				}
			} else if ch != nil {
				s.Channels = []string{ch.Value}
			}
			s.Template, s.Purpose, s.Priority = get(v, "template"), get(v, "purpose"), get(v, "priority")
		case string(KindWait):
			s.Kind = KindWait
			s.Duration, s.Until, s.AtLocal = get(v, "duration"), get(v, "until"), get(v, "at_local")
		case string(KindWaitFor):
			s.Kind = KindWaitFor
			s.Event, s.Timeout, s.OnTimeout = get(v, "event"), get(v, "timeout"), get(v, "on_timeout")
		case string(KindBranch):
			s.Kind = KindBranch
			if v.Kind == yaml.SequenceNode {
				for _, c := range v.Content {
					s.Cases = append(s.Cases, OutlineCase{When: get(c, "when"), Goto: get(c, "goto")})
				}
			}
		case string(KindExit):
			s.Kind = KindExit
			s.Reason = get(v, "reason")
		}
	}
	return s
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func get(n *yaml.Node, key string) string {
	c := child(n, key)
	if c == nil || c.Kind != yaml.ScalarNode {
		return ""
	}
	return strings.TrimSpace(c.Value)
}

func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// StepAt returns the index of the step whose lines hold line, or -1.
func (o *Outline) StepAt(line int) int {
	for i, s := range o.Steps {
		if line >= s.Line && line <= s.EndLine {
			return i
		}
	}
	return -1
}

// Targets returns where a step can go next, by step id, with what takes
// it there; "" as a target means the next step in the file (or the end of
// the run after the last).
func (s OutlineStep) Targets() []Edge {
	next := s.Goto
	switch s.Kind {
	case KindExit:
		return nil
	case KindBranch:
		var out []Edge
		for _, c := range s.Cases {
			label := "otherwise"
			if c.When != "" {
				label = "when " + c.When
			}
			out = append(out, Edge{To: c.Goto, Label: label})
		}
		if len(s.Cases) == 0 || s.Cases[len(s.Cases)-1].When != "" {
			out = append(out, Edge{Label: "no case matches"})
		}
		return out
	case KindWaitFor:
		timeout := s.OnTimeout
		if timeout == "" {
			timeout = next
		}
		return []Edge{{To: next, Label: "got " + s.Event}, {To: timeout, Label: "no " + s.Event + " in " + s.Timeout, Timeout: true}}
	}
	return []Edge{{To: next}}
}

// Edge is a way from one step to another.
type Edge struct {
	// To is the target step id; "" is the next step in the file.
	To, Label string
	// Timeout marks a wait_for's timeout path.
	Timeout bool
}
