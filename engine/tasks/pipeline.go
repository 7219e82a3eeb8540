package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Fn is a resolved task function: its compiled module and the module's resource hints.
type Fn struct {
	Module *host.Module
	Hints  abi.Resources
}

// Backend is what the pipeline needs from the rest of the node.
type Backend interface {
	// Function resolves module's task function.
	Function(ctx context.Context, module, function string) (Fn, error)
	// EndScope ends what a finished call holds: the objects its output refers to pass to holder
	// (its result object) or, with keep and no holder, stay with the caller; the rest, what it
	// borrowed, its actors and its tensors are released.
	EndScope(sc *Scope, out []byte, holder *objects.Object, keep bool)
	// ResetScope drops what a failed attempt made (objects, actors) before the next attempt.
	ResetScope(sc *Scope)
	// Peers says whether another live node may take work.
	Peers() bool
	// Place picks a node with room now for demand d ("": this node, or none has room).
	Place(d scheduler.Resources, exclude map[string]bool) string
	// PlaceOrQueue is Place for a task that may never fit here: when none has room now, a live
	// node that can ever hold it ("": here).
	PlaceOrQueue(d scheduler.Resources, exclude map[string]bool) string
	// Beat is the heartbeat interval: how often a task waiting for room anywhere looks again.
	Beat() time.Duration
	// RunOn runs t on node (the node-to-node protocol) and waits for its result, which stays
	// there: it returns where. An error that is not an *abi.Error means the node failed.
	RunOn(ctx context.Context, node string, t *Placed) (*objects.Location, error)
}

// Placed is a task this node runs on another: enough to submit it again elsewhere, and the
// lineage of its result (the node rebuilds a value lost with its holder by running it again).
type Placed struct {
	Job, Digest, Function string
	Args                  json.RawMessage
	ArgsBytes             []byte
	Grants                []abi.Capability
	TimeoutMs             int64
	Retries               int
	RetryGuest            bool
	Demand                scheduler.Resources
	// Group and Bundle, when Group is set, run the task in that bundle of a placement group.
	Group  string
	Bundle int
	// Refs are the objects (this node's handles) the task reads; the task holds them while it
	// runs, and its result for as long as it lives.
	Refs []int64
}

// Deps is what a Pipeline is built from.
type Deps struct {
	Ctx     context.Context // the node's lifetime: tasks are cancelled when it ends
	WG      *sync.WaitGroup // the node waits for running tasks when it closes
	Log     *slog.Logger
	Runtime *host.Runtime
	Objects *objects.Store
	Pool    *Pool // the node's resources
	Backend Backend
	// DefaultTimeout is a call's time limit when neither it nor its caller says (the runtime's
	// default); MaxTimeout caps what a task may ask for (0: no cap).
	DefaultTimeout, MaxTimeout time.Duration
}

// Pipeline is the one way a task runs on this node, however it came in (Spec.Origin): the
// function resolved, its demand checked against where it may run, placed here or on another
// node, its arguments held, its result an object of its job, cancellation through that object,
// system failures retried (on another node when its node failed), and every task counted. It
// is safe for concurrent use.
type Pipeline struct {
	Deps
	workers *workers

	ran       atomic.Int64 // tasks run here
	placedOut atomic.Int64 // tasks placed on other nodes
	retried   atomic.Int64 // placed tasks run again after their node failed
	came      [numOrigins]atomic.Int64

	// The jobs' shares of the node (admission.go), guarded by mu.
	mu           sync.Mutex
	jobs         map[string]*jobState
	quotas       map[string]Quota
	defaultQuota Quota
	ended        map[string]error
	endedOrder   []string
}

// New returns a node's Pipeline.
func New(d Deps) *Pipeline {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.DefaultTimeout <= 0 {
		d.DefaultTimeout = host.DefaultTimeout
	}
	return &Pipeline{Deps: d, workers: newWorkers(d.Ctx.Done(), 10*time.Second),
		jobs: map[string]*jobState{}, quotas: map[string]Quota{}, defaultQuota: DefaultQuota, ended: map[string]error{}}
}

// Counts is what the pipeline has done.
type Counts struct {
	Ran, PlacedOut, Retried int64
	ByOrigin                map[string]int64
}

