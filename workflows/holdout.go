package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
)

// changeHoldout: a run of a journey with a holdout draws its group when it
// starts (journey.HeldOut) and records it; a held-out run records each
// message it would have sent (WouldSend) instead of asking the policy and
// sending, and otherwise goes through its steps, goal included. Journeys
// without a holdout take no new command.
const changeHoldout = "holdout-v1"

// drawHoldout puts a starting run in its journey's holdout or its treated
// group, and records which. Only journeys with a holdout ask.
func (r *run) drawHoldout() error {
	if r.def.Holdout <= 0 || !r.uses(changeHoldout) {
		return nil
	}
	r.in.HeldOut = journey.HeldOut(r.in.JourneyID, r.in.CustomerID, r.def.Holdout)
	if r.in.HeldOut {
		workflow.GetLogger(r.ctx).Info("run held out of the journey's sends", "holdout", journey.FormatHoldout(r.def.Holdout))
	}
	if r.in.EntryID == "" {
		return nil
	}
	if err := r.db(r.acts.RecordGroup, activities.RecordGroupInput{JourneyID: r.in.JourneyID, EntryID: r.in.EntryID,
		HeldOut: r.in.HeldOut}, nil); err != nil {
		return fmt.Errorf("record holdout group: %w", err)
	}
	return nil
}

// wouldSend ends a send step of a held-out run: it records the message
// the run would have sent, and the run goes on as if it had been sent
// (outcome "sent"), so it takes the path a treated customer's delivered
// message leads to. No settle pause, no policy, no channel.
func (r *run) wouldSend(in activities.DecideInput) (journey.Occurrence, error) {
	err := r.db(r.acts.WouldSend, in, nil)
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() == activities.ErrTypeCustomerGone {
		return journey.Occurrence{}, errCustomerGone
	}
	if err != nil {
		return journey.Occurrence{}, fmt.Errorf("record held-out message: %w", err)
	}
	return journey.Occurrence{Kind: journey.OccSent, Outcome: journey.SendSent}, nil
}
