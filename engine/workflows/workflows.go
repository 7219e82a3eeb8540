// Package workflows runs durable JSON workflows and compiled ones. It owns a workflow's life:
// compiling the document (engine/dag) with its module references pinned to digests, storing
// the spec and every step's output as a checkpoint in the replicated state, running the steps
// as their inputs become ready, resuming after a restart, adopting the workflows of a dead node
// (on the leader), and answering status, result and cancel for any workflow of the cluster,
// whichever node runs it: answers come from the replicated state, never from one node's memory,
// so every node gives the same one and it survives the death of the node that ran the workflow.
// Compiled workflows (Ray's compiled graphs) are prepared once and executed without checkpoints.
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
	"sync/atomic"
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
	// Linearize waits until this node's reads hold every write committed anywhere before the
	// call (raftstore.Node.Linearize): a node that restarted or lags catches up first.
	Linearize(ctx context.Context) error
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
// "cancel" (a request to cancel it, from any node), "out/STEP", "item/STEP/I".
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
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Job       string     `json:"job"`
	State     string     `json:"state"`
	Error     *abi.Error `json:"error,omitempty"`
	Submitted time.Time  `json:"submitted"`
	Finished  *time.Time `json:"finished,omitempty"`
	Resumed   int        `json:"resumed,omitempty"` // how many times it was resumed after a restart
	// Node is the node that runs it (or ran it): read from the replicated state with the status,
	// not stored in it, so it names the adopter once a dead node's workflow is adopted.
	Node  string       `json:"node,omitempty"`
	Steps []StepStatus `json:"steps"`
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
	// lost is set when a write found that this node no longer owns the workflow (or could not
	// say whether it still does): the run stops and writes nothing more.
	lost atomic.Bool

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
	m.startRun(r, nil, false)
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

// startRun runs r in the background from outputs, unless this node already runs that workflow (a
// restart's Resume and an adoption may both find it); it reports whether it started. A resumed
// run first stores its status (resumed once more), under the same ownership condition as every
// checkpoint.
func (m *Manager) startRun(r *run, outputs map[string][]byte, resumed bool) bool {
	ctx, cancel := context.WithCancel(m.deps.Ctx)
	r.cancel = cancel
	m.mu.Lock()
	if m.runs[r.id] != nil {
		m.mu.Unlock()
		cancel()
		return false
	}
	m.runs[r.id] = r
	m.mu.Unlock()
	m.deps.WG.Add(1)
	go func() {
		defer m.deps.WG.Done()
		defer close(r.done)
		defer cancel()
		defer func() {
			m.mu.Lock()
			if m.runs[r.id] == r {
				delete(m.runs, r.id)
			}
			m.mu.Unlock()
		}()
		if resumed {
			m.saveMeta(r)
		}
		m.runWorkflow(ctx, r, outputs)
	}()
	return true
}

// cancelPoll is how often a run looks for a cancel request written by another node.
const cancelPoll = 100 * time.Millisecond

// cancelRequested says whether a node asked for workflow id to be cancelled.
func (m *Manager) cancelRequested(id string) bool {
	_, err := m.store.Get(Key(id, "cancel"))
	return err == nil
}

