// Package workflows runs durable JSON workflows and compiled ones. It owns a workflow's life:
// compiling the document (engine/dag) with its module references pinned to digests, storing
// the spec and every step's output as a checkpoint in the replicated state, running the steps
// as their inputs become ready, resuming after a restart, adopting the workflows of a dead node
// (on the leader), and answering status, result and cancel. Compiled workflows (Ray's compiled
// graphs) are prepared once and executed without checkpoints.
//
// It does not run a step's code: the node does, through the Steps it is given (tasks, built-in
// functions, data pipelines). It may import engine/dag, plugins, raftstore and sdk/abi.
package workflows

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Store is the replicated state that holds workflows: a write returns once a quorum holds it
// and this node has applied it.
type Store interface {
	Get(key string) ([]byte, error)
	PutMany(kv map[string][]byte) error
	// PutManyIf writes kv only when every condition holds (else an error wrapping
	// raftstore.ErrConflict).
	PutManyIf(kv map[string][]byte, conds ...raftstore.Cond) error
	// Scan calls fn for every key with prefix, in key order.
	Scan(prefix string, fn func(key string, val []byte) error) error
}

// Call is one call a step makes: once, or once per element of its map.
type Call struct {
	Job    string
	Grants []abi.Capability
	Module string // as pinned at submission: a digest, or a built-in module's name
	Step   *dag.Step
}

// Steps runs steps' code for the workflows: the node's task pipeline, its built-in functions
// and its data jobs.
type Steps interface {
	// Prepare checks that step c can run (here or on another node) and returns what runs it
	// on one input. It is called once per run of the step; run is called once per element.
	Prepare(ctx context.Context, c Call) (run func(input []byte) ([]byte, error), err error)
	// Compile prepares step c of a compiled workflow once, for many executions: functions
	// resolved, instances warm. run is safe for concurrent use.
	Compile(ctx context.Context, c Call) (run func(ctx context.Context, input []byte) ([]byte, error), err error)
	// Pipeline runs a pipeline step, its input rendered from the outputs of the steps it reads;
	// started reports the data job running it.
	Pipeline(ctx context.Context, c Call, outputs map[string][]byte, started func(dataJob string)) ([]byte, error)
	// Builtin describes a built-in function; isBuiltin says whether module names built-ins at all.
	Builtin(module, function string) (f abi.Function, isBuiltin, ok bool)
}

// Deps is what a Manager needs from its node.
type Deps struct {
	Ctx      context.Context // the node's lifetime: runs stop with it
	WG       *sync.WaitGroup // the node waits for runs when it closes
	Log      *slog.Logger
	NodeID   string
	Store    Store
	Registry *plugins.Registry
	Steps    Steps
}

// Manager is a node's workflows: those it runs, those it ran, and its compiled workflows. It is
// safe for concurrent use.
type Manager struct {
	deps     Deps
	store    Store
	mu       sync.Mutex
	runs     map[string]*run
	compiled map[string]*compiled
}

// New returns a node's Manager; Resume starts what the node was running.
func New(deps Deps) *Manager {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Manager{deps: deps, store: deps.Store, runs: map[string]*run{}, compiled: map[string]*compiled{}}
}

func (m *Manager) logf(format string, args ...any) { m.deps.Log.Warn(fmt.Sprintf(format, args...)) }

// Key is the replicated state's key of part of workflow id: "spec", "meta", "owner", "result",
// "out/STEP", "item/STEP/I".

func Key(id, part string) string { return Prefix + id + "/" + part }

// Prefix is the replicated state's prefix of every workflow key.
const Prefix = "wf/"

// Workflow states.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
	Cancelled = "cancelled"
)

// Step states.
const (
	StepWaiting   = "waiting"
	StepRunning   = "running"
	StepDone      = "done"
	StepFailed    = "failed"
	StepCancelled = "cancelled"
)

// Status is a workflow's state and each step's, as stored after every change.
type Status struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Job       string       `json:"job"`
	State     string       `json:"state"`
	Error     *abi.Error   `json:"error,omitempty"`
	Submitted time.Time    `json:"submitted"`
	Finished  *time.Time   `json:"finished,omitempty"`
	Resumed   int          `json:"resumed,omitempty"` // how many times it was resumed after a restart
	Steps     []StepStatus `json:"steps"`
}

