package catalog

import (
	"strings"
	"testing"
)

// Every journey's topic is declared with its kind, and a journey that
// sends marketing says which legal basis its messages may rely on; each
// refusal is at the line and column to change, and says what to write.
func TestJourneyBasisIsChecked(t *testing.T) {
	t.Parallel()
	thanks := readFile(t, "../../workflows/testdata/journeys/order-thanks.yaml")
	withTopic := func(topicLine string) string { return strings.Replace(thanks, "topic: service\n", topicLine, 1) }
	policy := readFile(t, "../../workflows/testdata/journeys/policy.yaml") +
		"  promo: { kind: marketing, product_groups: [home, car] }\n  news: { kind: marketing }\n"
	for name, tc := range map[string]struct {
		edits map[string]string
		want  string // "" means valid
	}{
		"undeclared topic": {map[string]string{"order-thanks.yaml": withTopic("topic: servise\n")},
			`j/order-thanks.yaml:3:8: topic "servise" is not declared in j/policy.yaml; declare it under topics: with kind: service (messages about the customer's existing agreements) or kind: marketing (did you mean "service"?)`},
		"marketing without a basis": {map[string]string{"policy.yaml": policy, "order-thanks.yaml": withTopic("topic: promo\n")},
			"j/order-thanks.yaml:3:8: this journey sends marketing topic promo without saying which legal basis its messages may rely on; add basis: consent (customers who agreed to marketing) or basis: [consent, soft_opt_in] (also customers who bought in product group home, car and have not opted out)"},
		"basis on a service topic": {map[string]string{"order-thanks.yaml": withTopic("topic: service\nbasis: consent\n")},
			"j/order-thanks.yaml:4:8: basis applies to marketing topics; service is a service topic in j/policy.yaml, which needs no marketing consent: remove basis"},
		"soft opt-in without product groups": {map[string]string{"policy.yaml": policy, "order-thanks.yaml": withTopic("topic: news\nbasis: [consent, soft_opt_in]\n")},
			"j/order-thanks.yaml:4:8: basis soft_opt_in can never apply: topic news covers no product groups in j/policy.yaml; add product_groups to the topic, or use basis: consent"},
		"unknown basis": {map[string]string{"policy.yaml": policy, "order-thanks.yaml": withTopic("topic: promo\nbasis: [consent, soft-opt-in]\n")},
			`j/order-thanks.yaml:4:18: basis "soft-opt-in": want consent (customers who agreed to marketing) or soft_opt_in (customers who bought a product the topic covers and have not opted out) (did you mean "soft_opt_in"?)`},
		"product groups on a service topic": {map[string]string{"policy.yaml": strings.Replace(policy, "service: { kind: service }", "service: { kind: service, product_groups: [home] }", 1)},
			"j/policy.yaml:10:45: topic service: product_groups apply to marketing topics"},
		"marketing with consent":     {map[string]string{"policy.yaml": policy, "order-thanks.yaml": withTopic("topic: news\nbasis: consent\n")}, ""},
		"marketing with soft opt-in": {map[string]string{"policy.yaml": policy, "order-thanks.yaml": withTopic("topic: promo\nbasis: [consent, soft_opt_in]\n")}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(testFS(t, tc.edits), "j")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if j, _ := c.Journey("order-thanks"); len(j.Bases) == 0 && c.TopicKind(j.Topic) == "marketing" {
					t.Fatalf("basis not kept: %+v", j.Bases)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}
