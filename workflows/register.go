package workflows

import (
	"fmt"
	"sync"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
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
	r.RegisterWorkflowWithOptions(w.Retain, workflow.RegisterOptions{Name: RetainWorkflow})
	r.RegisterWorkflowWithOptions(w.Conversation, workflow.RegisterOptions{Name: ConversationWorkflow})
	r.RegisterActivity(a)
}

// WorkerOptions configure the workers of one process.
type WorkerOptions struct {
	// Worker configures the journey worker; the send workers take its
	// stop timeout and activity concurrency.
	Worker worker.Options
	// Rates bounds, per channel, how many deliveries a second every worker
	// together starts: the Temporal server holds the channel's send queue
	// to it (TaskQueueActivitiesPerSecond). Retries count. 0 or absent:
	// no bound. Give every worker the same value; the server keeps the
	// last one a worker reported.
	Rates map[string]float64
	// Workflows configure the workflows.
	Workflows []Option
}

// Connection is how lojal's processes connect to Temporal: requests are
// gzipped only when asked (LOJAL_TEMPORAL_GZIP). A run's start or a
// workflow task's completion is a few KB, and gzip's cost is mostly fixed
// per request (it clears 640 KB of match tables for each): it took about
// a tenth of the API's CPU per event, and the server's to undo it, to save
// bytes a cluster network does not miss.
func Connection(gzip bool) client.ConnectionOptions {
	if gzip {
		return client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionGzip{}}
	}
	return client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}}
}

// Workers are the workers of one process: the journey worker on the
// journey queue (workflows, decisions and the short database activities),
// another on its BulkQueue (the same, for runs scheduled journeys enrol),
// and a send worker per channel on SendQueue (deliveries only).
type Workers []worker.Worker

// NewWorkers builds (but does not start) the workers of one process for
// the journey queue.
func NewWorkers(c client.Client, queue string, a *activities.Activities, o WorkerOptions) Workers {
	jw := worker.New(c, queue, o.Worker)
	Register(jw, a, o.Workflows...)
	// The bulk queue's worker takes a share of the process: the fewest
	// pollers the SDK allows (two for workflow tasks, one for activities)
	// and a quarter of the activity slots, so enrolled runs progress
	// beside live ones without crowding them out.
	bulk := o.Worker
	bulk.MaxConcurrentWorkflowTaskPollers, bulk.MaxConcurrentActivityTaskPollers = 2, 1
	if bulk.MaxConcurrentActivityExecutionSize > 0 {
		bulk.MaxConcurrentActivityExecutionSize = max(1, bulk.MaxConcurrentActivityExecutionSize/4)
	}
	bw := worker.New(c, BulkQueue(queue), bulk)
	Register(bw, a, o.Workflows...)
	ws := Workers{jw, bw}
	for _, ch := range sendChannels() {
		sw := worker.New(c, SendQueue(queue, ch), worker.Options{
			OnFatalError:                       o.Worker.OnFatalError,
			WorkerStopTimeout:                  o.Worker.WorkerStopTimeout,
			MaxConcurrentActivityExecutionSize: o.Worker.MaxConcurrentActivityExecutionSize,
			TaskQueueActivitiesPerSecond:       o.Rates[ch],
		})
		sw.RegisterActivityWithOptions(a.Deliver, activity.RegisterOptions{Name: DeliverActivity})
		ws = append(ws, sw)
	}
	return ws
}

// DeliverActivity is the registered name of activities.Activities.Deliver.
const DeliverActivity = "Deliver"

// Start starts every worker; if one fails, those started are stopped.
func (ws Workers) Start() error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			ws[:i].Stop()
			return fmt.Errorf("start worker %d of %d: %w", i+1, len(ws), err)
		}
	}
	return nil
}

// Stop stops every worker at once, each draining its in-flight activities
// for up to its stop timeout.
func (ws Workers) Stop() {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(w.Stop)
	}
	wg.Wait()
}
