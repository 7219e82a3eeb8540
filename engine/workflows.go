package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Workflow states.
const (
	WorkflowRunning   = "running"
	WorkflowSucceeded = "succeeded"
	WorkflowFailed    = "failed"
	WorkflowCancelled = "cancelled"
)

// Step states.
const (
	StepWaiting   = "waiting"
	StepRunning   = "running"
	StepDone      = "done"
	StepFailed    = "failed"
	StepCancelled = "cancelled"
)

// WorkflowStatus is a workflow's state and each step's, as stored after every change.
type WorkflowStatus struct {
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

// wfSpec is what is stored of a submitted workflow: the document, its job and grants, and the
// digest each module reference resolved to at submission, so that a resumed workflow runs the
// same code even if a newer version was uploaded since.
type wfSpec struct {
	Workflow json.RawMessage   `json:"workflow"`
	Job      string            `json:"job"`
	Grants   []abi.Capability  `json:"grants,omitempty"`
	Modules  map[string]string `json:"modules"` // reference as written -> digest
}

// wfRun is a workflow being run.
type wfRun struct {
	id     string
	spec   wfSpec
	plan   *dag.Plan
	cancel context.CancelFunc
	done   chan struct{} // closed when the run ends

	mu     sync.Mutex
	status WorkflowStatus
	steps  map[string]*StepStatus
}

func wfKey(id, part string) string { return "wf/" + id + "/" + part }

// catalog resolves workflow steps against the registry, pinning each reference to the digest it
// resolves to.
type catalog struct {
	e      *Engine
	pinned map[string]string
}

func (c catalog) Function(module, function string) (abi.Function, error) {
	if strings.HasPrefix(module, builtinPrefix) {
		f, ok := builtinFunction(module, function)
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
	m, err := c.e.reg.Resolve(ref)
	if err != nil {
		return abi.Function{}, fmt.Errorf("%w: %v", dag.ErrUnknownModule, err)
	}
	if _, ok := c.pinned[module]; !ok {
		c.pinned[module] = m.Digest
	}
	i := m.Manifest.Index(function)
	if i < 0 {
		return abi.Function{}, fmt.Errorf("%w: module %s has no function %q", dag.ErrUnknownFunction, m.Ref(), function)
	}
	return m.Manifest.Functions[i], nil
}

// compileWorkflow parses and validates a workflow document; an invalid one gives a KindBadInput
// error listing every mistake with its JSON path.
func (e *Engine) compileWorkflow(doc []byte, pinned map[string]string) (*dag.Plan, error) {
	w, err := dag.Parse(doc)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "invalid workflow: " + err.Error()}
	}
	plan, err := dag.Compile(w, catalog{e: e, pinned: pinned})
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "invalid workflow: " + err.Error()}
	}
	return plan, nil
}

// SubmitWorkflow validates a workflow, stores it and starts it; it returns the workflow's id.
// Its steps run as tasks of job with grants, as many at once as the DAG and the node allow.
func (e *Engine) SubmitWorkflow(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	spec := wfSpec{Workflow: json.RawMessage(doc), Job: jobOr(job), Grants: grants, Modules: map[string]string{}}
	plan, err := e.compileWorkflow(doc, spec.Modules)
	if err != nil {
		return "", err
	}
	var raw [8]byte
	rand.Read(raw[:])
	id := "wf-" + hex.EncodeToString(raw[:])
	r := e.newRun(id, spec, plan, WorkflowStatus{ID: id, Name: plan.Name, Job: spec.Job, State: WorkflowRunning, Submitted: time.Now().UTC()})
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	meta, err := json.Marshal(r.snapshot())
	if err != nil {
		return "", err
	}
	if err := e.state.putMany(map[string][]byte{wfKey(id, "spec"): specJSON, wfKey(id, "meta"): meta, wfKey(id, "owner"): []byte(e.nodeID())}); err != nil {
		return "", fmt.Errorf("engine: store workflow: %w", err)
	}
	e.startRun(r, nil)
	return id, nil
}

