// Package engine is one Lumen node's control plane, wired from the packages that own each
// concern: the task pipeline (engine/tasks), objects (engine/objects, engine/remote), actors
// (engine/actors), workflows and jobs (engine/workflows, engine/jobs), the cluster
// (engine/cluster, engine/peer), data jobs, tensors and serving. It opens and closes them in
// order, implements host.Services and peer.Handler by routing each call to its owner, and owns
// the data directory's layout. See docs/architecture.md.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/actors"
	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/datajobs"
	"github.com/lumenflow/lumen/engine/jobs"
	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/remote"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
)

// DefaultObjectStoreBytes caps the bytes held by a node's object store when Config does not.
const DefaultObjectStoreBytes = objects.DefaultBytes

// Defaults of the node's bounds: Config.JobQuota's fields (tasks.DefaultQuota), Config.MaxQueued
// and Config.SpillBytes.
var (
	DefaultJobQuota = tasks.DefaultQuota
)

const (
	DefaultMaxQueued  = tasks.DefaultMaxQueued
	DefaultSpillBytes = objects.DefaultSpillBytes
)

// DefaultMaxTaskTimeout is Config.MaxTaskTimeout's default.
const DefaultMaxTaskTimeout = time.Hour

// Config configures an Engine. Zero fields take the defaults of the host and the registry.
type Config struct {
	// DataDir holds the registry, the compilation cache and the API tokens.
	DataDir string
	// MaxModuleBytes caps an uploaded module (default 64 MiB).
	MaxModuleBytes int64
	// Limits are the default limits of a call.
	Limits host.Limits
	// MaxConcurrentCalls caps the guest calls running at once.
	MaxConcurrentCalls int
	// ObjectStoreBytes caps the bytes the node's object store holds in memory (default 1 GiB).
	ObjectStoreBytes int64
	// SpillBytes caps the bytes the object store spills to disk past that (default
	// objects.DefaultSpillBytes).
	SpillBytes int64
	// Resources are what the node offers to tasks and actors; nil means its cores ("cpu") and
	// its memory ("memory_bytes"). Custom resources are any other name.
	Resources scheduler.Resources
	// TensorBytesPerJob caps the bytes of one job's live host tensors (default 1 GiB); past it
	// the tensor host functions return abi.ErrLimit. See package engine/tensors.
	TensorBytesPerJob int64
	// Cluster says how the node takes part in the replicated control plane; the zero value runs
	// a single node.
	Cluster ClusterConfig
	// Model says which chat models the node serves (engine/serving); the zero value serves none.
	Model serving.Config
	// MaxTaskTimeout caps the time limit a task or call may ask for (default
	// DefaultMaxTaskTimeout); a request over it is refused.
	MaxTaskTimeout time.Duration
	// MaxQueued caps the calls waiting for room on the node (default tasks.DefaultMaxQueued);
	// past it, work is refused at once with limit_exceeded (node_queue).
	MaxQueued int
	// JobQuota is what one job may hold on the node unless its submission says otherwise
	// (zero fields: tasks.DefaultQuota's).
	JobQuota tasks.Quota
	// JobActors caps one job's actors on the node (default actors.DefaultJobActors, 10,000;
	// negative: no cap); past it, creation is refused with limit_exceeded (job_actors).
	JobActors int
	// DataRoot is the folder data jobs may read and write (engine/datajobs): every path of a
	// pipeline is relative to it and must stay inside it. Empty: data jobs are refused.
	DataRoot string
}

// Engine is one node's control plane. It runs the calls of registered modules and, behind the
// guests' host functions, their objects, nested tasks and actors. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	started time.Time
	rt      *host.Runtime
	reg     *plugins.Registry
	objects *objects.Store
	adm     *tasks.Pool     // the node's resources
	tasks   *tasks.Pipeline // the one way a task runs (engine/tasks); set in Open
	tensors *tensors.Store

	ctx    context.Context // ends when the engine closes; background work runs under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // background tasks and actors

	mu       sync.Mutex
	compiled map[string]*host.Module // by digest
	fns      map[fnKey]fnRef         // resolved functions, dropped when the registry changes

	actors *actors.Manager // local, placed and named actors (engine/actors); set in openCluster

	node       *raftstore.Node // the replicated control plane (the cluster's raft)
	cluster    *cluster.Node   // membership, liveness and the view of the live nodes (engine/cluster)
	remote     *remote.Plane   // objects and placed tasks across nodes (engine/remote); set in openCluster
	groups     *cluster.Groups // the placement groups, and the bundles reserved here (engine/cluster)
	regVersion func() uint64   // moves when the registry's keys change, on any node
	fnsVersion uint64          // the regVersion e.fns was filled at; guarded by mu

	state     *state             // the replicated state's keys of workflows and checkpoints
	workflows *workflows.Manager // durable and compiled workflows (engine/workflows); set in Open
	log       *slog.Logger
	serving   *serving.Service  // the chat models, batches and training step (serving.go); set in Open
	data      *datajobs.Service // data jobs and the guests' datasets (datajobs.go); set in Open
	jobs      *jobs.Manager     // submitted jobs (engine/jobs); set in Open
}