// Counts reports the pipeline's counters.
func (p *Pipeline) Counts() Counts {
	c := Counts{Ran: p.ran.Load(), PlacedOut: p.placedOut.Load(), Retried: p.retried.Load(), ByOrigin: map[string]int64{}}
	for o := range numOrigins {
		if n := p.came[o].Load(); n > 0 {
			c.ByOrigin[o.String()] = n
		}
	}
	return c
}

// poolOf is what a call draws its resources from.
func (p *Pipeline) poolOf(sc *Scope) *Pool {
	if sc != nil && sc.Pool != nil {
		return sc.Pool
	}
	return p.Pool
}

// Submit starts s and returns the handle of its result, an object of s.Job, at once. Whatever
// the way in, this is where a task is admitted: a task that could never fit where it may run is
// refused here, with why.
func (p *Pipeline) Submit(ctx context.Context, s *Spec) (int64, error) {
	p.came[s.Origin].Add(1)
	if err := p.bound(s); err != nil {
		return 0, err
	}
	js, err := p.admit(s.Job)
	if err != nil {
		return 0, err
	}
	h, err := p.submit(ctx, js, s)
	if err != nil {
		p.done(js)
	}
	return h, err
}

// bound checks s's time limit against the node's cap and, for a task a call submitted, makes it
// end no later than its caller's deadline: children inherit the deadline.
func (p *Pipeline) bound(s *Spec) error {
	if s.TimeoutMs < 0 {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("timeout_ms %d is negative", s.TimeoutMs)}
	}
	lim := s.limits().Timeout
	if p.MaxTimeout > 0 && lim > p.MaxTimeout {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("a timeout of %v is over this node's maximum of %v", lim, p.MaxTimeout)}
	}
	if s.Parent == nil || s.Parent.Deadline.IsZero() || s.Detached {
		return nil
	}
	left := time.Until(s.Parent.Deadline)
	if left <= 0 {
		return &abi.Error{Kind: abi.KindLimit, Limit: abi.LimitDeadline, Message: "the calling task's deadline has passed"}
	}
	if lim <= 0 {
		lim = p.DefaultTimeout
	}
	if lim > left {
		s.TimeoutMs = max(left.Milliseconds(), 1)
	}
	return nil
}

// parentCtx is the context of the call that submitted s, which s's context follows (nil: none).
func (s *Spec) parentCtx() context.Context {
	if s.Parent == nil || s.Detached {
		return nil
	}
	return s.Parent.Ctx
}

// submit starts an admitted task: js counts it until it ends.
func (p *Pipeline) submit(ctx context.Context, js *jobState, s *Spec) (int64, error) {
	if s.Node != "" {
		return p.submitBundle(ctx, s, js)
	}
	fn, err := p.Backend.Function(ctx, s.Module, s.Function)
	if err != nil {
		return 0, err
	}
	d := Demand(s.Resources, fn.Hints)
	if s.Placement == Anywhere && s.Pool == nil && len(s.Grants.Dirs) == 0 && s.Grants.Env == nil && p.Backend.Peers() {
		if node := p.Backend.PlaceOrQueue(d, nil); node != "" {
			return p.submitPlaced(s, fn, d, node, js)
		}
	}
	return p.submitHere(s, fn, d, js)
}

// submitHere runs s on this node in the background.
func (p *Pipeline) submitHere(s *Spec, fn Fn, d scheduler.Resources, js *jobState) (int64, error) {
	sc := &Scope{Grants: s.Grants, Limits: s.limits(), Borrowed: s.Refs, Pool: s.Pool}
	if err := p.Objects.Retain(s.Job, s.Refs); err != nil {
		return 0, err
	}
	if err := p.poolOf(sc).Check(d); err != nil {
		p.Objects.ReleaseAll(s.Refs)
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("task %s: %v", s.Function, err)}
	}
	h, obj := p.Objects.Pending(s.Job)
	tctx, cancel := taskContext(js, s.parentCtx())
	obj.Cancel = func() { cancel(context.Canceled) }
	p.WG.Add(1)
	p.workers.run(func() {
		defer p.WG.Done()
		defer p.done(js)
		res, err := p.attempts(tctx, fn, s, sc, d, false)
		cancel(endCause(err))
		var out []byte
		if err == nil {
			out = res.Output
		} else {
			err = AsABIError(err)
		}
		p.Backend.EndScope(sc, out, obj, false)
		p.Objects.Complete(obj, out, err)
	})
	return h, nil
}