func (e *Engine) newRun(id string, spec wfSpec, plan *dag.Plan, st WorkflowStatus) *wfRun {
	r := &wfRun{id: id, spec: spec, plan: plan, done: make(chan struct{}), steps: map[string]*StepStatus{}}
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
func (r *wfRun) snapshot() WorkflowStatus { return r.snapshotWith("", nil) }

// snapshotWith is snapshot with fn applied to step id's copy (the run's own status unchanged).
func (r *wfRun) snapshotWith(id string, fn func(*StepStatus)) WorkflowStatus {
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

func (e *Engine) startRun(r *wfRun, outputs map[string][]byte) {
	ctx, cancel := context.WithCancel(e.ctx)
	r.cancel = cancel
	e.wmu.Lock()
	e.runs[r.id] = r
	e.wmu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		defer cancel()
		e.runWorkflow(ctx, r, outputs)
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
func (e *Engine) runWorkflow(ctx context.Context, r *wfRun, outputs map[string][]byte) {
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
				e.markStep(r, s.ID, func(ss *StepStatus) {
					now := time.Now().UTC()
					ss.State, ss.Runs, ss.Started, ss.Error = StepRunning, ss.Runs+1, &now, nil
				})
				e.saveMeta(r)
				// A step gets a snapshot of the outputs it may read: the map is not shared.
				in := make(map[string][]byte, len(s.Deps))
				for _, d := range s.Deps {
					in[d] = outputs[d]
				}
				go func(s *dag.Step) {
					out, err := e.runStep(ctx, r, s, in)
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
			ae, _ := asABIError(res.err).(*abi.Error)
			state := StepFailed
			if ctx.Err() != nil {
				state = StepCancelled
			}
			e.markStep(r, res.id, func(ss *StepStatus) {
				now := time.Now().UTC()
				ss.State, ss.Error, ss.Finished = state, ae, &now
			})
			if failure == nil && ctx.Err() == nil {
				failure = &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: fmt.Sprintf("step %q: %s", res.id, ae.Message)}
			}
			e.saveMeta(r)
			continue
		}
		outputs[res.id] = res.out
		done[res.id] = true
		// The step shows as done only once its output and status are committed: a client that
		// saw it done never sees it run again, whatever happens to the node next.
		now := time.Now().UTC()
		finish := func(ss *StepStatus) { ss.State, ss.Finished = StepDone, &now }
		e.checkpointWith(r, map[string][]byte{wfKey(r.id, "out/"+res.id): res.out}, res.id, finish)
		e.markStep(r, res.id, finish)
	}
	if e.ctx.Err() != nil {
		return // the engine is closing: leave the workflow running in storage, to resume
	}
	now := time.Now().UTC()
	final := map[string][]byte{}
	r.mu.Lock()
	switch {
	case ctx.Err() != nil:
		r.status.State = WorkflowCancelled
		r.status.Error = &abi.Error{Kind: abi.KindCancelled, Message: "the workflow was cancelled"}
	case failure != nil:
		r.status.State, r.status.Error = WorkflowFailed, failure
	default:
		out, err := r.plan.Output.Render(outputs, nil, 0)
		if err != nil {
			r.status.State = WorkflowFailed
			r.status.Error = &abi.Error{Kind: abi.KindBadInput, Message: "workflow output: " + err.Error()}
		} else {
			r.status.State = WorkflowSucceeded
			final[wfKey(r.id, "result")] = out
		}
	}
	for _, ss := range r.steps {
		if ss.State == StepWaiting || ss.State == StepRunning {
			ss.State = StepCancelled
		}
	}
	r.status.Finished = &now
	r.mu.Unlock()
	e.checkpoint(r, final)
}

func (e *Engine) markStep(r *wfRun, id string, fn func(*StepStatus)) {
	r.mu.Lock()
	fn(r.steps[id])
	r.mu.Unlock()
}

// checkpoint writes kv and the workflow's status in one durable transaction.
func (e *Engine) checkpoint(r *wfRun, kv map[string][]byte) { e.checkpointWith(r, kv, "", nil) }

// checkpointWith is checkpoint with fn applied to step id in the status written (not yet to the
// run's own status: the caller applies it once this returns).
func (e *Engine) checkpointWith(r *wfRun, kv map[string][]byte, id string, fn func(*StepStatus)) {
	meta, err := json.Marshal(r.snapshotWith(id, fn))
	if err != nil {
		panic(fmt.Sprintf("engine: encode workflow status: %v", err)) // plain data: cannot fail
	}
	kv[wfKey(r.id, "meta")] = meta
	// Only the workflow's owner writes its checkpoints: a node that lost the workflow to another
	// (declared dead while it was only cut off) stops running it.
	owner := raftstore.Cond{Key: []byte(wfKey(r.id, "owner")), Value: []byte(e.nodeID())}
	if err := e.state.putManyIf(kv, owner); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			e.logf("workflow %s: another node owns it now; this node stops running it", r.id)
			if r.cancel != nil {
				r.cancel()
			}
			return
		}
		// The engine keeps going; a restart resumes from the last stored checkpoint.
		e.logf("workflow %s: checkpoint failed: %v", r.id, err)
	}
}

