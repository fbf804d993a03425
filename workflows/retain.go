package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names of the retention job (internal/retention). The activity is
// registered by the worker under RetainActivity; the workflow only names
// it.
const (
	RetainWorkflow = "Retain"
	RetainActivity = "Retain"
)

// RetainInput starts one retention pass.
type RetainInput struct{}

// RetainOutput is what the pass did.
type RetainOutput struct {
	Created []string
	Dropped []string
	// Rows deleted from the tables that are not partitioned.
	EventIDs, PushDeliveries, Firings, Runs int64
	// Messages held-out runs would have sent, and engagement signals,
	// deleted with the ledger's retention.
	HoldoutMessages, Engagements int64
	// Answered conversations (with their replies), replies in no
	// conversation and one-click answers deleted with the ledger's
	// retention.
	Conversations, Replies, Answers int64
	// Consent is the consent-ledger entries deleted: evidence no longer
	// needed, past its own, longer retention.
	Consent int64
}

// Retain runs one retention pass: partitions for the months ahead,
// partitions past their retention dropped, old rows of the other growing
// tables deleted, consent evidence no longer needed deleted. A schedule starts it (overlap skip); every step of the
// activity is safe to repeat, so a worker that dies mid-pass leaves
// nothing the retry cannot finish.
func (w *Workflows) Retain(ctx workflow.Context, in RetainInput) (RetainOutput, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			MaximumAttempts: 10, NonRetryableErrorTypes: []string{RetentionTooShort}},
	})
	var out RetainOutput
	err := workflow.ExecuteActivity(actx, RetainActivity, in).Get(ctx, &out)
	return out, err
}

// RetentionTooShort is the error type of a pass refused because the
// configured retention is shorter than policy.yaml needs: retrying does
// not help, changing either does.
const RetentionTooShort = "RetentionTooShort"
