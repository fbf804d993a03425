package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Change ids of the journey language's constructs (docs/journeys.md). Each
// is taken with workflow.GetVersion where the workflow first acts on it, so
// histories recorded before keep replaying the old branch, and runs that
// reach the point after a deploy record that they took the new one.
const (
	// changeSendOutcome: a send step reports how it went (sent,
	// suppressed, stale, failed), for outcome("step").
	changeSendOutcome = "send-outcome-branch-v1"
	// changeReceivedVars: messages see the events wait_for steps got
	// (.Received).
	changeReceivedVars = "wait-for-event-vars-v1"
	// changeChannelFallback: push that cannot reach the customer falls
	// back along the send's channel list (channel: [push, email]).
	changeChannelFallback = "channel-fallback-v1"
	// changeRetrigger: a newer trigger event for a keyed run in progress
	// updates the run (journey.OccRetrigger).
	changeRetrigger = "retrigger-update-v1"
)

// changeEpochs takes every change of an epoch at once. A run records it
// when it starts (every run this code starts) and takes the new branches
// of the changes in every epoch up to the version it recorded, without a
// marker each: every GetVersion marker also upserts Temporal's
// TemporalChangeVersion search attribute, and a one-send run recorded
// seven of each, more than half its history events and actions (each
// upsert a billed action and a visibility write). A run that started
// before replays without it and goes on taking the changes one by one;
// one that recorded an earlier epoch takes the later epochs' changes one
// by one. The change id is the first epoch's name; later epochs are its
// later versions (docs/versioning.md).
const changeEpochs = "epoch-1"

// epochs are the changes each epoch takes (epochs[v] for version v). Never
// add a change to an epoch that has shipped: a run that recorded it and
// reaches the change after a deploy would take its new branch on replay
// although it recorded nothing. A new change gets its own GetVersion, or
// goes into a new epoch.
var epochs = []map[string]bool{
	1: {
		changeSendTimeout: true, changeSendOutcome: true, changeReceivedVars: true, changeChannelFallback: true, changeRetrigger: true,
		changeReorder: true, changeDrain: true, changeBoundedDB: true, changeContinueInWaits: true, changeKnownData: true,
		changeSendQueues: true, changeBulkQueue: true, changeHoldout: true,
	},
	2: {changeDecideLocal: true},
	3: {changeClaimEntry: true},
	4: {changeReadAfterWaitFor: true},
}

// takeEpochs records, when a run starts (and when it continues as new),
// the epoch it takes. It must come before the run's first command.
func (r *run) takeEpochs() {
	r.epoch = workflow.GetVersion(r.ctx, changeEpochs, workflow.DefaultVersion, workflow.Version(len(epochs)-1))
}

// uses reports whether this run takes the new branch of a change.
func (r *run) uses(change string) bool {
	for v := workflow.Version(1); v <= r.epoch; v++ {
		if epochs[v][change] {
			return true
		}
	}
	return workflow.GetVersion(r.ctx, change, workflow.DefaultVersion, 1) >= 1
}

// sendDone is the occurrence that ends a send step with the activity's
// answer out.
func (r *run) sendDone(out activities.SendOutput) journey.Occurrence {
	occ := journey.Occurrence{Kind: journey.OccSent}
	if r.uses(changeSendOutcome) {
		occ.Outcome = sendOutcome(out)
	}
	return occ
}

// sendOutcome says how a send went. A message the activity allowed counts
// as sent unless delivery failed for good: one that may have reached the
// customer must not be followed by a step that assumes it did not.
func sendOutcome(out activities.SendOutput) journey.SendOutcome {
	switch {
	case out.Verdict == policy.Allow && out.Delivery.Status == activities.StatusFailed:
		return journey.SendFailed
	case out.Verdict == policy.Allow:
		return journey.SendSent
	case out.Reason == policy.ReasonStale:
		return journey.SendStale
	}
	return journey.SendSuppressed
}

// withReceived gives the message the events the run's wait_for steps got.
func (r *run) withReceived(in *activities.SendInput) {
	if len(r.st.Received) > 0 && r.uses(changeReceivedVars) {
		in.Received = r.st.Received
	}
}

// pushFallback returns the send to ask for when push cannot reach the
// customer: the rest of its channel list, or email as before lists.
func (r *run) pushFallback(send journey.SendAction) journey.SendAction {
	if len(send.Fallback) == 0 || !r.uses(changeChannelFallback) {
		send.Channel, send.Fallback = policy.Email, nil
		return send
	}
	rest := slices.DeleteFunc(append([]string{send.Channel}, send.Fallback...), func(ch string) bool { return ch == policy.Push })
	if len(rest) == 0 {
		rest = []string{policy.Email}
	}
	send.Channel, send.Fallback = rest[0], rest[1:]
	return send
}

// eventOccurrence is how an event reaches the journey: the trigger event
// of a keyed journey updates a run in progress (the documented rule);
// every other event is an event.
func (r *run) eventOccurrence(occ journey.Occurrence) journey.Occurrence {
	if occ.Kind != journey.OccEvent || occ.Event == nil || r.def.Key == nil || occ.Event.Type != r.def.Trigger.Event {
		return occ
	}
	if r.uses(changeRetrigger) {
		occ.Kind = journey.OccRetrigger
	}
	return occ
}
