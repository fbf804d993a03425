package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/internal/store"
)

// RecordGroupInput says which group of its journey's holdout a run is in.
type RecordGroupInput struct {
	JourneyID string
	EntryID   string
	HeldOut   bool
}

// RecordGroup records whether a run is held out of its journey's sends
// or treated (journey_runs.holdout), for the journeys report.
func (a *Activities) RecordGroup(ctx context.Context, in RecordGroupInput) error {
	return a.Store.RecordRunGroup(ctx, in.JourneyID, in.EntryID, in.HeldOut)
}

// WouldSend records the message a held-out run would have sent, in place
// of asking the policy and sending: a row in holdout_messages, never in
// the contact ledger, so it counts toward no cap and reaches no channel.
// It is keyed by the request key the message would have had, so a retry
// records it once.
func (a *Activities) WouldSend(ctx context.Context, in DecideInput) error {
	err := a.Store.RecordHoldoutMessage(ctx, store.HoldoutMessage{RequestKey: in.RequestKey(), CustomerID: in.CustomerID,
		WorkflowID: in.WorkflowID, JourneyID: in.JourneyID, Version: in.Version, StepID: in.StepID, Template: in.Send.Template,
		Channel: in.Send.Channel, Topic: in.Send.Topic, Purpose: in.Send.Purpose, Priority: in.Send.Priority, At: a.now()})
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("customer no longer exists", ErrTypeCustomerGone, err)
	}
	return err
}
