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
