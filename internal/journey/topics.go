package journey

import (
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

var productGroupRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// topics decodes policy.yaml's topics: each topic's kind and, for a
// marketing topic, the product groups it covers.
func (d *decoder) topics(v *yaml.Node) map[string]policy.Topic {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "topics must be a mapping of topic name to {kind, product_groups}")
		return nil
	}
	out := map[string]policy.Topic{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, tv := v.Content[i], v.Content[i+1]
		if !topicRE.MatchString(k.Value) {
			d.errorf(k, "topic %q: use lower-case letters, digits, - and _", k.Value)
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.errorf(k, "duplicate topic %q", k.Value)
			continue
		}
		var t policy.Topic
		var groupsNode *yaml.Node
		d.mapping(tv, "topic "+k.Value,
			field{name: "kind", required: true, decode: func(_, v *yaml.Node) {
				s, _ := d.str(v, "kind")
				switch kind := policy.TopicKind(s); kind {
				case policy.TopicService, policy.TopicMarketing:
					t.Kind = kind
				default:
					d.errorf(v, "topic %s: kind %q: want service (messages about the customer's existing agreements, which need no marketing consent) or marketing", k.Value, s)
				}
			}},
			field{name: "product_groups", decode: func(_, v *yaml.Node) {
				groupsNode = v
				if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
					d.errorf(v, "topic %s: product_groups must be a non-empty list of product groups ([home, car])", k.Value)
					return
				}
				for _, g := range v.Content {
					s, ok := d.str(g, "product group")
					switch {
					case !ok:
					case !productGroupRE.MatchString(s):
						d.errorf(g, "product group %q: use lower-case letters, digits, - and _", s)
					case slices.Contains(t.ProductGroups, s):
						d.errorf(g, "product group %s is in the list twice", s)
					default:
						t.ProductGroups = append(t.ProductGroups, s)
					}
				}
			}},
		)
		if groupsNode != nil && t.Kind == policy.TopicService {
			d.errorf(groupsNode, "topic %s: product_groups apply to marketing topics (a soft opt-in from a sale reaches them); a service topic needs no consent, so remove them", k.Value)
		}
		out[k.Value] = t
	}
	return out
}

// bases decodes a journey's basis: one basis, or a list.
func (d *decoder) bases(v *yaml.Node) []policy.Basis {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		if len(v.Content) == 0 {
			d.errorf(v, "basis: the list is empty; name consent, soft_opt_in or both")
			return nil
		}
		items = v.Content
	}
	var out []policy.Basis
	for _, item := range items {
		s, ok := d.str(item, "basis")
		if !ok {
			continue
		}
		b, err := policy.ParseBasis(s)
		switch {
		case err != nil:
			d.errorf(item, "basis %q: want consent (customers who agreed to marketing) or soft_opt_in (customers who bought a product the topic covers and have not opted out)%s",
				s, suggestName(s, []string{string(policy.BasisConsent), string(policy.BasisSoftOptIn)}))
		case slices.Contains(out, b):
			d.errorf(item, "basis %s is in the list twice", b)
		default:
			out = append(out, b)
		}
	}
	return out
}
