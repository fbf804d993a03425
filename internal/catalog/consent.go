package catalog

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// checkBasis checks a journey's topic against the topics policy.yaml
// declares: the topic must be declared, and a journey that sends a
// marketing topic must say which legal basis its messages may rely on
// (docs/consent.md).
func (c *Catalog) checkBasis(j *journey.Journey) journey.ErrorList {
	policyFile := path.Join(c.Dir, PolicyFile)
	at := func(p journey.Position, format string, args ...any) journey.Error {
		return journey.Error{File: j.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
	}
	topic, declared := c.Rules.Topics[j.Topic]
	if !declared {
		names := make([]string, 0, len(c.Rules.Topics))
		for n := range c.Rules.Topics {
			names = append(names, n)
		}
		slices.Sort(names)
		return journey.ErrorList{at(j.TopicPos, "topic %q is not declared in %s; declare it under topics: with kind: service (messages about the customer's existing agreements) or kind: marketing%s",
			j.Topic, policyFile, journey.Suggest(j.Topic, names))}
	}
	if topic.Kind == policy.TopicService {
		if len(j.Bases) > 0 {
			return journey.ErrorList{at(j.BasesPos, "basis applies to marketing topics; %s is a service topic in %s, which needs no marketing consent: remove basis",
				j.Topic, policyFile)}
		}
		return nil
	}
	if len(j.Bases) == 0 {
		soft := "soft_opt_in needs product_groups on the topic in " + policyFile
		if len(topic.ProductGroups) > 0 {
			soft = "also customers who bought in product group " + strings.Join(topic.ProductGroups, ", ") + " and have not opted out"
		}
		return journey.ErrorList{at(j.TopicPos, "this journey sends marketing topic %s without saying which legal basis its messages may rely on; add basis: consent (customers who agreed to marketing) or basis: [consent, soft_opt_in] (%s)",
			j.Topic, soft)}
	}
	if slices.Contains(j.Bases, policy.BasisSoftOptIn) && len(topic.ProductGroups) == 0 {
		return journey.ErrorList{at(j.BasesPos, "basis soft_opt_in can never apply: topic %s covers no product groups in %s; add product_groups to the topic, or use basis: consent",
			j.Topic, policyFile)}
	}
	return nil
}

// TopicKind returns a topic's kind as policy.yaml declares it; an
// undeclared topic counts as marketing.
func (c *Catalog) TopicKind(topic string) policy.TopicKind {
	if t, ok := c.Rules.Topics[topic]; ok {
		return t.Kind
	}
	return policy.TopicMarketing
}
