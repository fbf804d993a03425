package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/store"
)

// helperName is the From display name of an email whose journey says
// from_helper: the name of the helper who takes its replies.
func helperName(cat *catalog.Catalog, journeyID string, c journey.Customer) string {
	j, ok := cat.Journey(journeyID)
	if !ok || !j.FromHelper {
		return ""
	}
	if _, h, ok := dialogue.Resolve(cat.Rules.Conversations, j.Helper, c); ok {
		return h.Name
	}
	return ""
}

// AnsweredLinkTTL is how long a "mark as answered" link works.
const AnsweredLinkTTL = 30 * 24 * time.Hour

// ErrTypeNoHelper: no helper is named for a reply; forwarding cannot
// succeed by retrying.
const ErrTypeNoHelper = "NoHelper"

// ForwardReplyInput names a reply to forward to its helper.
type ForwardReplyInput struct {
	ReplyID string
}

// ForwardReplyOutput says where the reply went.
type ForwardReplyOutput struct {
	Helper string
	Email  string
	// Webhook is where it was posted, as channel.RedactURL shows it.
	Webhook string
}

// ForwardReply sends a reply to the helper who takes it, by email (with
// the replier as Reply-To, so the helper answers directly) and/or
// webhook, with a signed "mark as answered" link. The email's Message-ID
// is derived from the reply, so a retried forward is one message to the
// helper's mail client.
func (a *Activities) ForwardReply(ctx context.Context, in ForwardReplyInput) (ForwardReplyOutput, error) {
	r, err := a.Store.ReplyByID(ctx, in.ReplyID)
	if err != nil {
		return ForwardReplyOutput{}, err
	}
	cat := a.Catalog.Current()
	c, err := a.Store.Customer(ctx, r.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return ForwardReplyOutput{}, temporal.NewNonRetryableApplicationError("customer no longer exists", ErrTypeCustomerGone, err)
	}
	if err != nil {
		return ForwardReplyOutput{}, err
	}
	journeyHelper, topic := "", ""
	if j, ok := cat.Journey(r.JourneyID); ok {
		journeyHelper, topic = j.Helper, j.Topic
	}
	id, h, ok := dialogue.Resolve(cat.Rules.Conversations, journeyHelper, c)
	if !ok {
		err := fmt.Errorf("reply %s of customer %s: no helper is named (set conversations.default_helper in policy.yaml, helper: in the journey, or helper_email on the customer)", r.ID, r.CustomerID)
		a.Log.Warn("reply not forwarded", "err", err)
		return ForwardReplyOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNoHelper, err)
	}
	f := forward{Kind: dialogue.RepliedEvent, Reply: r, Customer: customerView(c)}
	if r.ConversationID != "" {
		f.ConversationID = r.ConversationID
		f.AnsweredURL = a.answeredURL(r.ConversationID)
		f.Target = policy.FormatDuration(cat.Rules.Conversations.Target(topic))
	}
	out := ForwardReplyOutput{Helper: id}
	if h.Email != "" {
		if err := a.mailHelper(ctx, "forward/"+r.ID, h.Email, h.Name, f); err != nil {
			return out, err
		}
		out.Email = h.Email
	}
	if h.Webhook != "" {
		if err := a.postHook(ctx, h.Webhook, "forward/"+r.ID, f); err != nil {
			return out, err
		}
		out.Webhook = channel.RedactURL(h.Webhook)
	}
	a.Metrics.Dialog("forwarded", topic)
	return out, nil
}

// EscalateInput names a conversation whose response-time target passed.
type EscalateInput struct {
	ConversationID string
	Target         time.Duration
}

// EscalateOutput says whether the conversation was escalated.
type EscalateOutput struct {
	Escalated bool
	// Answered is true when it had been answered in time.
	Answered bool
}

// Escalate tells the helper's escalation contacts that a conversation
// passed its response-time target unanswered, and counts it. An answered
// conversation is left alone; one escalated before is not again.
func (a *Activities) Escalate(ctx context.Context, in EscalateInput) (EscalateOutput, error) {
	conv, err := a.Store.Conversation(ctx, in.ConversationID)
	if err != nil {
		return EscalateOutput{}, err
	}
	if conv.AnsweredAt != nil {
		return EscalateOutput{Answered: true}, nil
	}
	cat := a.Catalog.Current()
	c, err := a.Store.Customer(ctx, conv.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return EscalateOutput{}, nil
	}
	if err != nil {
		return EscalateOutput{}, err
	}
	journeyHelper := ""
	if j, ok := cat.Journey(conv.JourneyID); ok {
		journeyHelper = j.Helper
	}
	_, h, _ := dialogue.Resolve(cat.Rules.Conversations, journeyHelper, c)
	f := forward{Kind: "conversation.escalated", ConversationID: conv.ID, Customer: customerView(c), AnsweredURL: a.answeredURL(conv.ID),
		Target: policy.FormatDuration(in.Target), OpenedAt: conv.OpenedAt, Helper: h.Name}
	key := "escalate/" + conv.ID
	if h.EscalateEmail != "" {
		if err := a.mailHelper(ctx, key, h.EscalateEmail, "", f); err != nil {
			return EscalateOutput{}, err
		}
	}
	if h.EscalateWebhook != "" {
		if err := a.postHook(ctx, h.EscalateWebhook, key, f); err != nil {
			return EscalateOutput{}, err
		}
	}
	// Recorded after the contacts were told, so a failure to tell them is
	// retried; they may hear twice, never not at all.
	first, err := a.Store.MarkEscalated(ctx, conv.ID, a.now())
	if err != nil {
		return EscalateOutput{}, err
	}
	if first {
		a.Metrics.Dialog("escalated", conv.Topic)
		a.Log.Warn("conversation passed its response-time target unanswered: escalated", "conversation", conv.ID,
			"customer", conv.CustomerID, "target", in.Target, "escalate_email", h.EscalateEmail != "", "escalate_webhook", h.EscalateWebhook != "")
	}
	return EscalateOutput{Escalated: first}, nil
}

