package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Data jobs: pipelines of package data (docs/data.md) run on this node, in the background, over
// files under Config.DataRoot. Their user functions are WASM exports: see wasmResolver.

// Errors of data jobs.
var (
	// ErrNoDataRoot is returned when a data job is submitted to a node with no data root.
	ErrNoDataRoot = wire.Wrap(wire.KindDenied, errors.New("engine: this node has no data root (start it with --data-root); data jobs are refused"))
	// ErrDataJobNotFound is returned for an unknown (or long finished and forgotten) data job.
	ErrDataJobNotFound = wire.Wrap(wire.KindNotFound, errors.New("engine: data job not found"))
)

// Data job states.
const (
	DataJobRunning   = "running"
	DataJobSucceeded = "succeeded"
	DataJobFailed    = "failed"
	DataJobCancelled = "cancelled"
)

// maxEndedDataJobs is how many finished data jobs a node remembers (the oldest forgotten first).
const maxEndedDataJobs = 256

// DataJobStatus is a snapshot of one data job.
type DataJobStatus struct {
	ID       string         `json:"id"`
	Job      string         `json:"job"`
	State    string         `json:"state"` // running, succeeded, failed or cancelled
	Error    string         `json:"error,omitempty"`
	Started  time.Time      `json:"started"`
	Ended    *time.Time     `json:"ended,omitempty"`
	Progress []data.OpStats `json:"progress"`
	// Result is the sink's result once the job succeeded: rows and files written, a count, rows
	// taken.
	Result *data.Result `json:"result,omitempty"`
	// Workers is the number of WASM instances built for the job's map_batches steps.
	Workers int64 `json:"workers"`
}

// Done reports whether the job has ended.
func (s DataJobStatus) Done() bool { return s.State != DataJobRunning }

type dataJob struct {
	id, job  string
	root     string // the data root, resolved
	started  time.Time
	progress data.Progress
	cancel   context.CancelFunc
	done     chan struct{}
	workers  atomic.Int64

	mu     sync.Mutex
	state  string
	err    error
	ended  time.Time
	result *data.Result
}

func (j *dataJob) status() DataJobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := DataJobStatus{ID: j.id, Job: j.job, State: j.state, Started: j.started, Progress: j.progress.Snapshot(),
		Result: j.result, Workers: j.workers.Load()}
	for i := range s.Progress { // name paths as the pipeline does, not where the root is
		s.Progress[i].Op = strings.ReplaceAll(s.Progress[i].Op, j.root+string(filepath.Separator), "")
	}
	if j.err != nil {
		s.Error = j.err.Error()
	}
	if !j.ended.IsZero() {
		t := j.ended
		s.Ended = &t
	}
	return s
}

// dataJobs is the node's table of data jobs. The zero value is ready.
type dataJobs struct {
	mu    sync.Mutex
	jobs  map[string]*dataJob
	ended []string // ids of finished jobs, oldest first
}

// RunPipeline starts a data pipeline (the JSON of data.ParsePipeline) in the background and
// returns its id; DataJob reports its progress and result, CancelDataJob stops it. Every path
// the pipeline names is relative to Config.DataRoot and must stay inside it, symbolic links
// included; its map_batches and flat_map functions ("module.function" or
// "module.Actor.method", see docs/abi.md "Batch functions") run in WASM instances of the job
// with the given grants. Spill files go under the data directory. A malformed pipeline, a path
// outside the root or an unknown function is refused here; later failures end the job with its
// error. RunPipeline is safe for concurrent use; ctx bounds only the submission.
func (e *Engine) RunPipeline(ctx context.Context, job string, spec []byte, grants host.Grants) (string, error) {
	p, err := e.preparePipeline(spec)
	if err != nil {
		return "", err
	}
	j, err := e.startDataJob(e.ctx, p, job, grants)
	if err != nil {
		return "", err
	}
	return j.id, nil
}

