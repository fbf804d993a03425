package dialogue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/store"
)

// Event types the dialogue produces. Declare them in schema.yaml to use
// them in wait_for and conditions.
const (
	RepliedEvent  = "message.replied"
	AnsweredEvent = "survey.answered"
)

// ConversationWorkflow is the registered name of the workflow that
// forwards one reply to its helper and, when the reply opened a
// conversation with a response-time target, escalates it if it is still
// unanswered when the target passes (workflows.Conversation).
const ConversationWorkflow = "Conversation"

// ConversationInput starts ConversationWorkflow for one reply.
type ConversationInput struct {
	ReplyID string
	// ConversationID is empty for a reply from another address than the
	// customer's (held for the helper; it opens no conversation).
	ConversationID string
	// Target is the response-time target; zero sets no timer (the reply
	// joined a conversation already open, or the topic has none).
	Target time.Duration
	// OpenedAt is when the reply that opened the conversation was taken:
	// the target counts from then (zero, in inputs from before it was
	// carried: from the workflow's start).
	OpenedAt time.Time `json:",omitempty"`
}

// ConversationWorkflowID names the workflow of one reply.
func ConversationWorkflowID(replyID string) string { return "reply/" + replyID }

// ErrRetry means a reply was understood but could not be recorded: the
// sending server should try again (451).
var ErrRetry = errors.New("could not record the reply")