func (a *Activities) answeredURL(conversationID string) string {
	if a.Links == nil {
		return ""
	}
	return a.Links.URL(links.Claims{Kind: links.Answered, CustomerID: conversationID, Expires: a.now().Add(AnsweredLinkTTL)})
}

// forward is what a helper is told, by email and as a webhook's JSON body.
type forward struct {
	Kind           string       `json:"type"`
	ConversationID string       `json:"conversation_id,omitempty"`
	Customer       customerInfo `json:"customer"`
	Reply          store.Reply  `json:"reply,omitzero"`
	// AnsweredURL marks the conversation answered (GET shows a button,
	// POST marks it); so does POST /v1/conversations/{id}/answered.
	AnsweredURL string    `json:"answered_url,omitempty"`
	Target      string    `json:"response_time_target,omitempty"`
	OpenedAt    time.Time `json:"opened_at,omitzero"`
	Helper      string    `json:"helper,omitempty"`
}

type customerInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	Locale string `json:"locale,omitempty"`
}

func customerView(c journey.Customer) customerInfo {
	fn, _ := c.Attributes["first_name"].(string)
	ln, _ := c.Attributes["last_name"].(string)
	return customerInfo{ID: c.ID, Name: journey.DisplayName(fn + " " + ln), Email: c.Email, Locale: c.Locale}
}

func (f forward) text() (subject, body string) {
	var b strings.Builder
	who := f.Customer.Name
	if who == "" {
		who = f.Customer.ID
	}
	switch f.Kind {
	case "conversation.escalated":
		subject = fmt.Sprintf("Unanswered for %s: %s is waiting for an answer", f.Target, who)
		fmt.Fprintf(&b, "%s (%s) wrote to us at %s and has had no answer within the response-time target of %s.\n", who, f.Customer.Email,
			f.OpenedAt.UTC().Format("Mon 02 Jan 15:04 UTC"), f.Target)
		if f.Helper != "" {
			fmt.Fprintf(&b, "The reply went to %s.\n", f.Helper)
		}
	default:
		r := f.Reply
		subject = fmt.Sprintf("Reply from %s: %s", who, strings.TrimSpace(r.Subject))
		if r.Source == "answer" {
			subject = fmt.Sprintf("%s answered %q and wrote more", who, r.Subject)
		}
		if r.FromCustomer {
			fmt.Fprintf(&b, "%s (%s) wrote:\n\n%s\n\n", who, f.Customer.Email, r.Body)
			fmt.Fprintf(&b, "Answer by replying to this email: it goes to %s.\n", r.From)
		} else {
			fmt.Fprintf(&b, "%s replied to a message lojal sent to %s (%s). It is not the customer's address, so no conversation was opened and marketing to the customer goes on; check who wrote before you answer.\n\n%s\n",
				r.From, who, f.Customer.Email, r.Body)
		}
		if r.JourneyID != "" {
			fmt.Fprintf(&b, "\nIn reply to journey %s, step %s.\n", r.JourneyID, r.StepID)
		}
		if f.Target != "" {
			fmt.Fprintf(&b, "Please answer within %s.\n", f.Target)
		}
	}
	if f.AnsweredURL != "" {
		fmt.Fprintf(&b, "\nWhen you have answered, mark the conversation answered (marketing to the customer waits until then):\n%s\n", f.AnsweredURL)
	}
	return subject, b.String()
}

func (a *Activities) mailHelper(ctx context.Context, key, to, name string, f forward) error {
	subject, text := f.text()
	env := channel.Envelope{Channel: policy.Email, To: to, ToName: name, MessageID: MessageID(key, a.MessageDomain), IdempotencyKey: key,
		Message: render.Message{Template: "lojal-" + f.Kind, Locale: "en", Subject: subject, Text: text}}
	if f.Reply.From != "" {
		env.ReplyTo = f.Reply.From
	}
	if _, err := a.Sender.Send(ctx, env); err != nil {
		if perm, ok := channel.IsPermanent(err); ok {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("helper address %s refused: %v", to, perm), ErrTypeBadRequest, err)
		}
		return fmt.Errorf("mail helper %s: %w", to, later(ctx, err))
	}
	return nil
}

func (a *Activities) postHook(ctx context.Context, url, key string, f forward) error {
	if a.Webhooks == nil {
		return temporal.NewNonRetryableApplicationError("helper webhooks are not configured in this worker", ErrTypeBadRequest, nil)
	}
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// Errors name the webhook only as channel.RedactURL shows it: its
	// URL may be the helpdesk's secret, and errors end up in Temporal's
	// history and in logs.
	if err := a.Webhooks.Post(ctx, url, key, body); err != nil {
		if perm, ok := channel.IsPermanent(err); ok {
			return temporal.NewNonRetryableApplicationError("helper "+perm.Error(), ErrTypeBadRequest, err)
		}
		return fmt.Errorf("helper %w", later(ctx, err))
	}
	return nil
}
