package workflows_test

import (
	"context"
	"sync"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/lojal/lojal/activities"
)

// onSend mocks one ask of the policy, and its delivery, with one function
// over the Send activity's input and output. Runs ask with Decide and
// deliver with Deliver on the channel's queue (send-on-channel-queues);
// fn is called once per ask, at the decision, with the decision's input
// (the trigger and received events travel with the delivery: observe sees
// each delivery's input).
func onSend(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities,
	fn func(context.Context, activities.SendInput) (activities.SendOutput, error), observe ...func(activities.DeliverInput)) {
	var mu sync.Mutex
	asked := map[string]activities.SendOutput{}
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.DecideInput) (activities.DecideOutput, error) {
		out, err := fn(ctx, activities.SendInput{DecideInput: in})
		if err != nil {
			return activities.DecideOutput{}, err
		}
		if out.IdempotencyKey == "" {
			out.IdempotencyKey = in.IdempotencyKey()
		}
		mu.Lock()
		asked[out.IdempotencyKey] = out
		mu.Unlock()
		return out.DecideOutput, nil
	}).Maybe()
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverOutput, error) {
		for _, o := range observe {
			o(in)
		}
		mu.Lock()
		defer mu.Unlock()
		return asked[in.IdempotencyKey].Delivery, nil
	}).Maybe()
}