// startDataJob runs a prepared pipeline in the background under parent.
func (e *Engine) startDataJob(parent context.Context, p *data.Pipeline, job string, grants host.Grants) (*dataJob, error) {
	if job == "" {
		job = "default"
	}
	var idb [8]byte
	rand.Read(idb[:])
	root, err := filepath.EvalSymlinks(e.cfg.DataRoot)
	if err != nil {
		return nil, fmt.Errorf("data root %s: %w", e.cfg.DataRoot, err)
	}
	j := &dataJob{id: "dj-" + hex.EncodeToString(idb[:]), job: job, root: root, started: time.Now().UTC(), state: DataJobRunning, done: make(chan struct{})}
	jctx, cancel := context.WithCancel(parent)
	j.cancel = cancel
	e.amu.Lock()
	closing := e.closing
	if !closing {
		e.wg.Add(1)
	}
	e.amu.Unlock()
	if closing {
		cancel()
		return nil, &abi.Error{Kind: abi.KindCancelled, Message: "the engine is closing"}
	}
	e.dataJobs.mu.Lock()
	if e.dataJobs.jobs == nil {
		e.dataJobs.jobs = map[string]*dataJob{}
	}
	e.dataJobs.jobs[j.id] = j
	e.dataJobs.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer cancel()
		res, err := e.runPipeline(jctx, p, job, grants, &j.progress, &j.workers)
		j.mu.Lock()
		j.ended = time.Now().UTC()
		switch {
		case err == nil:
			j.state, j.result = DataJobSucceeded, &res
		case jctx.Err() != nil: // cancelled, timed out, or the engine closed
			j.state, j.err = DataJobCancelled, fmt.Errorf("%w (%v)", err, context.Cause(jctx))
		default:
			j.state, j.err = DataJobFailed, err
		}
		j.mu.Unlock()
		close(j.done)
		e.dataJobs.mu.Lock()
		e.dataJobs.ended = append(e.dataJobs.ended, j.id)
		for len(e.dataJobs.ended) > maxEndedDataJobs {
			delete(e.dataJobs.jobs, e.dataJobs.ended[0])
			e.dataJobs.ended = e.dataJobs.ended[1:]
		}
		e.dataJobs.mu.Unlock()
	}()
	return j, nil
}

// runPipelineStep runs a workflow's pipeline step as a data job of the workflow's job and
// grants, recorded in the step's status, and returns the job's result as JSON. The step's
// timeout bounds each attempt; a failed attempt is retried only as many times as the step's
// retries say (default none: a pipeline's failures are mostly its data's, and would recur).
func (e *Engine) runPipelineStep(ctx context.Context, c workflows.Call, input []byte, started func(dataJob string)) ([]byte, error) {
	s := c.Step
	p, err := e.preparePipeline(input)
	if err != nil {
		return nil, asABIError(err)
	}
	attempts := 1
	if s.Retries != nil {
		attempts += *s.Retries
	}
	for a := 1; ; a++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if s.TimeoutMs > 0 {
			actx, cancel = context.WithTimeout(ctx, time.Duration(s.TimeoutMs)*time.Millisecond)
		}
		j, err := e.startDataJob(actx, p, c.Job, host.Grants{Capabilities: c.Grants})
		if err != nil {
			cancel()
			return nil, err
		}
		started(j.id)
		<-j.done
		cancel()
		st := j.status()
		switch {
		case st.State == DataJobSucceeded:
			out, err := json.Marshal(st.Result)
			if err != nil {
				return nil, err
			}
			return out, nil
		case ctx.Err() != nil:
			return nil, &abi.Error{Kind: abi.KindCancelled, Message: "pipeline: " + st.Error}
		case a >= attempts:
			kind := abi.KindBadInput
			if st.State == DataJobCancelled {
				kind = abi.KindLimit
			}
			return nil, &abi.Error{Kind: kind, Message: fmt.Sprintf("pipeline (data job %s, attempt %d): %s", j.id, a, st.Error)}
		}
	}
}