// StepStatus is one step's state. Runs counts the times the step was started, over restarts:
// a step that finished before a crash keeps its count, because it is never run again.
type StepStatus struct {
	ID       string     `json:"id"`
	State    string     `json:"state"`
	Runs     int        `json:"runs"`
	Items    int        `json:"items,omitempty"`      // map steps: elements in all
	ItemsRan int        `json:"items_done,omitempty"` // map steps: elements finished
	Error    *abi.Error `json:"error,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	DataJob  string     `json:"data_job,omitempty"` // pipeline steps: the data job running it (DataJob)
}

// Spec is what is stored of a submitted workflow: the document, its job and grants, and the
// digest each module reference resolved to at submission, so that a resumed workflow runs the
// same code even if a newer version was uploaded since.
type Spec struct {
	Workflow json.RawMessage   `json:"workflow"`
	Job      string            `json:"job"`
	Grants   []abi.Capability  `json:"grants,omitempty"`
	Modules  map[string]string `json:"modules"` // reference as written -> digest
}

// run is a workflow being run.
type run struct {
	id     string
	spec   Spec
	plan   *dag.Plan
	cancel context.CancelFunc
	done   chan struct{} // closed when the run ends

	mu     sync.Mutex
	status Status
	steps  map[string]*StepStatus
}

// catalog resolves workflow steps against the registry, pinning each reference to the digest it
// resolves to.
type catalog struct {
	m      *Manager
	pinned map[string]string
}

func (c catalog) Function(module, function string) (abi.Function, error) {
	if f, isBuiltin, ok := c.m.deps.Steps.Builtin(module, function); isBuiltin {
		if !ok {
			return abi.Function{}, fmt.Errorf("%w: no built-in function %s.%s", dag.ErrUnknownFunction, module, function)
		}
		c.pinned[module] = module
		return f, nil
	}
	ref := module
	if d, ok := c.pinned[module]; ok {
		ref = d
	}
	mod, err := c.m.deps.Registry.Resolve(ref)
	if err != nil {
		return abi.Function{}, fmt.Errorf("%w: %v", dag.ErrUnknownModule, err)
	}
	if _, ok := c.pinned[module]; !ok {
		c.pinned[module] = mod.Digest
	}
	i := mod.Manifest.Index(function)
	if i < 0 {
		return abi.Function{}, fmt.Errorf("%w: module %s has no function %q", dag.ErrUnknownFunction, mod.Ref(), function)
	}
	return mod.Manifest.Functions[i], nil
}

// compileWorkflow parses and validates a workflow document; an invalid one gives a KindBadInput
// error listing every mistake with its JSON path.
func (m *Manager) compileWorkflow(doc []byte, pinned map[string]string) (*dag.Plan, error) {
	w, err := dag.Parse(doc)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "invalid workflow: " + err.Error()}
	}
	plan, err := dag.Compile(w, catalog{m: m, pinned: pinned})
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "invalid workflow: " + err.Error()}
	}
	return plan, nil
}

// Submit validates a workflow, stores it and starts it; it returns the workflow's id.
// Its steps run as tasks of job with grants, as many at once as the DAG and the node allow.
func (m *Manager) Submit(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	spec := Spec{Workflow: json.RawMessage(doc), Job: job, Grants: grants, Modules: map[string]string{}}
	plan, err := m.compileWorkflow(doc, spec.Modules)
	if err != nil {
		return "", err
	}
	var raw [8]byte
	rand.Read(raw[:])
	id := "wf-" + hex.EncodeToString(raw[:])
	r := m.newRun(id, spec, plan, Status{ID: id, Name: plan.Name, Job: spec.Job, State: Running, Submitted: time.Now().UTC()})
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	meta, err := json.Marshal(r.snapshot())
	if err != nil {
		return "", err
	}
	if err := m.store.PutMany(map[string][]byte{Key(id, "spec"): specJSON, Key(id, "meta"): meta, Key(id, "owner"): []byte(m.deps.NodeID)}); err != nil {
		return "", fmt.Errorf("workflows: store: %w", err)
	}
	m.startRun(r, nil)
	return id, nil
}

func (m *Manager) newRun(id string, spec Spec, plan *dag.Plan, st Status) *run {
	r := &run{id: id, spec: spec, plan: plan, done: make(chan struct{}), steps: map[string]*StepStatus{}}
	known := map[string]StepStatus{}
	for _, s := range st.Steps {
		known[s.ID] = s
	}
	st.Steps = nil
	r.status = st
	for _, s := range plan.Steps {
		ss, ok := known[s.ID]
		if !ok {
			ss = StepStatus{ID: s.ID, State: StepWaiting}
		}
		r.steps[s.ID] = &ss
	}
	return r
}

// snapshot returns the status with its steps in plan order. The caller must not hold r.mu.
func (r *run) snapshot() Status { return r.snapshotWith("", nil) }

// snapshotWith is snapshot with fn applied to step id's copy (the run's own status unchanged).
func (r *run) snapshotWith(id string, fn func(*StepStatus)) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Steps = make([]StepStatus, 0, len(r.plan.Steps))
	for _, s := range r.plan.Steps {
		ss := *r.steps[s.ID]
		if s.ID == id && fn != nil {
			fn(&ss)
		}
		st.Steps = append(st.Steps, ss)
	}
	return st
}

func (m *Manager) startRun(r *run, outputs map[string][]byte) {
	ctx, cancel := context.WithCancel(m.deps.Ctx)
	r.cancel = cancel
	m.mu.Lock()
	m.runs[r.id] = r
	m.mu.Unlock()
	m.deps.WG.Add(1)
	go func() {
		defer m.deps.WG.Done()
		defer close(r.done)
		defer cancel()
		m.runWorkflow(ctx, r, outputs)
	}()
}

// stepResult is what a step's goroutine reports.
type stepResult struct {
	id  string
	out []byte
	err error
}

// runWorkflow runs the steps whose inputs are ready, checkpointing each step's output with the
// workflow's status in one write, until every step is done, one fails or the run is cancelled.
func (m *Manager) runWorkflow(ctx context.Context, r *run, outputs map[string][]byte) {
	if outputs == nil {
		outputs = map[string][]byte{}
	}
	done := map[string]bool{}
	for id := range outputs {
		done[id] = true
	}
	running := map[string]bool{}
	results := make(chan stepResult)
	var failure *abi.Error
	for {
		if failure == nil && ctx.Err() == nil {
			for _, s := range r.plan.Ready(done) {
				if running[s.ID] {
					continue
				}
				running[s.ID] = true
				m.markStep(r, s.ID, func(ss *StepStatus) {
					now := time.Now().UTC()
					ss.State, ss.Runs, ss.Started, ss.Error = StepRunning, ss.Runs+1, &now, nil
				})
				m.saveMeta(r)
				// A step gets a snapshot of the outputs it may read: the map is not shared.
				in := make(map[string][]byte, len(s.Deps))
				for _, d := range s.Deps {
					in[d] = outputs[d]
				}
				go func(s *dag.Step) {
					out, err := m.runStep(ctx, r, s, in)
					results <- stepResult{id: s.ID, out: out, err: err}
				}(s)
			}
		}
		if len(running) == 0 {
			break
		}
		res := <-results
		delete(running, res.id)
		if res.err != nil {
			ae := wire.ABIError(res.err, "step")
			state := StepFailed
			if ctx.Err() != nil {
				state = StepCancelled
			}
			m.markStep(r, res.id, func(ss *StepStatus) {
				now := time.Now().UTC()
				ss.State, ss.Error, ss.Finished = state, ae, &now
			})
			if failure == nil && ctx.Err() == nil {
				failure = &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: fmt.Sprintf("step %q: %s", res.id, ae.Message)}
			}
			m.saveMeta(r)
			continue
		}
		outputs[res.id] = res.out
		done[res.id] = true
		// The step shows as done only once its output and status are committed: a client that
		// saw it done never sees it run again, whatever happens to the node next.
		now := time.Now().UTC()
		finish := func(ss *StepStatus) { ss.State, ss.Finished = StepDone, &now }
		m.checkpointWith(r, map[string][]byte{Key(r.id, "out/"+res.id): res.out}, res.id, finish)
		m.markStep(r, res.id, finish)
	}
	if m.deps.Ctx.Err() != nil {
		return // the engine is closing: leave the workflow running in storage, to resume
	}
	now := time.Now().UTC()
	final := map[string][]byte{}
	r.mu.Lock()
	switch {
	case ctx.Err() != nil:
		r.status.State = Cancelled
		r.status.Error = &abi.Error{Kind: abi.KindCancelled, Message: "the workflow was cancelled"}
	case failure != nil:
		r.status.State, r.status.Error = Failed, failure
	default:
		out, err := r.plan.Output.Render(outputs, nil, 0)
		if err != nil {
			r.status.State = Failed
			r.status.Error = &abi.Error{Kind: abi.KindBadInput, Message: "workflow output: " + err.Error()}
		} else {
			r.status.State = Succeeded
			final[Key(r.id, "result")] = out
		}
	}
	for _, ss := range r.steps {
		if ss.State == StepWaiting || ss.State == StepRunning {
			ss.State = StepCancelled
		}
	}
	r.status.Finished = &now
	r.mu.Unlock()
	m.checkpoint(r, final)
}

func (m *Manager) markStep(r *run, id string, fn func(*StepStatus)) {
	r.mu.Lock()
	fn(r.steps[id])
	r.mu.Unlock()
}

// checkpoint writes kv and the workflow's status in one durable transaction.
func (m *Manager) checkpoint(r *run, kv map[string][]byte) { m.checkpointWith(r, kv, "", nil) }

// checkpointWith is checkpoint with fn applied to step id in the status written (not yet to the
// run's own status: the caller applies it once this returns).
func (m *Manager) checkpointWith(r *run, kv map[string][]byte, id string, fn func(*StepStatus)) {
	meta, err := json.Marshal(r.snapshotWith(id, fn))
	if err != nil {
		panic(fmt.Sprintf("engine: encode workflow status: %v", err)) // plain data: cannot fail
	}
	kv[Key(r.id, "meta")] = meta
	// Only the workflow's owner writes its checkpoints: a node that lost the workflow to another
	// (declared dead while it was only cut off) stops running it.
	owner := raftstore.Cond{Key: []byte(Key(r.id, "owner")), Value: []byte(m.deps.NodeID)}
	if err := m.store.PutManyIf(kv, owner); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			m.logf("workflow %s: another node owns it now; this node stops running it", r.id)
			if r.cancel != nil {
				r.cancel()
			}
			return
		}
		// The engine keeps going; a restart resumes from the last stored checkpoint.
		m.logf("workflow %s: checkpoint failed: %v", r.id, err)
	}
}

func (m *Manager) saveMeta(r *run) { m.checkpoint(r, map[string][]byte{}) }

// Resume restarts every stored workflow that was still running, from its checkpoints.
func (m *Manager) Resume() error {
	type stored struct {
		spec Spec
		meta Status
	}
	found := map[string]*stored{}
	err := m.store.Scan("wf/", func(k string, v []byte) error {
		parts := strings.SplitN(strings.TrimPrefix(k, "wf/"), "/", 2)
		if len(parts) != 2 {
			return nil
		}
		s := found[parts[0]]
		if s == nil {
			s = &stored{}
			found[parts[0]] = s
		}
		switch parts[1] {
		case "spec":
			return json.Unmarshal(v, &s.spec)
		case "meta":
			return json.Unmarshal(v, &s.meta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("workflows: read stored workflows: %w", err)
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := found[id]
		owner, _ := m.store.Get(Key(id, "owner"))
		if s.meta.State == Running && len(owner) > 0 && string(owner) != m.deps.NodeID {
			continue // another node's: it runs it, or adopts it when its owner dies
		}
		if s.meta.State == Running && len(owner) == 0 {
			// Stored before workflows had owners: this node takes it.
			claim := raftstore.Cond{Key: []byte(Key(id, "owner")), Absent: true}
			if err := m.store.PutManyIf(map[string][]byte{Key(id, "owner"): []byte(m.deps.NodeID)}, claim); err != nil {
				continue
			}
		}
		m.resumeStored(id, s.spec, s.meta)
	}
	return nil
}

// resumeStored restarts a stored workflow from its checkpoints when it was running, and
// otherwise keeps its final status for queries.
func (m *Manager) resumeStored(id string, spec Spec, meta Status) {
	plan, perr := m.compileWorkflow(spec.Workflow, spec.Modules)
	if meta.State != Running {
		if perr == nil {
			r := m.newRun(id, spec, plan, meta)
			close(r.done)
			m.mu.Lock()
			m.runs[id] = r
			m.mu.Unlock()
		}
		return
	}
	if perr != nil {
		m.logf("workflow %s cannot resume: %v", id, perr)
		return
	}
	outputs := map[string][]byte{}
	for _, st := range plan.Steps {
		if b, err := m.store.Get(Key(id, "out/"+st.ID)); err == nil {
			outputs[st.ID] = b
		}
	}
	meta.Resumed++
	for i := range meta.Steps {
		if meta.Steps[i].State == StepRunning {
			meta.Steps[i].State = StepWaiting
		}
	}
	r := m.newRun(id, spec, plan, meta)
	m.saveMeta(r)
	m.startRun(r, outputs)
}

// Adopt makes this node (the leader) the owner of the running workflows of a node
// declared dead, and resumes them from their checkpoints: a committed step does not run again.
func (m *Manager) Adopt(dead string) {
	var ids []string
	m.store.Scan("wf/", func(k string, v []byte) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, "wf/"), "/owner"); ok && string(v) == dead {
			ids = append(ids, id)
		}
		return nil
	})
	for _, id := range ids {
		var spec Spec
		var meta Status
		sb, err1 := m.store.Get(Key(id, "spec"))
		mb, err2 := m.store.Get(Key(id, "meta"))
		if err1 != nil || err2 != nil || json.Unmarshal(sb, &spec) != nil || json.Unmarshal(mb, &meta) != nil || meta.State != Running {
			continue
		}
		claim := raftstore.Cond{Key: []byte(Key(id, "owner")), Value: []byte(dead)}
		if err := m.store.PutManyIf(map[string][]byte{Key(id, "owner"): []byte(m.deps.NodeID)}, claim); err != nil {
			continue
		}
		m.logf("workflow %s: adopted from dead node %s", id, dead)
		m.resumeStored(id, spec, meta)
	}
}

func (m *Manager) find(id string) (*run, error) {
	m.mu.Lock()
	r := m.runs[id]
	m.mu.Unlock()
	if r == nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no workflow %q", id)}
	}
	return r, nil
}

// Get returns a workflow's status.
func (m *Manager) Get(id string) (Status, error) {
	r, err := m.find(id)
	if err != nil {
		return Status{}, err
	}
	return r.snapshot(), nil
}

// List lists every workflow's status, newest first.
func (m *Manager) List() []Status {
	m.mu.Lock()
	runs := make([]*run, 0, len(m.runs))
	for _, r := range m.runs {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	out := make([]Status, len(runs))
	for i, r := range runs {
		out[i] = r.snapshot()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Submitted.Equal(out[j].Submitted) {
			return out[i].Submitted.After(out[j].Submitted)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Result waits (while ctx allows) for a workflow to end and returns its output, or the
// error it failed with.
func (m *Manager) Result(ctx context.Context, id string) ([]byte, error) {
	r, err := m.find(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st := r.snapshot()
	if st.State != Succeeded {
		if st.Error != nil {
			return nil, st.Error
		}
		return nil, &abi.Error{Kind: abi.KindSystem, Message: "workflow " + st.State}
	}
	return m.store.Get(Key(id, "result"))
}

// Cancel stops a running workflow; its running steps are cancelled.
func (m *Manager) Cancel(id string) error {
	r, err := m.find(id)
	if err != nil {
		return err
	}
	if r.cancel != nil {
		r.cancel()
	}
	return nil
}

// InUse names a running workflow or a compiled one that runs module digest; "" when none.
func (m *Manager) InUse(digest string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.runs {
		select {
		case <-r.done:
			continue
		default:
		}
		for _, d := range r.spec.Modules {
			if d == digest {
				return fmt.Sprintf("workflow %s is running a step of it", id)
			}
		}
	}
	for id, cw := range m.compiled {
		for _, s := range cw.steps {
			if s.module == digest {
				return fmt.Sprintf("compiled workflow %s has a step in it", id)
			}
		}
	}
	return ""
}

// CancelJob cancels the workflows of job this node runs.
func (m *Manager) CancelJob(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		if r.spec.Job == job && r.cancel != nil {
			r.cancel()
		}
	}
}

// Stored reads workflow id's stored status: what every node sees, whichever runs it.
func (m *Manager) Stored(id string) (Status, error) {
	mb, err := m.store.Get(Key(id, "meta"))
	if err != nil {
		return Status{}, err
	}
	var meta Status
	if err := json.Unmarshal(mb, &meta); err != nil {
		return Status{}, fmt.Errorf("workflows: stored status of %s: %w", id, err)
	}
	return meta, nil
}

// Owner is the node that runs workflow id, as stored ("" when none is).
func (m *Manager) Owner(id string) string {
	o, _ := m.store.Get(Key(id, "owner"))
	return string(o)
}

// StoredResult is workflow id's stored output.
func (m *Manager) StoredResult(id string) ([]byte, error) { return m.store.Get(Key(id, "result")) }

// OfJob finds the stored workflow that job runs, and its owner; "" when none.
func (m *Manager) OfJob(job string) (wf, owner string) {
	m.store.Scan(Prefix, func(k string, v []byte) error {
		wid, ok := strings.CutSuffix(strings.TrimPrefix(k, Prefix), "/spec")
		if !ok || wf != "" {
			return nil
		}
		var spec struct {
			Job string `json:"job"`
		}
		if json.Unmarshal(v, &spec) == nil && spec.Job == job {
			wf = wid
		}
		return nil
	})
	if wf != "" {
		owner = m.Owner(wf)
	}
	return wf, owner
}

// Check compiles a workflow document without running it: the plan, or a KindBadInput error
// listing every mistake with its JSON path.
func (m *Manager) Check(doc []byte) (*dag.Plan, error) {
	return m.compileWorkflow(doc, map[string]string{})
}