// Starter is the part of the Temporal client the intake uses.
type Starter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Intake takes replies: mail to a message's reply address (bounce.VERP
// ReplyAddress) and free text customers write with their answers.
type Intake struct {
	Store   *store.Store
	VERP    *bounce.VERP
	Catalog catalog.Source
	// Ingest stores and routes an event (ingest.Dispatcher.Event).
	Ingest func(ctx context.Context, e journey.Event) error
	// Temporal starts the workflow that forwards a reply; nil keeps
	// replies without forwarding them (tools, tests).
	Temporal  Starter
	TaskQueue string
	// MessageDomain is the right-hand side of lojal's Message-IDs.
	MessageDomain string
	Log           *slog.Logger
	Metrics       *metrics.Metrics
	Now           func() time.Time
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// TakeReply takes one message delivered over SMTP. handled is false when
// no envelope recipient is a reply address (the message is a report or
// an unsubscribe). A reply whose address does not verify, that names no
// email lojal sent, or that is automatic (RFC 3834, an out-of-office) is
// handled and changes nothing, with a log line. A malformed one is
// ErrMalformed (refused, 550); one that could not be recorded ErrRetry.
func (in *Intake) TakeReply(ctx context.Context, mailFrom string, envelopeTo []string, raw []byte) (handled bool, err error) {
	if in.VERP == nil {
		return false, nil
	}
	var msgHex string
	for _, to := range envelopeTo {
		if in.VERP.IsReplyAddress(to) {
			handled = true
			if id, ok := in.VERP.VerifyReply(to); ok {
				msgHex = id
				break
			}
		}
	}
	if !handled {
		return false, nil
	}
	log := in.Log.With("mail_from", mailFrom, "rcpt_to", envelopeTo)
	if msgHex == "" {
		// Accepted and ignored, like a forged report: refusing would tell
		// a forger which tokens are real.
		log.Warn("reply ignored: the reply address's signature does not verify")
		in.Metrics.Dialog("unmatched", "")
		return true, nil
	}
	p, err := Parse(raw, mailFrom)
	if err != nil {
		in.Metrics.Dialog("refused", "")
		return true, err
	}
	if p.Auto != "" {
		log.Info("automatic reply ignored: it never counts as a reply", "why", p.Auto, "subject", p.Subject)
		in.Metrics.Dialog("auto_reply", "")
		return true, nil
	}
	messageID := msgHex + "@" + in.MessageDomain
	m, found, err := in.Store.RepliedMessage(ctx, messageID)
	if err != nil {
		return true, fmt.Errorf("%w: %v", ErrRetry, err)
	}
	if !found {
		log.Warn("reply ignored: it names no email lojal sent", "message", messageID)
		in.Metrics.Dialog("unmatched", "")
		return true, nil
	}
	fromCustomer := strings.EqualFold(p.From, m.Address) || (m.CustomerEmail != "" && strings.EqualFold(p.From, m.CustomerEmail))
	r := store.Reply{ID: replyID(p, raw), CustomerID: m.CustomerID, MessageID: m.MessageID, JourneyID: m.JourneyID, StepID: m.StepID,
		From: p.From, FromCustomer: fromCustomer, Source: "reply", Subject: p.Subject, Body: p.Text, At: in.now()}
	return true, in.record(ctx, r, m.Topic, log)
}

// TakeText takes free text a customer wrote on an answer's thank-you
// page: it opens (or joins) a conversation and goes to the helper like a
// reply, without a message.replied event. link names the answer link it
// came through (its expiry, one per message asked): the same words posted
// twice through one link are one text, through a later message's link
// another.
func (in *Intake) TakeText(ctx context.Context, c journey.Customer, survey, journeyID, link, text string) error {
	sum := sha256.Sum256([]byte(c.ID + "\x00" + survey + "\x00" + link + "\x00" + text))
	r := store.Reply{ID: "answer-" + hex.EncodeToString(sum[:12]), CustomerID: c.ID, MessageID: "", JourneyID: journeyID,
		From: strings.ToLower(c.Email), FromCustomer: true, Source: "answer", Subject: survey, Body: text, At: in.now()}
	topic := ""
	if j, ok := in.Catalog.Current().Journey(journeyID); ok {
		topic = j.Topic
	}
	return in.record(ctx, r, topic, in.Log.With("customer", c.ID, "survey", survey))
}

func (in *Intake) record(ctx context.Context, r store.Reply, topic string, log *slog.Logger) error {
	cat := in.Catalog.Current()
	c, err := in.Store.Customer(ctx, r.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("reply ignored: the customer no longer exists", "customer", r.CustomerID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRetry, err)
	}
	journeyHelper := ""
	if j, ok := cat.Journey(r.JourneyID); ok {
		journeyHelper = j.Helper
	}
	helperID, _, _ := Resolve(cat.Rules.Conversations, journeyHelper, c)
	if r.FromCustomer && r.Source == "reply" {
		r.EventID = "reply:" + r.ID
	}
	sum := sha256.Sum256([]byte(r.ID))
	rec, err := in.Store.RecordReply(ctx, r, "c-"+hex.EncodeToString(sum[:12]), topic, helperID)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("reply ignored: the customer no longer exists", "customer", r.CustomerID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRetry, err)
	}
	what := "reply"
	if !r.FromCustomer {
		what = "held_for_helper"
		log.Info("reply from another address than the customer's: held for the helper, no conversation opened",
			"customer", r.CustomerID, "from", r.From, "message", r.MessageID)
	}
	if rec.New {
		in.Metrics.Dialog(what, topic)
	}
	if r.EventID != "" {
		e := journey.Event{ID: r.EventID, Type: RepliedEvent, CustomerID: r.CustomerID, At: rec.At, Data: map[string]any{
			"text": r.Body, "subject": r.Subject, "message_id": r.MessageID, "journey": r.JourneyID, "step": r.StepID,
			"topic": topic, "conversation_id": rec.ConversationID}}
		if err := in.Ingest(ctx, e); err != nil {
			if _, declared := cat.Schema.Events[RepliedEvent]; !declared {
				log.Warn("reply kept for the helper, but no journey sees it: declare message.replied in schema.yaml", "err", err)
			} else {
				return fmt.Errorf("%w: event %s: %v", ErrRetry, e.ID, err)
			}
		}
	}
	if in.Temporal == nil {
		return nil
	}
	var target time.Duration
	var openedAt time.Time
	if rec.Opened {
		target, openedAt = cat.Rules.Conversations.Target(topic), rec.At
	}
	queue := in.TaskQueue
	if queue == "" {
		queue = "lojal-journeys"
	}
	_, err = in.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: ConversationWorkflowID(r.ID), TaskQueue: queue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, ConversationWorkflow, ConversationInput{ReplyID: r.ID, ConversationID: rec.ConversationID, Target: target, OpenedAt: openedAt})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("%w: forward to the helper: %v", ErrRetry, err)
	}
	log.Info("reply taken", "customer", r.CustomerID, "reply", r.ID, "conversation", rec.ConversationID, "opened", rec.Opened,
		"helper", helperID, "from_customer", r.FromCustomer, "new", rec.New)
	return nil
}

// replyID names a reply by its Message-ID, or its bytes when it has none,
// so the same reply delivered again is recorded once.
func replyID(p Parsed, raw []byte) string {
	key := p.MessageID
	if key == "" {
		key = string(raw)
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}