// DataJob returns a snapshot of a data job: its state, per-operator progress and, once it
// succeeded, its result.
func (e *Engine) DataJob(id string) (DataJobStatus, error) {
	j := e.dataJob(id)
	if j == nil {
		return DataJobStatus{}, fmt.Errorf("%w: %q", ErrDataJobNotFound, id)
	}
	return j.status(), nil
}

// WaitDataJob waits until a data job ends or ctx is done, and returns its status.
func (e *Engine) WaitDataJob(ctx context.Context, id string) (DataJobStatus, error) {
	j := e.dataJob(id)
	if j == nil {
		return DataJobStatus{}, fmt.Errorf("%w: %q", ErrDataJobNotFound, id)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.status(), ctx.Err()
	}
	return j.status(), nil
}

// CancelDataJob stops a running data job: its operators stop, its spill files are removed and
// it ends as cancelled. Files its writer finished stay; a file being written is never left
// under its final name. Cancelling an ended job does nothing.
func (e *Engine) CancelDataJob(id string) error {
	j := e.dataJob(id)
	if j == nil {
		return fmt.Errorf("%w: %q", ErrDataJobNotFound, id)
	}
	j.cancel()
	return nil
}

func (e *Engine) dataJob(id string) *dataJob {
	e.dataJobs.mu.Lock()
	defer e.dataJobs.mu.Unlock()
	return e.dataJobs.jobs[id]
}

// preparePipeline parses a pipeline and checks its paths against the data root.
func (e *Engine) preparePipeline(spec []byte) (*data.Pipeline, error) {
	if e.cfg.DataRoot == "" {
		return nil, ErrNoDataRoot
	}
	p, err := data.ParsePipeline(spec)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	if err := checkDataPaths(e.cfg.DataRoot, p.Paths()); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	return p, nil
}

// checkDataPaths refuses a path that is absolute, climbs out of root, or reaches outside it
// through a symbolic link in any part that exists now.
func checkDataPaths(root string, paths []string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("data root %s: %w", root, err)
	}
	for _, p := range paths {
		if !filepath.IsLocal(p) {
			return fmt.Errorf("%w: path %q is not a relative path inside the data root", data.ErrBadPipeline, p)
		}
		// Resolve the longest prefix that exists; what does not exist yet cannot be a link.
		full := filepath.Join(realRoot, p)
		probe := full
		for {
			if _, err := os.Lstat(probe); err == nil {
				break
			}
			parent := filepath.Dir(probe)
			if parent == probe || len(parent) < len(realRoot) {
				probe = realRoot
				break
			}
			probe = parent
		}
		real, err := filepath.EvalSymlinks(probe)
		if err != nil {
			return fmt.Errorf("%w: path %q: %v", data.ErrBadPipeline, p, err)
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
			return fmt.Errorf("%w: path %q leads outside the data root (to %s)", data.ErrBadPipeline, p, real)
		}
	}
	return nil
}

// runPipeline runs a prepared pipeline to its end on the calling goroutine.
func (e *Engine) runPipeline(ctx context.Context, p *data.Pipeline, job string, grants host.Grants, progress *data.Progress, workers *atomic.Int64) (data.Result, error) {
	tmp := filepath.Join(e.cfg.DataDir, "data-tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return data.Result{}, fmt.Errorf("engine: data spill folder: %w", err)
	}
	root, err := filepath.EvalSymlinks(e.cfg.DataRoot)
	if err != nil {
		return data.Result{}, fmt.Errorf("data root %s: %w", e.cfg.DataRoot, err)
	}
	memCap := e.cfg.ObjectStoreBytes / 4
	if memCap <= 0 {
		memCap = 256 << 20
	}
	res, err := p.Run(ctx, data.BuildOptions{
		Root:     root,
		Resolver: &wasmResolver{e: e, job: job, grants: grants, built: workers},
		Options:  data.Options{MemoryCap: memCap, TempDir: tmp, Progress: progress},
	})
	if res.Write != nil { // name the files as the pipeline does: relative to the data root
		for i, f := range res.Write.Files {
			if rel, err := filepath.Rel(root, f); err == nil && filepath.IsLocal(rel) {
				res.Write.Files[i] = filepath.ToSlash(rel)
			}
		}
	}
	return res, err
}

