package engine

import (
	"context"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/jobs"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Jobs' types and values, as package engine/jobs defines them.
type (
	Job           = jobs.Job
	JobSpec       = jobs.JobSpec
	JobEntrypoint = jobs.JobEntrypoint
	JobFilter     = jobs.JobFilter
	Namespace     = jobs.Namespace
	// Quota bounds what one job may hold on each node (engine/tasks enforces it).
	Quota = wire.Quota
)

// Job statuses and kinds, limits and errors (package engine/jobs).
const (
	JobPending        = jobs.JobPending
	JobRunning        = jobs.JobRunning
	JobSucceeded      = jobs.JobSucceeded
	JobFailed         = jobs.JobFailed
	JobStopped        = jobs.JobStopped
	JobKindWorkflow   = jobs.JobKindWorkflow
	JobKindTask       = jobs.JobKindTask
	DefaultNamespace  = jobs.DefaultNamespace
	MaxJobMetadata    = jobs.MaxJobMetadata
	MaxJobResultBytes = jobs.MaxJobResultBytes
)

var (
	ErrJobNotFound = jobs.ErrJobNotFound
	ErrJobExists   = jobs.ErrJobExists
	ErrJobEnded    = jobs.ErrJobEnded
)

// ParseJobSpec decodes and validates a job submission (jobs.ParseJobSpec).
func ParseJobSpec(b []byte) (*JobSpec, error) { return jobs.ParseJobSpec(b) }

// Jobs is the node's share of the jobs (package engine/jobs).
func (e *Engine) Jobs() *jobs.Manager { return e.jobs }

func (e *Engine) openJobs() {
	e.jobs = jobs.New(jobs.Deps{Ctx: e.ctx, WG: &e.wg, Node: e.node, NodeID: e.nodeID(), Boot: e.cluster.Boot(),
		IsDead: e.cluster.IsDead, DeadPrefix: cluster.DeadPrefix, Every: e.every, Workflows: e.workflows, Tasks: jobTasks{e},
		Release: e.releaseJobHere, End: e.tasks.EndJob, SetQuota: e.tasks.SetQuota})
	e.jobs.Start()
}

// releaseJobHere frees what stopped job id holds on this node besides its task and workflows:
// its actors, its objects (pending tasks cancelled) and its tensors.
func (e *Engine) releaseJobHere(id string) {
	e.actors.KillJob(id)
	e.objects.ReleaseJob(id)
	e.tensors.DropJob(id)
}

// jobTasks runs task jobs through the node's task path.
type jobTasks struct{ e *Engine }

func (t jobTasks) Check(ctx context.Context, module, function string) error {
	_, err := t.e.Modules().function(ctx, module, function, abi.KindTask)
	return err
}

func (t jobTasks) Submit(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants) (int64, error) {
	return t.e.tasks.Submit(ctx, specOf(tasks.FromJob, tasks.Anywhere, job, req.Module, req, grants, host.Limits{}))
}

func (t jobTasks) Get(ctx context.Context, job string, h int64) ([]byte, error) {
	return t.e.objects.Get(ctx, job, h, -1)
}

func (t jobTasks) Peek(ctx context.Context, job string, h int64) ([]byte, error) {
	return t.e.objects.Get(ctx, job, h, time.Duration(0))
}

func (t jobTasks) Release(job string, h int64) { t.e.objects.Release(job, h) }
func (t jobTasks) Cancel(job string, h int64)  { t.e.Tasks().Cancel(job, h) }
