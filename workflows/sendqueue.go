package workflows

import (
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/policy"
)

// changeSendQueues: a message is asked about (Decide) on the journey's
// task queue and delivered (Deliver) on its channel's send queue, whose
// rate the Temporal server limits for every worker together (SendQueue,
// docs/delivery.md "Send rate"). Runs that replay an ask made before keep
// the one Send activity doing both on the journey queue.
const changeSendQueues = "send-on-channel-queues"

// changeBulkQueue: a run on the BulkQueue delivers through the journey
// queue's send queues. (Runs recorded before it were all on the journey
// queue, where this changes nothing.)
const changeBulkQueue = "bulk-queue-delivers-on-journey-send-queues"

// changeDecideLocal: the decision runs as a local activity, in the
// workflow task that asks (a database round trip or two under the
// customer's lock), not as an activity task of its own: a one-send run
// takes one workflow task and one activity task fewer, six history events
// fewer. Like the other database activities (run.db) it falls back to a
// regular activity when Postgres does not answer within a minute.
const changeDecideLocal = "decide-local-v1"

// decide asks the relationship policy about one message.
func (r *run) decide(ctx workflow.Context, in activities.DecideInput, out *activities.DecideOutput) error {
	if r.uses(changeDecideLocal) {
		return r.db(r.acts.Decide, in, out)
	}
	return workflow.ExecuteActivity(ctx, r.acts.Decide, in).Get(r.ctx, out)
}

// SendQueue is the task queue messages on a channel are delivered on: the
// journey queue's name and the channel, such as "lojal-journeys-email".
// Each gets a queue of its own so that its rate can be limited, and a
// queue per journey queue so that workers on another queue (a test's, a
// benchmark's) never take its deliveries.
func SendQueue(journeyQueue, channel string) string {
	return journeyQueue + "-" + channel
}

// BulkQueue is the journey queue for runs that scheduled journeys enrol:
// an enrolment of a million customers queues a million first workflow
// tasks, and live runs on the journey queue must not wait behind them.
// The same workers poll both; deliveries of both go to the journey
// queue's send queues, so a channel keeps one rate.
func BulkQueue(journeyQueue string) string { return journeyQueue + "-bulk" }

// sendChannels are the channels with a send queue of their own.
func sendChannels() []string { return []string{policy.Email, policy.Push} }

// ask asks the relationship policy about one message and, when it allows,
// delivers it, with the same meaning of results and errors as the Send
// activity: a TimeoutError means nothing went out in time (ask again).
// Delivery runs on the send queue of the channel the policy chose, which
// the request may not have named ("preferred"), so it is a step of its
// own after the decision.
func (r *run) ask(ctx workflow.Context, in activities.SendInput) (activities.SendOutput, error) {
	var out activities.SendOutput
	if !r.uses(changeSendQueues) {
		err := workflow.ExecuteActivity(ctx, r.acts.Send, in).Get(r.ctx, &out)
		return out, err
	}
	if err := r.decide(ctx, in.DecideInput, &out.DecideOutput); err != nil || out.Verdict != policy.Allow {
		return out, err
	}
	queue := workflow.GetInfo(r.ctx).TaskQueueName
	if r.uses(changeBulkQueue) {
		queue = strings.TrimSuffix(queue, BulkQueue(""))
	}
	if slices.Contains(sendChannels(), out.Channel) {
		queue = SendQueue(queue, out.Channel)
	}
	err := workflow.ExecuteActivity(workflow.WithTaskQueue(ctx, queue), r.acts.Deliver, activities.DeliverInput{
		IdempotencyKey: out.IdempotencyKey, Trigger: in.Trigger, Received: in.Received, Channel: out.Channel, JourneyID: in.JourneyID,
		FirstAsked: in.FirstAsked,
	}).Get(r.ctx, &out.Delivery)
	return out, err
}