// wasmResolver resolves the user functions of a pipeline to WASM exports. A batch function
// takes and returns one Arrow IPC stream (bytes in, bytes out; docs/abi.md "Batch functions"):
//
//   - "module.function": a task; each worker of the map_batches pool gets a dedicated
//     instance, so what the guest keeps in its globals (a model it loaded on the first batch)
//     serves every batch that worker is given.
//   - "module.Actor.method": a method of an actor type; each worker is an actor of that type
//     whose constructor runs once, with null arguments, before its first batch.
//
// The module part may hold dots (name@1.2.0): the first split that names a registered module
// with that function wins.
type wasmResolver struct {
	e      *Engine
	job    string
	grants host.Grants
	limits host.Limits
	built  *atomic.Int64 // instances built, for status
}

// Resolve implements data.Resolver.
func (r *wasmResolver) Resolve(ctx context.Context, fn string) (data.PoolFunc, error) {
	e := r.e
	var (
		fr     fnRef
		name   string
		ctor   string
		lastEr error
	)
	found := false
	for i := 0; i < len(fn) && !found; i++ {
		if fn[i] != '.' {
			continue
		}
		mod, export := fn[:i], fn[i+1:]
		if mod == "" || export == "" {
			continue
		}
		m, err := e.reg.Resolve(mod)
		if err != nil {
			lastEr = err
			continue
		}
		k := m.Manifest.Index(export)
		if k < 0 {
			lastEr = fmt.Errorf("module %s has no function %q", m.Ref(), export)
			continue
		}
		f := m.Manifest.Functions[k]
		if f.Input != abi.EncBytes || f.Output != abi.EncBytes {
			return nil, fmt.Errorf("%s of module %s is not a batch function: its input and output must be bytes (Arrow IPC)", export, m.Ref())
		}
		switch f.Kind {
		case abi.KindTask:
		case abi.KindMethod:
			ctor = f.Actor
		default:
			return nil, fmt.Errorf("%s of module %s is a %s, not a task or a method", export, m.Ref(), f.Kind)
		}
		fr, err = e.function(ctx, mod, export, f.Kind)
		if err != nil {
			return nil, err
		}
		name, found = export, true
	}
	if !found {
		if lastEr == nil {
			lastEr = errors.New(`want "module.function" or "module.Actor.method"`)
		}
		return nil, lastEr
	}
	return func(ctx context.Context, worker int) (data.BatchFunc, func() error, error) {
		cc := &callContext{grants: r.grants, limits: r.limits}
		inst, err := e.rt.NewInstance(ctx, host.InstanceSpec{Module: fr.hm, Job: r.job, Grants: r.grants, Limits: r.limits, Context: cc})
		if err != nil {
			return nil, nil, fmt.Errorf("worker %d of %s: %w", worker, fn, err)
		}
		closeInst := func() error {
			e.endScope(cc, nil, nil, false)
			return inst.Close(context.Background())
		}
		if ctor != "" {
			if _, err := inst.Call(ctx, ctor, []byte("null")); err != nil {
				closeInst()
				return nil, nil, fmt.Errorf("worker %d of %s: constructor %s: %w", worker, fn, ctor, err)
			}
		}
		if r.built != nil {
			r.built.Add(1)
		}
		batch := func(ctx context.Context, rec arrow.Record) (arrow.Record, error) {
			in, err := data.EncodeIPC(rec)
			if err != nil {
				return nil, err
			}
			res, err := inst.Call(ctx, name, in)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			out, err := data.DecodeIPC(res.Output, nil)
			if err != nil {
				return nil, fmt.Errorf("%s returned a malformed batch: %w", fn, err)
			}
			return out, nil
		}
		return batch, closeInst, nil
	}, nil
}