// attempts runs s here once its resources d are free (held already when acquired), retrying
// as s allows. It returns the last attempt's result and error as the runtime gave them.
func (p *Pipeline) attempts(ctx context.Context, fn Fn, s *Spec, sc *Scope, d scheduler.Resources, acquired bool) (*host.Result, error) {
	pool := p.poolOf(sc)
	if !acquired {
		if err := pool.AcquireFor(ctx, s.Job, d); err != nil {
			return nil, AsABIError(err)
		}
	}
	sc.Held = d
	defer func() { pool.Release(sc.Held) }()
	p.ran.Add(1)
	input, retries := s.input(), s.retries()
	for attempt := 0; ; attempt++ {
		// The tasks this attempt submits follow its context, and end by its deadline.
		actx, acancel := context.WithCancelCause(ctx)
		timeout := sc.Limits.Timeout
		if timeout <= 0 {
			timeout = p.DefaultTimeout
		}
		sc.Ctx, sc.Deadline = actx, time.Now().Add(timeout)
		res, err := p.Runtime.Call(actx, host.CallRequest{
			Module: fn.Module, Function: s.Function, Input: input, Job: s.Job,
			Grants: sc.Grants, Limits: sc.Limits, Context: sc,
		})
		acancel(endCause(err))
		if err == nil {
			return res, nil
		}
		if attempt >= retries || ctx.Err() != nil || !retryable(err, s.RetryGuest) {
			return res, err
		}
		// What the failed attempt made is not the next attempt's.
		p.Backend.ResetScope(sc)
	}
}

// endCause is what a call's context ends with: errReturned when it returned, else its error,
// which ends the tasks it submitted.
func endCause(err error) error {
	if err == nil {
		return errReturned
	}
	return err
}

// placed is s as a task to run on another node.
func (p *Pipeline) placed(s *Spec, fn Fn, d scheduler.Resources) Placed {
	timeoutMs := s.TimeoutMs
	if timeoutMs <= 0 && s.Limits.Timeout > 0 {
		timeoutMs = s.Limits.Timeout.Milliseconds() // a guest's task inherits its caller's deadline
	}
	return Placed{Job: s.Job, Digest: fn.Module.Digest, Function: s.Function, Args: s.Args, ArgsBytes: s.ArgsBytes,
		Grants: s.Grants.Capabilities, TimeoutMs: timeoutMs, Retries: s.retries(), RetryGuest: s.RetryGuest, Demand: d,
		Refs: slices.Clone(s.Refs)}
}

// submitPlaced runs s on node in the background; this node owns its result.
func (p *Pipeline) submitPlaced(s *Spec, fn Fn, d scheduler.Resources, node string, js *jobState) (int64, error) {
	t := p.placed(s, fn, d)
	p.placedOut.Add(1)
	return p.runElsewhere(&t, true, js, s.parentCtx(), func(ctx context.Context) (Outcome, error) { return p.ExecPlaced(ctx, node, t, nil) })
}

// submitBundle runs s in a placement group's bundle on another node (s.Node). Its result stays
// there; a bundle lost with its node is not rebuilt elsewhere (the group is broken), so it keeps
// no lineage.
func (p *Pipeline) submitBundle(ctx context.Context, s *Spec, js *jobState) (int64, error) {
	fn, err := p.Backend.Function(ctx, s.Module, s.Function)
	if err != nil {
		return 0, err
	}
	t := p.placed(s, fn, nil)
	t.Retries, t.Group, t.Bundle = 0, s.Group, s.Bundle
	return p.runElsewhere(&t, false, js, s.parentCtx(), func(ctx context.Context) (Outcome, error) {
		loc, err := p.Backend.RunOn(ctx, s.Node, &t)
		var ae *abi.Error
		if err != nil && !errors.As(err, &ae) {
			err = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("bundle %d of placement group %s: node %s failed: %v", s.Bundle, s.Group, s.Node, err)}
		}
		return Outcome{Loc: loc}, err
	})
}

