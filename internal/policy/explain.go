package policy

// explanations are the reasons in words a marketer reads.
var explanations = map[Reason]string{
	ReasonOK:                  "allowed",
	ReasonCritical:            "critical: skips caps, the gap and quiet hours",
	ReasonQuietHours:          "quiet hours in the customer's time zone",
	ReasonMinGap:              "too soon after the last message",
	ReasonCap:                 "the customer's message cap is full",
	ReasonPriority:            "a higher-priority message goes first",
	ReasonSoftOptInNotCovered: "soft opt-in only reaches topics covering the product group of the sale",
	ReasonNoConsent:           "no consent for the channel",
	ReasonTopicOptedOut:       "opted out of the topic",
	ReasonDuplicatePurpose:    "the same purpose was already sent",
	ReasonStale:               "could not go out within max_defer",
	ReasonHardBounce:          "address bounced",
	ReasonComplaint:           "customer complained",
	ReasonUnsubscribed:        "unsubscribed",
	ReasonNoAddress:           "no address for the channel",
	ReasonConversationOpen:    "the customer is in a conversation with a helper; marketing waits",
}

// Explain says a reason in words, with the reason's name after it:
// "too soon after the last message (min_gap)".
func Explain(r Reason) string {
	if s, ok := explanations[r]; ok {
		return s + " (" + string(r) + ")"
	}
	return string(r)
}