// Open creates the data directory if needed, opens the registry and starts the host runtime.
// Close releases them.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("engine: a data directory is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("engine: create data directory: %w", err)
	}
	if cfg.Resources == nil {
		cfg.Resources = tasks.DefaultResources()
	}
	e := &Engine{
		cfg: cfg, started: time.Now(), objects: objects.New(cfg.ObjectStoreBytes).WithSpill(cfg.DataDir).SetSpillCap(cfg.SpillBytes), adm: tasks.NewPool(cfg.Resources),
		compiled: map[string]*host.Module{}, fns: map[fnKey]fnRef{},
		log:     slog.Default(),
		tensors: tensors.New(cfg.TensorBytesPerJob),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.data = e.newDataJobs()
	if err := e.openServing(); err != nil {
		e.cancel()
		return nil, err
	}
	rt, err := host.New(ctx, host.Config{
		DataDir:            cfg.DataDir,
		MaxConcurrentCalls: cfg.MaxConcurrentCalls,
		Defaults:           cfg.Limits,
		MaxModuleBytes:     cfg.MaxModuleBytes,
		Services:           services{e},
		Tensors:            e.tensors.Host(tensorScope),
		Models:             e.serving.HostModels(),
	})
	if err != nil {
		e.cancel()
		return nil, fmt.Errorf("engine: start host: %w", err)
	}
	e.rt = rt // the actors, opened with the cluster, run on it
	maxTimeout := cmp.Or(cfg.MaxTaskTimeout, DefaultMaxTaskTimeout)
	e.tasks = tasks.New(tasks.Deps{Ctx: e.ctx, WG: &e.wg, Log: e.log, Runtime: rt, Objects: e.objects, Pool: e.adm, Backend: taskBackend{e},
		DefaultTimeout: cmp.Or(cfg.Limits.Timeout, host.DefaultTimeout), MaxTimeout: maxTimeout})
	e.tasks.SetDefaultQuota(cfg.JobQuota)
	e.objects.JobQuota = func(job string) int64 { return e.tasks.Quota(job).ObjectBytes }
	e.adm.SetMaxQueued(cfg.MaxQueued)
	if err := e.openCluster(ctx); err != nil {
		e.cancel()
		rt.Close(ctx)
		return nil, err
	}
	reg, err := plugins.Open(ctx, plugins.Config{
		Store:          e.cluster.Registry(),
		Blobs:          e.cluster.ModuleBytes(), // the raft log carries records, not module bytes
		MaxModuleBytes: cfg.MaxModuleBytes,
		Inspector:      rt,
	})
	if err != nil {
		e.cancel()
		e.wg.Wait()
		e.node.Close()
		rt.Close(ctx)
		return nil, fmt.Errorf("engine: open registry: %w", err)
	}
	e.reg, e.state = reg, &state{node: e.node, ctx: e.ctx}
	e.workflows = workflows.New(workflows.Deps{Ctx: e.ctx, WG: &e.wg, Log: e.log, NodeID: e.nodeID(),
		Store: wfStore{e.state}, Registry: reg, Steps: steps{e}})
	if err := e.workflows.Resume(); err != nil {
		e.Close(ctx)
		return nil, err
	}
	e.openJobs()
	return e, nil
}

func (e *Engine) logf(format string, args ...any) { e.log.Warn(fmt.Sprintf(format, args...)) }

// Close cancels running tasks, stops actors, then closes the runtime and the registry.
func (e *Engine) Close(ctx context.Context) error {
	e.actors.Close()
	e.cancel()
	e.data.Close()
	e.wg.Wait()
	return errors.Join(e.rt.Close(ctx), e.reg.Close(), e.node.Close())
}

// DataDir returns the engine's data directory.
func (e *Engine) DataDir() string { return e.cfg.DataDir }

// CallRequest is one synchronous call of a registered module's function.
type CallRequest struct {
	Module   string // digest, name@version or name
	Function string
	Input    []byte
	Job      string // instances are pooled per job; empty means "default"
	Grants   host.Grants
	Limits   host.Limits
}

// Call runs one task function of a registered module and returns its result. The result's log
// is returned with a failed call too, alongside the error. Work the task starts (objects, nested
// tasks, actors) belongs to the same job and inherits its grants and limits.
func (t Tasks) Call(ctx context.Context, req CallRequest) (*host.Result, error) {
	job := wire.JobOr(req.Job)
	return t.e.tasks.Call(ctx, &tasks.Spec{Origin: tasks.FromCall, Placement: tasks.Here, Job: job, Module: req.Module,
		Function: req.Function, ArgsBytes: req.Input, Grants: req.Grants, Limits: req.Limits})
}

// Stats is a snapshot of the node's state.
type Stats struct {
	Started     time.Time
	Resources   scheduler.Resources
	Available   scheduler.Resources
	Modules     int
	Objects     int
	ObjectBytes int64
	Actors      int // actors not yet ended
	// Tasks counts the tasks the node ran and placed, by the way they came in; Queued is how
	// many calls wait for room now.
	Tasks  tasks.Counts
	Queued int
}

// Stats reports the node's state.
func (e *Engine) Stats() Stats {
	n, b := e.objects.Stats()
	live := e.actors.Count()
	return Stats{
		Started: e.started, Resources: e.cfg.Resources.Clone(), Available: e.adm.Available(),
		Modules: len(e.reg.List()), Objects: n, ObjectBytes: b, Actors: live,
		Tasks: e.tasks.Counts(), Queued: e.adm.Queued(),
	}
}

// Available reports the node's resources free now.
func (e *Engine) Available() scheduler.Resources { return e.adm.Available() }