// startStep records that step id starts, by a write that holds only while this node owns the
// workflow and the step has no stored output: a node that lost the workflow, or whose view is
// behind, never starts a step, and a finished step never starts again. It reports whether the
// step may run; when not, the run is lost and stops.
func (m *Manager) startStep(r *run, id string) bool {
	now := time.Now().UTC()
	start := func(ss *StepStatus) {
		ss.State, ss.Runs, ss.Started, ss.Error = StepRunning, ss.Runs+1, &now, nil
	}
	notDone := raftstore.Cond{Key: []byte(Key(r.id, "out/"+id)), Absent: true}
	if !m.checkpointWith(r, map[string][]byte{}, id, start, notDone) {
		return false
	}
	m.markStep(r, id, start)
	return true
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
	if m.cancelRequested(r.id) {
		r.cancel()
	}
	poll := time.NewTicker(cancelPoll)
	defer poll.Stop()
	for {
		if failure == nil && ctx.Err() == nil && !r.lost.Load() {
			for _, s := range r.plan.Ready(done) {
				if running[s.ID] {
					continue
				}
				if !m.startStep(r, s.ID) {
					break
				}
				running[s.ID] = true
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
		var res stepResult
		select {
		case res = <-results:
		case <-poll.C:
			if ctx.Err() == nil && m.cancelRequested(r.id) {
				r.cancel()
			}
			continue
		}
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
	if r.lost.Load() {
		// Another node owns it now (or this node could not tell): its owner ends it, and every
		// node answers from what the owner stores. Writing "cancelled" here would be a lie.
		return
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
// run's own status: the caller applies it once this returns), under conds besides ownership. It
// reports whether the write committed. A run whose write is refused has lost the workflow: it is
// cancelled and writes nothing more.
func (m *Manager) checkpointWith(r *run, kv map[string][]byte, id string, fn func(*StepStatus), conds ...raftstore.Cond) bool {
	if r.lost.Load() {
		return false
	}
	meta, err := json.Marshal(r.snapshotWith(id, fn))
	if err != nil {
		panic(fmt.Sprintf("engine: encode workflow status: %v", err)) // plain data: cannot fail
	}
	kv[Key(r.id, "meta")] = meta
	// Only the workflow's owner writes its checkpoints: a node that lost the workflow to another
	// (declared dead while it was only cut off, or restarted after it was adopted) stops
	// running it.
	owner := raftstore.Cond{Key: []byte(Key(r.id, "owner")), Value: []byte(m.deps.NodeID)}
	err = m.store.PutManyIf(kv, append([]raftstore.Cond{owner}, conds...)...)
	if err == nil {
		return true
	}
	if m.deps.Ctx.Err() != nil {
		return false // the engine is closing; a restart resumes from the last stored checkpoint
	}
	if errors.Is(err, raftstore.ErrConflict) {
		m.logf("workflow %s: another node owns it now, or its state moved on; this node stops running it", r.id)
	} else {
		// The write failed for good (the store retries while there is no leader): its outcome
		// may be unknown, so this run stops and the stored state decides who goes on.
		m.logf("workflow %s: checkpoint failed, this node stops running it: %v", r.id, err)
	}
	r.lost.Store(true)
	if r.cancel != nil {
		r.cancel()
	}
	m.deps.WG.Add(1)
	go func() {
		defer m.deps.WG.Done()
		<-r.done
		m.reconcile(r.id)
	}()
	return false
}

// reconcile catches up with the replicated state and resumes workflow id if this node still
// owns it and it is still running: a run that stopped on a write it could not make (a view that
// was behind, an outcome unknown) leaves the workflow to its owner, which may be this node.
func (m *Manager) reconcile(id string) {
	if err := m.linearize(); err != nil {
		return // the engine is closing
	}
	m.resumeStored(id)
}

// linearize waits, retrying while the cluster has no leader, until this node's reads hold every
// committed write; it fails only when the node closes.
func (m *Manager) linearize() error {
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		ctx, cancel := context.WithTimeout(m.deps.Ctx, 5*time.Second)
		err := m.store.Linearize(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if m.deps.Ctx.Err() != nil {
			return m.deps.Ctx.Err()
		}
		m.logf("workflows: catching up with the cluster's state: %v", err)
		t := time.NewTimer(backoff)
		select {
		case <-m.deps.Ctx.Done():
			t.Stop()
			return m.deps.Ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Manager) saveMeta(r *run) { m.checkpoint(r, map[string][]byte{}) }

// Resume restarts, in the background, every stored workflow this node owns that was still
// running, from its checkpoints. It first catches up with the cluster's replicated state
// (Store.Linearize, retried while there is no leader): a node that restarts reads the state it
// had applied before it stopped, which may be behind (its workflow adopted by another node,
// steps finished there), and resuming from that would run finished steps again and answer for
// a workflow it no longer owns. Reads need not wait for it: they come from the replicated state.
func (m *Manager) Resume() error {
	m.deps.WG.Add(1)
	go func() {
		defer m.deps.WG.Done()
		if err := m.linearize(); err != nil {
			return // the node closed first
		}
		if err := m.resumeAll(); err != nil {
			m.logf("%v", err)
		}
	}()
	return nil
}

// resumeAll resumes the running workflows this node owns, once caught up.
func (m *Manager) resumeAll() error {
	running := map[string]bool{}
	err := m.store.Scan(Prefix, func(k string, v []byte) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, Prefix), "/meta"); ok {
			var meta struct {
				State string `json:"state"`
			}
			if json.Unmarshal(v, &meta) == nil && meta.State == Running {
				running[id] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("workflows: read stored workflows: %w", err)
	}
	ids := make([]string, 0, len(running))
	for id := range running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		owner, _ := m.store.Get(Key(id, "owner"))
		if len(owner) == 0 {
			// Stored before workflows had owners: this node takes it.
			claim := raftstore.Cond{Key: []byte(Key(id, "owner")), Absent: true}
			if err := m.store.PutManyIf(map[string][]byte{Key(id, "owner"): []byte(m.deps.NodeID)}, claim); err != nil {
				continue
			}
		} else if string(owner) != m.deps.NodeID {
			continue // another node's: it runs it, or adopts it when its owner dies
		}
		m.resumeStored(id)
	}
	return nil
}

// resumeStored restarts workflow id from its checkpoints if this node owns it and it is still
// running. Everything is read after the ownership this relies on was committed and applied
// here, so every step whose output was committed before is skipped.
func (m *Manager) resumeStored(id string) {
	if owner, _ := m.store.Get(Key(id, "owner")); string(owner) != m.deps.NodeID {
		return
	}
	var spec Spec
	sb, err := m.store.Get(Key(id, "spec"))
	if err == nil {
		err = json.Unmarshal(sb, &spec)
	}
	if err != nil {
		m.logf("workflow %s cannot resume: stored spec: %v", id, err)
		return
	}
	meta, err := m.Stored(id)
	if err != nil {
		m.logf("workflow %s cannot resume: %v", id, err)
		return
	}
	if meta.State != Running {
		return
	}
	plan, err := m.compileWorkflow(spec.Workflow, spec.Modules)
	if err != nil {
		m.logf("workflow %s cannot resume: %v", id, err)
		return
	}
	outputs := map[string][]byte{}
	for _, st := range plan.Steps {
		if b, err := m.store.Get(Key(id, "out/"+st.ID)); err == nil {
			outputs[st.ID] = b
		}
	}
	meta.Resumed++
	meta.Node = ""
	for i := range meta.Steps {
		if meta.Steps[i].State == StepRunning {
			meta.Steps[i].State = StepWaiting
		}
	}
	m.startRun(m.newRun(id, spec, plan, meta), outputs, true)
}

// Adopt makes this node (the leader) the owner of the running workflows of a node
// declared dead, and resumes them from their checkpoints: a committed step does not run again.
func (m *Manager) Adopt(dead string) {
	var ids []string
	m.store.Scan(Prefix, func(k string, v []byte) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, Prefix), "/owner"); ok && string(v) == dead {
			ids = append(ids, id)
		}
		return nil
	})
	for _, id := range ids {
		meta, err := m.Stored(id)
		if err != nil || meta.State != Running {
			continue
		}
		claim := raftstore.Cond{Key: []byte(Key(id, "owner")), Value: []byte(dead)}
		if err := m.store.PutManyIf(map[string][]byte{Key(id, "owner"): []byte(m.deps.NodeID)}, claim); err != nil {
			continue
		}
		m.logf("workflow %s: adopted from dead node %s", id, dead)
		m.resumeStored(id)
	}
}

// readTimeout bounds the catching up before a read; past it (no leader), a node answers from
// the state it has applied.
const readTimeout = 2 * time.Second

// fresh catches this node up with the replicated state before a read, as far as readTimeout
// allows.
func (m *Manager) fresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	m.store.Linearize(ctx)
}

// stored reads workflow id's status and owner from this node's applied state; KindNotFound when
// there is no such workflow.
func (m *Manager) stored(id string) (Status, error) {
	mb, err := m.store.Get(Key(id, "meta"))
	if err != nil {
		if _, serr := m.store.Get(Key(id, "spec")); serr != nil {
			return Status{}, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no workflow %q", id)}
		}
		return Status{}, fmt.Errorf("workflows: stored status of %s: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(mb, &st); err != nil {
		return Status{}, fmt.Errorf("workflows: stored status of %s: %w", id, err)
	}
	st.Node = m.Owner(id)
	return st, nil
}

// Get returns workflow id's status as the replicated state holds it, once this node has caught
// up with it: every node answers the same, whichever runs the workflow.
func (m *Manager) Get(id string) (Status, error) {
	m.fresh(m.deps.Ctx)
	return m.stored(id)
}

// List lists every workflow's status, newest first, from the replicated state.
func (m *Manager) List() []Status {
	m.fresh(m.deps.Ctx)
	var out []Status
	m.store.Scan(Prefix, func(k string, v []byte) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(k, Prefix), "/meta")
		if !ok {
			return nil
		}
		var st Status
		if json.Unmarshal(v, &st) == nil {
			st.Node = m.Owner(id)
			out = append(out, st)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Submitted.Equal(out[j].Submitted) {
			return out[i].Submitted.After(out[j].Submitted)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Result waits (while ctx allows) for workflow id to end, whichever node runs it, and returns
// its output or the error it failed with. The ending is read from the replicated state: a run
// here that stopped because another node took the workflow over does not end it.
func (m *Manager) Result(ctx context.Context, id string) ([]byte, error) {
	m.fresh(ctx)
	for backoff := 5 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		// A terminal status never changes again: this node's applied state may be read.
		st, err := m.stored(id)
		if err != nil {
			return nil, err
		}
		switch st.State {
		case Succeeded:
			return m.store.Get(Key(id, "result"))
		case Running:
		default:
			if st.Error != nil {
				return nil, st.Error
			}
			return nil, &abi.Error{Kind: abi.KindSystem, Message: "workflow " + st.State}
		}
		m.mu.Lock()
		r := m.runs[id]
		m.mu.Unlock()
		wait := time.NewTimer(backoff)
		var done <-chan struct{}
		if r != nil {
			done = r.done // run here: its end is the moment to look again
		}
		select {
		case <-done:
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return nil, ctx.Err()
		}
		wait.Stop()
		if r != nil {
			backoff = 5 * time.Millisecond
		}
	}
}

// Cancel stops workflow id, whichever node runs it: the request is committed to the replicated
// state, where its owner (or the node that adopts it) finds it and cancels its running steps. A
// workflow that has ended is left as it is.
func (m *Manager) Cancel(id string) error {
	m.fresh(m.deps.Ctx)
	st, err := m.stored(id)
	if err != nil {
		return err
	}
	if st.State != Running {
		return nil
	}
	exists := raftstore.Cond{Key: []byte(Key(id, "spec")), Exists: true}
	if err := m.store.PutManyIf(map[string][]byte{Key(id, "cancel"): []byte(m.deps.NodeID)}, exists); err != nil {
		return fmt.Errorf("workflows: cancel %s: %w", id, err)
	}
	m.mu.Lock()
	r := m.runs[id]
	m.mu.Unlock()
	if r != nil {
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