// runElsewhere holds t's arguments, makes its result a pending object of t.Job and completes it
// in the background from run: with the value run brought here, or with where the value lives.
// With lineage, a value left elsewhere keeps holding the arguments and records t, so that it
// can be rebuilt when its holder is lost. js counts the task until it ends; its context follows
// parent (nil: none) and the job, and cancelling it cancels the run there.
func (p *Pipeline) runElsewhere(t *Placed, lineage bool, js *jobState, parent context.Context, run func(context.Context) (Outcome, error)) (int64, error) {
	if err := p.Objects.Retain(t.Job, t.Refs); err != nil {
		return 0, err
	}
	h, obj := p.Objects.Pending(t.Job)
	tctx, cancel := taskContext(js, parent)
	obj.Cancel = func() { cancel(context.Canceled) }
	p.WG.Add(1)
	go func() {
		defer p.WG.Done()
		defer p.done(js)
		out, err := run(tctx)
		cancel(endCause(err))
		switch {
		case err != nil:
			p.Objects.ReleaseAll(t.Refs)
			p.Objects.Complete(obj, nil, err)
		case out.Loc != nil && lineage:
			p.Objects.Adopt(obj, t.Refs)
			p.Objects.CompleteRemote(obj, out.Loc, t)
		case out.Loc != nil:
			p.Objects.ReleaseAll(t.Refs)
			p.Objects.CompleteRemote(obj, out.Loc, nil)
		default:
			p.Objects.ReleaseAll(t.Refs)
			p.Objects.Complete(obj, out.Data, nil)
		}
	}()
	return h, nil
}

// Outcome is what a placed task made: its value here (it ran here after all) or where it lives.
type Outcome struct {
	Data []byte
	Loc  *objects.Location
}

// ExecPlaced runs t on node first ("": here) and, when a node fails or dies under it, on
// another, until t.Retries are spent. Its error is an *abi.Error.
func (p *Pipeline) ExecPlaced(ctx context.Context, first string, t Placed, exclude map[string]bool) (Outcome, error) {
	if exclude == nil {
		exclude = map[string]bool{}
	}
	node := first
	var last error
	for attempt := 0; attempt <= t.Retries; attempt++ {
		if attempt > 0 {
			p.retried.Add(1)
			node = p.Backend.PlaceOrQueue(t.Demand, exclude)
		}
		var out Outcome
		var err error
		if node == "" {
			out.Data, err = p.runPlacedHere(ctx, t)
		} else {
			out.Loc, err = p.Backend.RunOn(ctx, node, &t)
		}
		var ae *abi.Error
		switch {
		case err == nil:
			return out, nil
		case errors.As(err, &ae):
			return out, ae // the task's own outcome
		case ctx.Err() != nil:
			return out, &abi.Error{Kind: abi.KindCancelled, Message: "task cancelled"}
		}
		last = err
		if node != "" {
			exclude[node] = true
		}
		p.Log.Warn("placed task failed on its node; running it again elsewhere", "node", node, "function", t.Function, "err", err)
	}
	return Outcome{}, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("task %s: every node it was placed on failed (last: %v)", t.Function, last)}
}

// runPlacedHere runs a placed task on this node after all (no other node has room).
func (p *Pipeline) runPlacedHere(ctx context.Context, t Placed) ([]byte, error) {
	retries := t.Retries
	js, err := p.enter(t.Job) // admitted already, where it came in
	if err != nil {
		return nil, err
	}
	h, err := p.submit(ctx, js, &Spec{Placement: Here, Job: t.Job, Module: t.Digest, Function: t.Function,
		Args: t.Args, ArgsBytes: t.ArgsBytes, Refs: t.Refs, TimeoutMs: t.TimeoutMs, MaxRetries: &retries, RetryGuest: t.RetryGuest,
		Grants: host.Grants{Capabilities: t.Grants}})
	if err != nil {
		p.done(js)
		return nil, err
	}
	defer p.Objects.Release(t.Job, h)
	return p.Objects.Get(ctx, t.Job, h, -1)
}

// Prepared is a task resolved and checked once, to run many times on different inputs: a
// workflow step and the elements of its map, a compiled workflow's step.
type Prepared struct {
	p       *Pipeline
	s       Spec
	fn      Fn
	d       scheduler.Resources
	errHere error // why it can never fit here; nil when it can
}