func (e *Engine) saveMeta(r *wfRun) { e.checkpoint(r, map[string][]byte{}) }

// runStep runs one step: once, or once per element of its map, in parallel, each element's
// output checkpointed as it finishes so a restart re-runs only the missing ones.
func (e *Engine) runStep(ctx context.Context, r *wfRun, s *dag.Step, outputs map[string][]byte) ([]byte, error) {
	if s.Pipeline {
		return e.runPipelineStep(ctx, r, s, outputs) // datajobs.go
	}
	var run func(input []byte) ([]byte, error)
	if mod := r.spec.Modules[s.Module]; strings.HasPrefix(mod, builtinPrefix) {
		// A built-in function runs in the engine, under the step's timeout when it has one.
		run = func(input []byte) ([]byte, error) {
			bctx := ctx
			if s.TimeoutMs > 0 {
				var cancel context.CancelFunc
				bctx, cancel = context.WithTimeout(ctx, time.Duration(s.TimeoutMs)*time.Millisecond)
				defer cancel()
			}
			return e.runBuiltin(bctx, mod, s.Function, input)
		}
		return e.runStepWith(ctx, r, s, outputs, run)
	}
	fn, err := e.function(ctx, r.spec.Modules[s.Module], s.Function, abi.KindTask)
	if err != nil {
		return nil, err
	}
	retries, lim := retriesOr(s.Retries), withTimeout(host.Limits{}, s.TimeoutMs)
	d := demand(s.Resources, fn.hints)
	errHere := e.adm.check(d)
	if errHere != nil && !e.live.peers.Load() {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: errHere.Error()}
	}
	beat, _ := e.cfg.Cluster.intervals()
	run = func(input []byte) ([]byte, error) {
		// No room here now and room elsewhere: the step (or this element of its map) runs there,
		// and its output comes back here to be checkpointed. A step this node can never hold
		// waits for room elsewhere.
		acquired := false
		for e.live.peers.Load() {
			if acquired = errHere == nil && e.adm.tryAcquire(d); acquired {
				break // room here: it runs here
			}
			if node := e.placeTask(d, nil); node != "" {
				t := remoteTask{job: r.spec.Job, digest: fn.hm.Digest, function: s.Function,
					grants: r.spec.Grants, timeoutMs: s.TimeoutMs, retries: retries, retryGuest: s.RetryGuestErrors, demand: d}
				if json.Valid(input) {
					t.args = input
				} else {
					t.argsBytes = input
				}
				return e.runStepOn(ctx, node, t)
			}
			if errHere == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, &abi.Error{Kind: abi.KindCancelled, Message: "the workflow was cancelled"}
			case <-time.After(beat):
			}
		}
		if errHere != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: errHere.Error()}
		}
		cc := &callContext{grants: host.Grants{Capabilities: r.spec.Grants}, limits: lim}
		out, err := e.runTask(ctx, fn, task{
			job: r.spec.Job, module: r.spec.Modules[s.Module], function: s.Function, input: input,
			cc: cc, maxRetries: retries, retryGuest: s.RetryGuestErrors, acquired: acquired,
		}, d)
		e.endScope(cc, nil, nil, false) // a step's objects do not outlive it
		return out, err
	}
	return e.runStepWith(ctx, r, s, outputs, run)
}

