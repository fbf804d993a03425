package journey

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// conversationsField decodes policy.yaml's conversations section:
//
//	conversations:
//	  pause_after_answer: 48h
//	  allow_topics: [service]
//	  response_time: { default: 4h, claims: 30m }
//	  default_helper: customer-service
//	  helpers:
//	    customer-service:
//	      name: Kundeservice
//	      email: service@example.com
//	      webhook: https://helpdesk.example.com/lojal
//	      escalate: { email: lead@example.com, webhook: https://... }
func conversationsField(d *decoder, r *policy.Rules) field {
	return field{name: "conversations", decode: func(_, v *yaml.Node) {
		c := &policy.Conversations{ResponseTime: map[string]time.Duration{}, Helpers: map[string]policy.Helper{}}
		var defaultNode *yaml.Node
		d.mapping(v, "conversations",
			field{name: "pause_after_answer", decode: func(_, v *yaml.Node) {
				if dur, ok := d.duration(v, "conversations.pause_after_answer"); ok {
					if dur < 0 {
						d.errorf(v, "conversations.pause_after_answer must not be negative")
					}
					c.PauseAfterAnswer = dur
				}
			}},
			field{name: "recheck", decode: func(_, v *yaml.Node) {
				if dur, ok := d.duration(v, "conversations.recheck"); ok {
					if dur < policy.MinRecheck {
						d.errorf(v, "conversations.recheck must be at least %s, or held messages ask the policy over and over", policy.FormatDuration(policy.MinRecheck))
					}
					c.Recheck = dur
				}
			}},
			field{name: "allow_topics", decode: func(_, v *yaml.Node) {
				if v.Kind != yaml.SequenceNode {
					d.errorf(v, "conversations.allow_topics must be a list of topics, such as [service]")
					return
				}
				for _, t := range v.Content {
					if s, ok := d.nonEmpty(t, "conversations.allow_topics item"); ok {
						c.AllowTopics = append(c.AllowTopics, s)
					}
				}
			}},
			field{name: "response_time", decode: func(_, v *yaml.Node) {
				if v.Kind != yaml.MappingNode {
					d.errorf(v, "conversations.response_time must map topics (or default) to durations, such as { default: 4h }")
					return
				}
				for i := 0; i+1 < len(v.Content); i += 2 {
					k, val := v.Content[i], v.Content[i+1]
					dur, ok := d.duration(val, "conversations.response_time."+k.Value)
					if !ok {
						continue
					}
					if dur <= 0 {
						d.errorf(val, "conversations.response_time.%s must be longer than zero (leave the topic out for no target)", k.Value)
						continue
					}
					topic := k.Value
					if topic == "default" {
						topic = ""
					}
					c.ResponseTime[topic] = dur
				}
			}},
			field{name: "default_helper", decode: func(_, v *yaml.Node) {
				defaultNode = v
				c.DefaultHelper, _ = d.nonEmpty(v, "conversations.default_helper")
			}},
			field{name: "helpers", decode: func(_, v *yaml.Node) {
				if v.Kind != yaml.MappingNode {
					d.errorf(v, "conversations.helpers must map helper names to their contact, such as { customer-service: { email: service@example.com } }")
					return
				}
				for i := 0; i+1 < len(v.Content); i += 2 {
					k, val := v.Content[i], v.Content[i+1]
					if h, ok := decodeHelper(d, val, "conversations.helpers."+k.Value); ok {
						c.Helpers[k.Value] = h
					}
				}
			}},
		)
		if c.DefaultHelper != "" {
			if _, ok := c.Helpers[c.DefaultHelper]; !ok {
				d.errorf(defaultNode, "conversations.default_helper %q is not one of the helpers%s", c.DefaultHelper,
					Suggest(c.DefaultHelper, slices.Sorted(mapKeys(c.Helpers))))
			}
		}
		r.Conversations = c
	}}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func decodeHelper(d *decoder, v *yaml.Node, what string) (policy.Helper, bool) {
	var h policy.Helper
	ok := true
	addr := func(v *yaml.Node, what string) string {
		s, sok := d.nonEmpty(v, what)
		if !sok {
			ok = false
			return ""
		}
		if err := CheckEmail(s); err != nil {
			d.errorf(v, "%s %q is not an email address: %v", what, s, err)
			ok = false
		}
		return s
	}
	hook := func(v *yaml.Node, what string) string {
		s, sok := d.nonEmpty(v, what)
		if !sok {
			ok = false
			return ""
		}
		if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			// Not quoted back: a webhook URL may be a secret, and errors
			// end up in CI logs; file:line:col says which one.
			d.errorf(v, "%s must be an http(s) URL with a host", what)
			ok = false
		}
		return s
	}
	d.mapping(v, what,
		field{name: "name", decode: func(_, v *yaml.Node) { h.Name, _ = d.nonEmpty(v, what+".name") }},
		field{name: "email", decode: func(_, v *yaml.Node) { h.Email = addr(v, what+".email") }},
		field{name: "webhook", decode: func(_, v *yaml.Node) { h.Webhook = hook(v, what+".webhook") }},
		field{name: "escalate", decode: func(_, v *yaml.Node) {
			d.mapping(v, what+".escalate",
				field{name: "email", decode: func(_, v *yaml.Node) { h.EscalateEmail = addr(v, what+".escalate.email") }},
				field{name: "webhook", decode: func(_, v *yaml.Node) { h.EscalateWebhook = hook(v, what+".escalate.webhook") }},
			)
		}},
	)
	if ok && h.Email == "" && h.Webhook == "" {
		d.errorf(v, "%s needs an email or a webhook to forward replies to", what)
		ok = false
	}
	h.Name = strings.TrimSpace(h.Name)
	return h, ok
}
