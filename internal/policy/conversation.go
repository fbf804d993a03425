package policy

import (
	"slices"
	"time"
)

// ReasonConversationOpen defers marketing to a customer who is talking to
// the people who help: a reply is unanswered, or was answered less than
// Conversations.PauseAfterAnswer ago.
const ReasonConversationOpen Reason = "conversation_open"

// Conversation is the customer's latest conversation with a helper, as
// the policy sees it: the open one, else the last one answered.
type Conversation struct {
	OpenedAt time.Time
	// AnsweredAt is zero while the conversation is unanswered.
	AnsweredAt time.Time
}

// Conversations is the conversations section of policy.yaml: how replies
// pause marketing, and how fast they must be answered.
type Conversations struct {
	// PauseAfterAnswer is how long marketing stays paused after a helper
	// answered (pause_after_answer).
	PauseAfterAnswer time.Duration
	// AllowTopics are service topics that still go out while a
	// conversation is open (allow_topics).
	AllowTopics []string
	// Recheck is how long a message held by an unanswered conversation
	// waits before it asks again (recheck, default 1h).
	Recheck time.Duration
	// ResponseTime is the target for answering a reply, by the topic of
	// the message replied to; "" is every other topic. Zero: no target.
	ResponseTime map[string]time.Duration
	// Helpers are the people who help, by name (helpers); a journey names
	// one, or the customer record carries its own.
	Helpers map[string]Helper
	// DefaultHelper takes replies no journey or customer record routes.
	DefaultHelper string
}

// Helper is who reads replies: an advisor or a customer-service team.
type Helper struct {
	Name string `json:"name,omitempty"`
	// Email and Webhook are where replies are forwarded (either or both).
	Email   string `json:"email,omitempty"`
	Webhook string `json:"webhook,omitempty"`
	// EscalateEmail and EscalateWebhook are told when a reply passes its
	// response-time target unanswered.
	EscalateEmail   string `json:"escalate_email,omitempty"`
	EscalateWebhook string `json:"escalate_webhook,omitempty"`
}

// DefaultRecheck is how long a message held by an unanswered conversation
// waits before asking again.
const DefaultRecheck = time.Hour

// Target is the response-time target for a reply to a message of topic.
func (c *Conversations) Target(topic string) time.Duration {
	if c == nil {
		return 0
	}
	if d, ok := c.ResponseTime[topic]; ok {
		return d
	}
	return c.ResponseTime[""]
}

// conversationHold holds a non-critical message while the customer is in
// a conversation: until the pause after the answer ends, or, while the
// reply is unanswered, for Recheck at a time.
func (r Rules) conversationHold(rel Relationship, req Request, now time.Time, det *Detail) (hold, bool) {
	c, conv := r.Conversations, rel.Conversation
	if c == nil || conv == nil || slices.Contains(c.AllowTopics, req.Topic) {
		return hold{}, false
	}
	if conv.AnsweredAt.IsZero() {
		recheck := c.Recheck
		if recheck <= 0 {
			recheck = DefaultRecheck
		}
		det.RepliedAt = conv.OpenedAt
		return hold{until: now.Add(recheck), reason: ReasonConversationOpen}, true
	}
	end := conv.AnsweredAt.Add(c.PauseAfterAnswer)
	if !now.Before(end) {
		return hold{}, false
	}
	det.RepliedAt, det.AnsweredAt, det.PauseAfterAnswer = conv.OpenedAt, conv.AnsweredAt, FormatDuration(c.PauseAfterAnswer)
	return hold{until: end, reason: ReasonConversationOpen}, true
}

// MinRecheck is the shortest recheck policy.yaml may set.
const MinRecheck = 5 * time.Minute