// runStepWith runs a step's calls through run: once, or once per element of its map.
func (e *Engine) runStepWith(ctx context.Context, r *wfRun, s *dag.Step, outputs map[string][]byte, run func([]byte) ([]byte, error)) ([]byte, error) {
	if s.Map == nil {
		input, err := s.RenderInput(outputs, nil, 0)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
		}
		return run(input)
	}
	items, err := mapItems(s, outputs)
	if err != nil {
		return nil, err
	}
	results := make([][]byte, len(items))
	prefix := wfKey(r.id, "item/"+s.ID+"/")
	e.state.scan(prefix, func(k string, v []byte) error {
		if i, err := strconv.Atoi(strings.TrimPrefix(k, prefix)); err == nil && i >= 0 && i < len(items) {
			results[i] = v
		}
		return nil
	})
	finished := 0
	for _, res := range results {
		if res != nil {
			finished++
		}
	}
	e.markStep(r, s.ID, func(ss *StepStatus) { ss.Items, ss.ItemsRan = len(items), finished })
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, item := range items {
		if results[i] != nil {
			continue
		}
		input, err := s.RenderInput(outputs, item, i)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("element %d: %v", i, err)}
		}
		wg.Add(1)
		go func(i int, input []byte) {
			defer wg.Done()
			out, err := run(input)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("element %d: %w", i, err)
				}
				return
			}
			results[i] = out
			e.markStep(r, s.ID, func(ss *StepStatus) { ss.ItemsRan++ })
			e.checkpoint(r, map[string][]byte{prefix + strconv.Itoa(i): out})
		}(i, input)
	}
	wg.Wait()
	if first != nil {
		var ae *abi.Error
		if errors.As(first, &ae) {
			return nil, &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: first.Error()}
		}
		return nil, first
	}
	return joinJSON(s, results)
}

// mapItems renders a map step's array and splits it into elements (at most dag.MaxItems).
func mapItems(s *dag.Step, outputs map[string][]byte) ([]json.RawMessage, error) {
	items, err := s.Items(outputs)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	return items, nil
}

// joinJSON makes the JSON array of a map step's element outputs. A bytes output goes in as a
// JSON string; one that is not UTF-8 cannot.
func joinJSON(s *dag.Step, parts [][]byte) ([]byte, error) {
	out := []byte{'['}
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		switch {
		case s.Output != abi.EncBytes && json.Valid(p):
			out = append(out, p...)
		case utf8.Valid(p):
			b, _ := json.Marshal(string(p))
			out = append(out, b...)
		default:
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("map step %q: element %d's output is neither JSON nor UTF-8 text", s.ID, i)}
		}
	}
	return append(out, ']'), nil
}