// Prepare resolves s's function and checks its demand: a Here task that can never fit here,
// or an Anywhere task that can never fit here on a node with no peers, is refused.
func (p *Pipeline) Prepare(ctx context.Context, s Spec) (*Prepared, error) {
	fn, err := p.Backend.Function(ctx, s.Module, s.Function)
	if err != nil {
		return nil, err
	}
	d := Demand(s.Resources, fn.Hints)
	errHere := p.Pool.Check(d)
	if errHere != nil && (s.Placement == Here || !p.Backend.Peers()) {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: errHere.Error()}
	}
	return &Prepared{p: p, s: s, fn: fn, d: d, errHere: errHere}, nil
}

// Prewarm readies n instances of the prepared task's module in its job's pool.
func (t *Prepared) Prewarm(ctx context.Context, n int) error {
	return t.p.Runtime.Prewarm(ctx, host.CallRequest{Module: t.fn.Module, Job: t.s.Job, Grants: t.s.Grants, Limits: t.s.limits()}, n)
}

// Run runs the prepared task on input and returns its output; the objects it made end with it.
// An Anywhere task runs here when it fits now, else on a node with room (its output comes
// back), and when no node has room it waits for room here or, if it can never fit here, for
// room elsewhere.
func (t *Prepared) Run(ctx context.Context, input []byte) ([]byte, error) {
	p, s := t.p, t.s
	p.came[s.Origin].Add(1)
	js, err := p.enter(s.Job) // a workflow's steps are bounded by the workflow, not the quota
	if err != nil {
		return nil, err
	}
	defer p.done(js)
	acquired := false
	for s.Placement == Anywhere && p.Backend.Peers() {
		if acquired = t.errHere == nil && p.Pool.TryAcquire(t.d); acquired {
			break // room here: it runs here
		}
		if node := p.Backend.Place(t.d, nil); node != "" {
			return t.runOn(ctx, node, input)
		}
		if t.errHere == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, &abi.Error{Kind: abi.KindCancelled, Message: "the workflow was cancelled"}
		case <-time.After(p.Backend.Beat()):
		}
	}
	if t.errHere != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: t.errHere.Error()}
	}
	s.Args, s.ArgsBytes = nil, input
	sc := &Scope{Grants: s.Grants, Limits: s.limits()}
	res, err := p.attempts(ctx, t.fn, &s, sc, t.d, acquired)
	var out []byte
	if err == nil {
		out = res.Output
	} else {
		err = AsABIError(err)
	}
	p.Backend.EndScope(sc, nil, nil, false) // a step's objects do not outlive it
	return out, err
}

// runOn runs the prepared task on node (placed like a task, run elsewhere again when its node
// fails) and brings its output here.
func (t *Prepared) runOn(ctx context.Context, node string, input []byte) ([]byte, error) {
	p, s := t.p, t.s
	p.placedOut.Add(1)
	pl := p.placed(&s, t.fn, t.d)
	if json.Valid(input) {
		pl.Args = input
	} else {
		pl.ArgsBytes = input
	}
	out, err := p.ExecPlaced(ctx, node, pl, nil)
	if err != nil || out.Loc == nil {
		return out.Data, err
	}
	h, obj := p.Objects.Pending(s.Job)
	p.Objects.CompleteRemote(obj, out.Loc, &pl)
	defer p.Objects.Release(s.Job, h)
	return p.Objects.Get(ctx, s.Job, h, -1)
}

// Call runs s here, once, waiting for room, and returns the runtime's result (with the call's
// log) and error as they are. The objects its output refers to stay with the caller.
func (p *Pipeline) Call(ctx context.Context, s *Spec) (*host.Result, error) {
	p.came[s.Origin].Add(1)
	if err := p.bound(s); err != nil {
		return nil, err
	}
	js, err := p.admit(s.Job)
	if err != nil {
		return nil, err
	}
	defer p.done(js)
	ctx, cancel := taskContext(js, ctx) // ends with the caller, or with the job
	defer cancel(errReturned)
	fn, err := p.Backend.Function(ctx, s.Module, s.Function)
	if err != nil {
		return nil, err
	}
	d := Demand(s.Resources, fn.Hints)
	if err := p.Pool.Check(d); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("%s: %v", s.Function, err)}
	}
	none := 0
	one := *s
	one.MaxRetries = &none
	sc := &Scope{Grants: s.Grants, Limits: s.limits()}
	res, err := p.attempts(ctx, fn, &one, sc, d, false)
	var out []byte
	if err == nil {
		out = res.Output
	}
	p.Backend.EndScope(sc, out, nil, true)
	return res, err
}
