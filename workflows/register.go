package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
)

// Register registers the journey and schedule workflows and their
// activities on a worker.
// One Workflows value (its compiled-definition cache) and one Activities
// value serve the whole process.
func Register(r worker.Registry, a *activities.Activities, opts ...Option) {
	w := New(opts...)
	r.RegisterWorkflowWithOptions(w.Journey, workflow.RegisterOptions{Name: JourneyWorkflow})
	r.RegisterWorkflowWithOptions(w.Schedule, workflow.RegisterOptions{Name: ScheduleWorkflow})
	r.RegisterWorkflowWithOptions(w.Sweep, workflow.RegisterOptions{Name: SweepWorkflow})
	r.RegisterActivity(a)
}
