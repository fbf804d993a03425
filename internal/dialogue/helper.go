package dialogue

import (
	"strings"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Customer attributes that name a customer's own helper (their advisor).
// They are read when the schema declares them and the record sets them.
const (
	AttrHelperName    = "helper_name"
	AttrHelperEmail   = "helper_email"
	AttrHelperWebhook = "helper_webhook"
	// AttrAdvisorName is the name the shipped schema gives an advisor; it
	// names a helper_email's helper when helper_name is not set.
	AttrAdvisorName = "advisor_name"
)

// CustomerHelper is the helper id of a customer record's own helper.
const CustomerHelper = "customer"

// Resolve finds who helps with a reply: the customer record's own helper
// (helper_email or helper_webhook), else the journey's helper, else the
// policy's default_helper. A customer's own helper escalates to where the
// journey's (or the default) helper escalates. ok is false when no one is
// named.
func Resolve(conv *policy.Conversations, journeyHelper string, c journey.Customer) (id string, h policy.Helper, ok bool) {
	var team policy.Helper
	teamID := ""
	if conv != nil {
		for _, name := range []string{journeyHelper, conv.DefaultHelper} {
			if t, found := conv.Helpers[name]; found && name != "" {
				team, teamID = t, name
				break
			}
		}
	}
	attr := func(k string) string {
		s, _ := c.Attributes[k].(string)
		return strings.TrimSpace(s)
	}
	if email, hook := attr(AttrHelperEmail), attr(AttrHelperWebhook); (email != "" && journey.CheckEmail(email) == nil) || hook != "" {
		own := policy.Helper{Name: attr(AttrHelperName), Webhook: hook, EscalateEmail: team.EscalateEmail, EscalateWebhook: team.EscalateWebhook}
		if journey.CheckEmail(email) == nil {
			own.Email = email
		}
		if own.Name == "" {
			own.Name = attr(AttrAdvisorName)
		}
		return CustomerHelper, own, true
	}
	return teamID, team, teamID != ""
}
