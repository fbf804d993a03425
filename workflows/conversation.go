package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/dialogue"
)

// ConversationWorkflow is the registered name of Conversation.
const ConversationWorkflow = dialogue.ConversationWorkflow

// Conversation forwards one reply to its helper and, when the reply
// opened a conversation with a response-time target, waits out the target
// on a durable timer and escalates if the conversation is still
// unanswered then. Answering needs no signal: Escalate reads whether the
// conversation was answered, so an answer given through the API, the
// signed link or a database restore all count the same.
func (w *Workflows) Conversation(ctx workflow.Context, in dialogue.ConversationInput) error {
	var acts *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		// A helper's mail server or webhook may be down for a while; a
		// reply waits for it for a day, then the failure is the run's.
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	})
	log := workflow.GetLogger(ctx)
	// The target counts from the reply, not from a forward that a
	// helper's server that is down holds up for as long as a day.
	if workflow.GetVersion(ctx, escalateWhileForwarding, workflow.DefaultVersion, 1) == 1 {
		return w.conversation(ctx, actx, in)
	}
	var fwd activities.ForwardReplyOutput
	if err := workflow.ExecuteActivity(actx, acts.ForwardReply, activities.ForwardReplyInput{ReplyID: in.ReplyID}).Get(ctx, &fwd); err != nil {
		// The escalation still matters (more so) when forwarding failed.
		log.Error("reply not forwarded to its helper", "reply", in.ReplyID, "err", err)
	}
	if in.ConversationID == "" || in.Target <= 0 {
		return nil
	}
	if err := workflow.Sleep(ctx, in.Target); err != nil {
		return err
	}
	var out activities.EscalateOutput
	return workflow.ExecuteActivity(actx, acts.Escalate, activities.EscalateInput{ConversationID: in.ConversationID, Target: in.Target}).Get(ctx, &out)
}

// escalateWhileForwarding is the change id of conversation: the
// escalation's timer runs beside the forward, from when the conversation
// opened.
const escalateWhileForwarding = "escalate-while-forwarding-v1"

// conversation forwards the reply and, at the same time, waits out the
// target from when the conversation opened and escalates if it is still
// unanswered then. The run ends when both are done.
func (w *Workflows) conversation(ctx, actx workflow.Context, in dialogue.ConversationInput) error {
	var acts *activities.Activities
	forward := workflow.ExecuteActivity(actx, acts.ForwardReply, activities.ForwardReplyInput{ReplyID: in.ReplyID})
	var escalated error
	if in.ConversationID != "" && in.Target > 0 {
		wait := in.Target
		if !in.OpenedAt.IsZero() {
			wait = in.OpenedAt.Add(in.Target).Sub(workflow.Now(ctx))
		}
		if wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return err
			}
		}
		var out activities.EscalateOutput
		escalated = workflow.ExecuteActivity(actx, acts.Escalate, activities.EscalateInput{ConversationID: in.ConversationID, Target: in.Target}).Get(ctx, &out)
	}
	var fwd activities.ForwardReplyOutput
	if err := forward.Get(ctx, &fwd); err != nil {
		workflow.GetLogger(ctx).Error("reply not forwarded to its helper", "reply", in.ReplyID, "err", err)
	}
	return escalated
}
