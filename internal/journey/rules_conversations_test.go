package journey

import (
	"strings"
	"testing"
	"time"
)

func TestParseRulesConversations(t *testing.T) {
	t.Parallel()
	good := `default_timezone: Europe/Oslo
conversations:
  pause_after_answer: 48h
  allow_topics: [service]
  response_time: { default: 4h, claims: 30m }
  default_helper: team
  helpers:
    team: { name: Kundeservice, email: team@example.com, escalate: { webhook: "http://127.0.0.1:9/hook" } }
`
	r, errs := ParseRules("policy.yaml", []byte(good))
	if len(errs) > 0 {
		t.Fatalf("good policy rejected: %v", errs)
	}
	c := r.Conversations
	if c.PauseAfterAnswer != 48*time.Hour || c.Target("claims") != 30*time.Minute || c.Target("other") != 4*time.Hour ||
		c.Helpers["team"].Name != "Kundeservice" || c.Helpers["team"].EscalateWebhook == "" || c.AllowTopics[0] != "service" {
		t.Fatalf("parsed %+v", c)
	}
	for name, tc := range map[string]struct{ src, want string }{
		"unknown default helper": {strings.Replace(good, "default_helper: team", "default_helper: taem", 1), `6:19: conversations.default_helper "taem" is not one of the helpers`},
		"helper without contact": {strings.Replace(good, "email: team@example.com, ", "", 1), "needs an email or a webhook"},
		"bad helper address":     {strings.Replace(good, "team@example.com", "team-at-example", 1), "is not an email address"},
		"webhook not http":       {strings.Replace(good, `"http://127.0.0.1:9/hook"`, "ftp://x", 1), "must be an http(s) URL"},
		"webhook without host":   {strings.Replace(good, `"http://127.0.0.1:9/hook"`, `"https:///hooks/T0KEN"`, 1), "must be an http(s) URL with a host"},
		"zero target":            {strings.Replace(good, "claims: 30m", "claims: 0s", 1), "response_time.claims must be longer than zero"},
		"unknown field":          {strings.Replace(good, "pause_after_answer", "pause_after_answr", 1), `unknown field "pause_after_answr"`},
	} {
		_, errs := ParseRules("policy.yaml", []byte(tc.src))
		if !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s: errors %q, want %q", name, errs.Error(), tc.want)
		}
		// A webhook URL may be the helpdesk's secret: never quoted back.
		if strings.Contains(errs.Error(), "T0KEN") {
			t.Errorf("%s: the error quotes the webhook URL: %s", name, errs.Error())
		}
	}
}
