package datajobs

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

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Errors of data jobs.
var (
	// ErrNoDataRoot is returned when a data job is submitted to a node with no data root.
	ErrNoDataRoot = wire.Wrap(wire.KindDenied, errors.New("datajobs: this node has no data root (start it with --data-root); data jobs are refused"))
	// ErrNotFound is returned for an unknown (or long finished and forgotten) data job.
	ErrNotFound = wire.Wrap(wire.KindNotFound, errors.New("datajobs: data job not found"))
)

// Data job states.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
	Cancelled = "cancelled"
)

// maxEnded is how many finished data jobs a node remembers (the oldest forgotten first).
const maxEnded = 256

// Deps is what the package needs of the engine, given once to New.
type Deps struct {
	// Context ends when the node closes: running jobs and the guests' datasets stop with it.
	// Nil: they stop only at Close.
	Context context.Context
	// DataRoot is the folder pipelines read and write under. Empty: data jobs and datasets of
	// a pipeline are refused with ErrNoDataRoot.
	DataRoot string
	// SpillDir is where operators spill what is over their memory cap; it is made when a
	// pipeline first needs it.
	SpillDir string
	// ObjectStoreBytes is what the node's object store holds (> 0): a quarter of it caps a
	// pipeline's memory, all of it the IPC bytes of one dataset a guest builds.
	ObjectStoreBytes int64
	// Guests runs a pipeline's user functions. Required for pipelines that name any.
	Guests Guests
	// Objects stores and reads the objects of a call: dataset_open of {"object": h} and
	// dataset_finish. Required for those.
	Objects Objects
	// CallGrants returns the grants and limits a guest call runs under: a dataset's user
	// functions run under them, and dataset_write writes into its directory grants. Nil: none.
	CallGrants func(c *host.CallInfo) (host.Grants, host.Limits)
	// Blocking runs wait, a guest call's wait for a batch or for files written, with the
	// call's resources given back to the node, and takes them again after. Nil: wait runs as
	// is.
	Blocking func(c *host.CallInfo, wait func() error) error
}

// Guests is how a pipeline's user functions reach WASM: the registry's view of a module, its
// compiled code, and instances that run under a job's grants. Implementations must be safe for
// concurrent use.
type Guests interface {
	// Manifest returns the manifest of the module ref names and the module's reference as
	// messages name it (name@version or its digest).
	Manifest(ref string) (name string, m abi.Manifest, err error)
	// Module returns the compiled module of ref, checked to hold function of kind.
	Module(ctx context.Context, ref, function string, kind abi.FuncKind) (*host.Module, error)
	// NewInstance starts a dedicated instance of spec.Module; the work its calls start
	// (objects, tasks, actors) belongs to spec.Job under spec.Grants. end closes the instance
	// and ends that work's hold on the node.
	NewInstance(ctx context.Context, spec host.InstanceSpec) (inst *host.Instance, end func() error, err error)
}

// Objects is the object store as a guest call sees it: host.Services' methods of the same names.
type Objects interface {
	ObjectPut(ctx context.Context, c *host.CallInfo, data []byte) (int64, error)
	ObjectGet(ctx context.Context, c *host.CallInfo, h int64, timeout time.Duration) ([]byte, error)
}

// Service is one node's data jobs and the engine behind its guests' dataset_* host functions
// (datasets.go). It is safe for concurrent use.
type Service struct {
	d      Deps
	ctx    context.Context // ends at Close or with Deps.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // running jobs and the producers of open datasets

	mu      sync.Mutex
	closing bool
	jobs    map[string]*job
	ended   []string // ids of finished jobs, oldest first
}

// New returns the node's data jobs over d. Close stops them.
func New(d Deps) *Service {
	if d.ObjectStoreBytes <= 0 {
		panic("datajobs: Deps.ObjectStoreBytes must be > 0")
	}
	parent := d.Context
	if parent == nil {
		parent = context.Background()
	}
	s := &Service{d: d, jobs: map[string]*job{}}
	s.ctx, s.cancel = context.WithCancel(parent)
	return s
}

// Close refuses new jobs and datasets, cancels those running and waits until their goroutines
// have returned. Datasets the guests hold stay in their table until their calls close them.
func (s *Service) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// start counts a goroutine of the service about to start, or refuses it if the service is
// closing.
func (s *Service) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return &abi.Error{Kind: abi.KindCancelled, Message: "the engine is closing"}
	}
	s.wg.Add(1)
	return nil
}