// resumeWorkflows restarts every stored workflow that was still running, from its checkpoints.
func (e *Engine) resumeWorkflows() error {
	type stored struct {
		spec wfSpec
		meta WorkflowStatus
	}
	found := map[string]*stored{}
	err := e.state.scan("wf/", func(k string, v []byte) error {
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
		return fmt.Errorf("engine: read stored workflows: %w", err)
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := found[id]
		owner, _ := e.state.get(wfKey(id, "owner"))
		if s.meta.State == WorkflowRunning && len(owner) > 0 && string(owner) != e.nodeID() {
			continue // another node's: it runs it, or adopts it when its owner dies
		}
		if s.meta.State == WorkflowRunning && len(owner) == 0 {
			// Stored before workflows had owners: this node takes it.
			claim := raftstore.Cond{Key: []byte(wfKey(id, "owner")), Absent: true}
			if err := e.state.putManyIf(map[string][]byte{wfKey(id, "owner"): []byte(e.nodeID())}, claim); err != nil {
				continue
			}
		}
		e.resumeStored(id, s.spec, s.meta)
	}
	return nil
}

// resumeStored restarts a stored workflow from its checkpoints when it was running, and
// otherwise keeps its final status for queries.
func (e *Engine) resumeStored(id string, spec wfSpec, meta WorkflowStatus) {
	plan, perr := e.compileWorkflow(spec.Workflow, spec.Modules)
	if meta.State != WorkflowRunning {
		if perr == nil {
			r := e.newRun(id, spec, plan, meta)
			close(r.done)
			e.wmu.Lock()
			e.runs[id] = r
			e.wmu.Unlock()
		}
		return
	}
	if perr != nil {
		e.logf("workflow %s cannot resume: %v", id, perr)
		return
	}
	outputs := map[string][]byte{}
	for _, st := range plan.Steps {
		if b, err := e.state.get(wfKey(id, "out/"+st.ID)); err == nil {
			outputs[st.ID] = b
		}
	}
	meta.Resumed++
	for i := range meta.Steps {
		if meta.Steps[i].State == StepRunning {
			meta.Steps[i].State = StepWaiting
		}
	}
	r := e.newRun(id, spec, plan, meta)
	e.saveMeta(r)
	e.startRun(r, outputs)
}

// adoptWorkflows makes this node (the leader) the owner of the running workflows of a node
// declared dead, and resumes them from their checkpoints: a committed step does not run again.
func (e *Engine) adoptWorkflows(dead string) {
	var ids []string
	e.state.scan("wf/", func(k string, v []byte) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, "wf/"), "/owner"); ok && string(v) == dead {
			ids = append(ids, id)
		}
		return nil
	})
	for _, id := range ids {
		var spec wfSpec
		var meta WorkflowStatus
		sb, err1 := e.state.get(wfKey(id, "spec"))
		mb, err2 := e.state.get(wfKey(id, "meta"))
		if err1 != nil || err2 != nil || json.Unmarshal(sb, &spec) != nil || json.Unmarshal(mb, &meta) != nil || meta.State != WorkflowRunning {
			continue
		}
		claim := raftstore.Cond{Key: []byte(wfKey(id, "owner")), Value: []byte(dead)}
		if err := e.state.putManyIf(map[string][]byte{wfKey(id, "owner"): []byte(e.nodeID())}, claim); err != nil {
			continue
		}
		e.logf("workflow %s: adopted from dead node %s", id, dead)
		e.resumeStored(id, spec, meta)
	}
}

func (e *Engine) run(id string) (*wfRun, error) {
	e.wmu.Lock()
	r := e.runs[id]
	e.wmu.Unlock()
	if r == nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no workflow %q", id)}
	}
	return r, nil
}

// Workflow returns a workflow's status.
func (e *Engine) Workflow(id string) (WorkflowStatus, error) {
	r, err := e.run(id)
	if err != nil {
		return WorkflowStatus{}, err
	}
	return r.snapshot(), nil
}

// Workflows lists every workflow's status, newest first.
func (e *Engine) Workflows() []WorkflowStatus {
	e.wmu.Lock()
	runs := make([]*wfRun, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.wmu.Unlock()
	out := make([]WorkflowStatus, len(runs))
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

// WorkflowResult waits (while ctx allows) for a workflow to end and returns its output, or the
// error it failed with.
func (e *Engine) WorkflowResult(ctx context.Context, id string) ([]byte, error) {
	r, err := e.run(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st := r.snapshot()
	if st.State != WorkflowSucceeded {
		if st.Error != nil {
			return nil, st.Error
		}
		return nil, &abi.Error{Kind: abi.KindSystem, Message: "workflow " + st.State}
	}
	return e.state.get(wfKey(id, "result"))
}

// CancelWorkflow stops a running workflow; its running steps are cancelled.
func (e *Engine) CancelWorkflow(id string) error {
	r, err := e.run(id)
	if err != nil {
		return err
	}
	if r.cancel != nil {
		r.cancel()
	}
	return nil
}
