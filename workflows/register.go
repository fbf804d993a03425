package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
)

// Register registers the journey workflow and its activities on a worker.
// One Workflows value (its compiled-definition cache) and one Activities
// value serve the whole process.
func Register(r worker.Registry, a *activities.Activities) {
	r.RegisterWorkflowWithOptions(New().Journey, workflow.RegisterOptions{Name: JourneyWorkflow})
	r.RegisterActivity(a)
}