// memoryCap is the memory cap of one pipeline's operators.
func (s *Service) memoryCap() int64 {
	if c := s.d.ObjectStoreBytes / 4; c > 0 {
		return c
	}
	return 256 << 20
}

// spillDir makes the spill folder and returns it.
func (s *Service) spillDir() (string, error) {
	if err := os.MkdirAll(s.d.SpillDir, 0o700); err != nil {
		return "", fmt.Errorf("datajobs: data spill folder: %w", err)
	}
	return s.d.SpillDir, nil
}

// Status is a snapshot of one data job.
type Status struct {
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
func (s Status) Done() bool { return s.State != Running }

type job struct {
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

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Status{ID: j.id, Job: j.job, State: j.state, Started: j.started, Progress: j.progress.Snapshot(),
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

// Run starts a data pipeline (the JSON of data.ParsePipeline) in the background and returns
// its id; Status reports its progress and result, Cancel stops it. Every path the pipeline
// names is relative to Deps.DataRoot and must stay inside it, symbolic links included; its
// map_batches and flat_map functions ("module.function" or "module.Actor.method", see
// docs/abi.md "Batch functions") run in WASM instances of the job with the given grants. Spill
// files go under Deps.SpillDir. A malformed pipeline, a path outside the root or an unknown
// function is refused here; later failures end the job with its error. Run is safe for
// concurrent use; ctx bounds only the submission.
func (s *Service) Run(ctx context.Context, job string, spec []byte, grants host.Grants) (string, error) {
	p, err := s.prepare(spec)
	if err != nil {
		return "", err
	}
	j, err := s.startJob(s.ctx, p, job, grants)
	if err != nil {
		return "", err
	}
	return j.id, nil
}

// startJob runs a prepared pipeline in the background under parent (and the service's life).
func (s *Service) startJob(parent context.Context, p *data.Pipeline, jobName string, grants host.Grants) (*job, error) {
	if jobName == "" {
		jobName = "default"
	}
	var idb [8]byte
	rand.Read(idb[:])
	root, err := filepath.EvalSymlinks(s.d.DataRoot)
	if err != nil {
		return nil, fmt.Errorf("data root %s: %w", s.d.DataRoot, err)
	}
	j := &job{id: "dj-" + hex.EncodeToString(idb[:]), job: jobName, root: root, started: time.Now().UTC(), state: Running, done: make(chan struct{})}
	jctx, cancel := context.WithCancel(parent)
	j.cancel = cancel
	if err := s.start(); err != nil {
		cancel()
		return nil, err
	}
	stop := context.AfterFunc(s.ctx, cancel) // a parent other than s.ctx still ends at Close
	s.mu.Lock()
	s.jobs[j.id] = j
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer stop()
		res, err := s.runPipeline(jctx, p, jobName, grants, &j.progress, &j.workers)
		j.mu.Lock()
		j.ended = time.Now().UTC()
		switch {
		case err == nil:
			j.state, j.result = Succeeded, &res
		case jctx.Err() != nil: // cancelled, timed out, or the engine closed
			j.state, j.err = Cancelled, fmt.Errorf("%w (%v)", err, context.Cause(jctx))
		default:
			j.state, j.err = Failed, err
		}
		j.mu.Unlock()
		close(j.done)
		s.mu.Lock()
		s.ended = append(s.ended, j.id)
		for len(s.ended) > maxEnded {
			delete(s.jobs, s.ended[0])
			s.ended = s.ended[1:]
		}
		s.mu.Unlock()
	}()
	return j, nil
}

// RunStep runs a workflow's pipeline step s, its input rendered from outputs, as a data job of
// the workflow's job and grants, and returns the job's result as JSON. started is called with
// the id of each attempt's data job as it starts, for the step's status. The step's timeout
// bounds each attempt; a failed attempt is retried only as many times as the step's retries
// say (default none: a pipeline's failures are mostly its data's, and would recur). Errors are
// *abi.Error, as a step's are.
func (s *Service) RunStep(ctx context.Context, st *dag.Step, outputs map[string][]byte, job string, grants host.Grants, started func(id string)) ([]byte, error) {
	input, err := st.RenderInput(outputs, nil, 0)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	p, err := s.prepare(input)
	if err != nil {
		var ae *abi.Error
		if !errors.As(err, &ae) {
			ae = &abi.Error{Kind: abi.KindSystem, Message: err.Error()}
		}
		return nil, ae
	}
	attempts := 1
	if st.Retries != nil {
		attempts += *st.Retries
	}
	for a := 1; ; a++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if st.TimeoutMs > 0 {
			actx, cancel = context.WithTimeout(ctx, time.Duration(st.TimeoutMs)*time.Millisecond)
		}
		j, err := s.startJob(actx, p, job, grants)
		if err != nil {
			cancel()
			return nil, err
		}
		started(j.id)
		<-j.done
		cancel()
		js := j.status()
		switch {
		case js.State == Succeeded:
			out, err := json.Marshal(js.Result)
			if err != nil {
				return nil, err
			}
			return out, nil
		case ctx.Err() != nil:
			return nil, &abi.Error{Kind: abi.KindCancelled, Message: "pipeline: " + js.Error}
		case a >= attempts:
			kind := abi.KindBadInput
			if js.State == Cancelled {
				kind = abi.KindLimit
			}
			return nil, &abi.Error{Kind: kind, Message: fmt.Sprintf("pipeline (data job %s, attempt %d): %s", j.id, a, js.Error)}
		}
	}
}

// Status returns a snapshot of a data job: its state, per-operator progress and, once it
// succeeded, its result.
func (s *Service) Status(id string) (Status, error) {
	j := s.job(id)
	if j == nil {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return j.status(), nil
}

// Wait waits until a data job ends or ctx is done, and returns its status.
func (s *Service) Wait(ctx context.Context, id string) (Status, error) {
	j := s.job(id)
	if j == nil {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.status(), ctx.Err()
	}
	return j.status(), nil
}

// Cancel stops a running data job: its operators stop, its spill files are removed and it ends
// as cancelled. Files its writer finished stay; a file being written is never left under its
// final name. Cancelling an ended job does nothing.
func (s *Service) Cancel(id string) error {
	j := s.job(id)
	if j == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	j.cancel()
	return nil
}

func (s *Service) job(id string) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[id]
}

// prepare parses a pipeline and checks its paths against the data root.
func (s *Service) prepare(spec []byte) (*data.Pipeline, error) {
	if s.d.DataRoot == "" {
		return nil, ErrNoDataRoot
	}
	p, err := data.ParsePipeline(spec)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	if err := CheckPaths(s.d.DataRoot, p.Paths()); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	return p, nil
}

// CheckPaths refuses a path that is absolute, climbs out of root, or reaches outside it
// through a symbolic link in any part that exists now. Its errors wrap data.ErrBadPipeline.
func CheckPaths(root string, paths []string) error {
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
func (s *Service) runPipeline(ctx context.Context, p *data.Pipeline, job string, grants host.Grants, progress *data.Progress, workers *atomic.Int64) (data.Result, error) {
	tmp, err := s.spillDir()
	if err != nil {
		return data.Result{}, err
	}
	root, err := filepath.EvalSymlinks(s.d.DataRoot)
	if err != nil {
		return data.Result{}, fmt.Errorf("data root %s: %w", s.d.DataRoot, err)
	}
	res, err := p.Run(ctx, data.BuildOptions{
		Root:     root,
		Resolver: &wasmResolver{g: s.d.Guests, job: job, grants: grants, built: workers},
		Options:  data.Options{MemoryCap: s.memoryCap(), TempDir: tmp, Progress: progress},
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
	g      Guests
	job    string
	grants host.Grants
	limits host.Limits
	built  *atomic.Int64 // instances built, for status
}

// Resolve implements data.Resolver.
func (r *wasmResolver) Resolve(ctx context.Context, fn string) (data.PoolFunc, error) {
	var (
		hm     *host.Module
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
		ref, m, err := r.g.Manifest(mod)
		if err != nil {
			lastEr = err
			continue
		}
		k := m.Index(export)
		if k < 0 {
			lastEr = fmt.Errorf("module %s has no function %q", ref, export)
			continue
		}
		f := m.Functions[k]
		if f.Input != abi.EncBytes || f.Output != abi.EncBytes {
			return nil, fmt.Errorf("%s of module %s is not a batch function: its input and output must be bytes (Arrow IPC)", export, ref)
		}
		switch f.Kind {
		case abi.KindTask:
		case abi.KindMethod:
			ctor = f.Actor
		default:
			return nil, fmt.Errorf("%s of module %s is a %s, not a task or a method", export, ref, f.Kind)
		}
		hm, err = r.g.Module(ctx, mod, export, f.Kind)
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
		inst, closeInst, err := r.g.NewInstance(ctx, host.InstanceSpec{Module: hm, Job: r.job, Grants: r.grants, Limits: r.limits})
		if err != nil {
			return nil, nil, fmt.Errorf("worker %d of %s: %w", worker, fn, err)
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
