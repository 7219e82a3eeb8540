// Package engine is one Lumen node's control plane, wired from the packages that own each
// concern: the task pipeline (engine/tasks), objects (engine/objects, engine/remote), actors
// (engine/actors), workflows and jobs (engine/workflows, engine/jobs), the cluster
// (engine/cluster, engine/peer), data jobs, tensors and serving. It opens and closes them in
// order, implements host.Services and peer.Handler by routing each call to its owner, and owns
// the data directory's layout. See docs/architecture.md.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// ObjectStoreBytes caps the bytes the node's object store holds (default 1 GiB).
	ObjectStoreBytes int64
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
		cfg: cfg, started: time.Now(), objects: objects.New(cfg.ObjectStoreBytes).WithSpill(cfg.DataDir), adm: tasks.NewPool(cfg.Resources),
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
	e.tasks = tasks.New(tasks.Deps{Ctx: e.ctx, WG: &e.wg, Log: e.log, Runtime: rt, Objects: e.objects, Pool: e.adm, Backend: taskBackend{e}})
	if err := e.openCluster(ctx); err != nil {
		e.cancel()
		rt.Close(ctx)
		return nil, err
	}
	reg, err := plugins.Open(ctx, plugins.Config{
		Store:          e.cluster.Registry(),
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

// Registry returns the module registry.
func (e *Engine) Registry() *plugins.Registry { return e.reg }

// AddModule checks, compiles and registers a module.
func (e *Engine) AddModule(ctx context.Context, wasm []byte, opts plugins.AddOptions) (*plugins.Module, error) {
	m, err := e.reg.Add(ctx, wasm, opts)
	if err == nil {
		e.registryChanged() // a name may now resolve to this module
	} else if digest := host.Digest(wasm); !e.registered(digest) {
		e.rt.Forget(ctx, digest) // refused after it compiled: not kept in the compile cache
	}
	return m, err
}

// registered reports whether the registry holds the module of digest.
func (e *Engine) registered(digest string) bool {
	_, err := e.reg.Resolve(digest)
	return err == nil
}

// registryChanged drops the resolved functions, which a change of the registry may alter.
func (e *Engine) registryChanged() {
	e.mu.Lock()
	clear(e.fns)
	e.mu.Unlock()
}

// DeleteModule removes what ref names (plugins.Registry.DeleteRef): a name@version, every version
// of a name, or a digest with all its names. A module goes with its last name, and only when
// nothing uses it: no live actor runs it, no running workflow or compiled workflow has a step in
// it; one in use is refused with plugins.ErrInUse, naming what uses it.
func (e *Engine) DeleteModule(ctx context.Context, ref string) error {
	var user string
	inUse := func(digest string) bool {
		user = e.moduleUser(digest)
		return user != ""
	}
	removed, err := e.reg.DeleteRef(ctx, ref, inUse)
	if err != nil {
		if user != "" {
			return fmt.Errorf("%w (%s)", err, user)
		}
		return err
	}
	e.mu.Lock()
	for _, d := range removed {
		delete(e.compiled, d)
	}
	clear(e.fns)
	e.mu.Unlock()
	for _, d := range removed {
		e.rt.Forget(ctx, d)
	}
	return nil
}

// moduleUser names something that uses the module of digest, or returns "".
func (e *Engine) moduleUser(digest string) string {
	if user := e.actors.InUse(digest); user != "" {
		return user
	}
	return e.workflows.InUse(digest)
}

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
func (e *Engine) Call(ctx context.Context, req CallRequest) (*host.Result, error) {
	job := wire.JobOr(req.Job)
	return e.tasks.Call(ctx, &tasks.Spec{Origin: tasks.FromCall, Placement: tasks.Here, Job: job, Module: req.Module,
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
}

// Stats reports the node's state.
func (e *Engine) Stats() Stats {
	n, b := e.objects.Stats()
	live := e.actors.Count()
	return Stats{
		Started: e.started, Resources: e.cfg.Resources.Clone(), Available: e.adm.Available(),
		Modules: len(e.reg.List()), Objects: n, ObjectBytes: b, Actors: live,
	}
}

// Available reports the node's resources free now.
func (e *Engine) Available() scheduler.Resources { return e.adm.Available() }

// module returns the compiled module of a digest, compiling it from the registry's bytes (from
// the on-disk cache after a restart) after checking the bytes still have that digest.
func (e *Engine) module(ctx context.Context, digest string) (*host.Module, error) {
	e.mu.Lock()
	hm := e.compiled[digest]
	e.mu.Unlock()
	if hm != nil {
		return hm, nil
	}
	wasm, err := e.reg.Bytes(digest)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("engine: module %s: stored bytes hash to %s; refusing to compile them", digest, got)
	}
	hm, err = e.rt.Compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("engine: compile module %s: %w", digest, err)
	}
	e.mu.Lock()
	e.compiled[digest] = hm
	e.mu.Unlock()
	return hm, nil
}
