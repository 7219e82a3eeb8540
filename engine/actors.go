package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// actor is a live actor: a dedicated instance holding its state, a mailbox of calls run one at a
// time in the order they arrived, and a goroutine that runs them. Calls are at-most-once: a call
// whose instance died is failed, not retried; the actor itself is restarted up to maxRestarts
// times (-1: without limit), with the state it saved after its last successful call when its type
// has __save and __load methods, else with its constructor run again.
//
// An actor created by a call without Detached is owned by that call and killed when it ends; a
// detached actor, or one created from outside WASM, lives until it is killed.
type actor struct {
	id          int64
	job, typ    string
	key         string // "namespace/name" of a named actor
	hm          *host.Module
	args        []byte
	res         scheduler.Resources // held while the actor lives
	cc          *callContext
	maxRestarts int
	// canSave: the type has __save and __load methods and the actor may restart, so its state is
	// saved after every call and loaded into a restarted instance instead of running the
	// constructor again.
	canSave bool
	saved   []byte

	// pl is set when the actor's instance runs on another node (actors_remote.go): this node
	// owns it and forwards its calls. held is set when another node placed the actor here.
	pl   *placed
	held *heldFor

	mu       sync.Mutex
	queue    []*actorCall
	signal   chan struct{} // one token when the queue or killed changed
	killed   bool
	dead     error // why the actor stopped for good
	restarts int
}

type actorCall struct {
	method   string
	input    []byte
	obj      *objects.Object
	borrowed []int64 // objects passed to the call, held until it ends
}

// createActor checks the actor type, registers the actor (and its name) and starts it in the
// background; its constructor runs before its first call. An actor whose resources this node
// lacks now and another live node has runs there, owned by this node (actors_remote.go).
func (e *Engine) createActor(ctx context.Context, job, module string, req *abi.ActorCreateRequest, cc *callContext) (int64, error) {
	return e.newActor(ctx, job, module, req, cc, actorOpts{})
}

// actorOpts says how an actor is created.
type actorOpts struct {
	here bool     // run it here: another node placed it, or its owner restarts it here
	held *heldFor // the owner of an actor placed here
}

func (e *Engine) newActor(ctx context.Context, job, module string, req *abi.ActorCreateRequest, cc *callContext, o actorOpts) (int64, error) {
	if req.MaxConcurrency > 1 {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf(
			"max_concurrency %d: an actor's state lives in one single-threaded WebAssembly instance, so its calls run one at a time; for parallel work use several actors or tasks", req.MaxConcurrency)}
	}
	fn, err := e.function(ctx, module, req.Actor, abi.KindActor)
	if err != nil {
		return 0, err
	}
	// An actor holds the resources it asks for as long as it lives; by default none, so that
	// idle actors do not starve tasks.
	d := scheduler.FromABI(req.Resources)
	var pl *placed
	if !o.here {
		var err error
		if pl, err = e.placeActor(module, req, cc, d); err != nil {
			return 0, err
		}
	}
	if pl == nil {
		if err := e.adm.Check(d); err != nil {
			return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("actor %s: %v", req.Actor, err)}
		}
	} else {
		d = nil // its instance holds the resources where it runs
	}
	a := &actor{
		id: e.objects.NewHandle(), job: job, typ: req.Actor, hm: fn.Module, args: []byte(req.Args), res: d,
		cc: &callContext{Grants: cc.Grants, Limits: cc.Limits}, maxRestarts: req.MaxRestarts, signal: make(chan struct{}, 1),
		pl: pl, held: o.held,
	}
	m := fn.Module.Info.Manifest
	a.canSave = pl == nil && req.MaxRestarts != 0 && m.Index(req.Actor+"."+abi.SaveMethod) >= 0 && m.Index(req.Actor+"."+abi.LoadMethod) >= 0
	e.amu.Lock()
	if e.closing {
		e.amu.Unlock()
		return 0, &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	}
	if req.Name != "" {
		ns := req.Namespace
		if ns == "" {
			ns = job
		}
		a.key = ns + "/" + req.Name
		if _, taken := e.named[a.key]; taken {
			e.amu.Unlock()
			return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q", req.Name, ns)}
		}
		e.named[a.key] = a.id
	}
	e.amu.Unlock()
	if a.key != "" {
		// The name is this node's; now make it the cluster's.
		if err := e.claimName(ctx, a); err != nil {
			e.amu.Lock()
			if e.named[a.key] == a.id {
				delete(e.named, a.key)
			}
			e.amu.Unlock()
			return 0, err
		}
	}
	e.amu.Lock()
	if e.closing {
		e.amu.Unlock()
		e.releaseName(a)
		return 0, &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	}
	e.actors[a.id] = a
	e.amu.Unlock()
	e.wg.Add(1)
	switch {
	case pl != nil:
		go e.runPlaced(a)
	default:
		if o.held != nil && o.held.owner != e.nodeID() {
			e.startReaper()
		}
		go e.runActor(a)
	}
	return a.id, nil
}

func (e *Engine) actor(job string, id int64) (*actor, error) {
	e.amu.Lock()
	a := e.actors[id]
	gone, ended := e.ended[id]
	e.amu.Unlock()
	switch {
	case a == nil && ended && gone.job == job:
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d has ended: %s", id, gone.reason)}
	case a == nil || a.job != job:
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor %d in job %q", id, job)}
	}
	return a, nil
}

// maxEnded bounds how many ended actors the engine remembers, to say why a call to one fails.
const maxEnded = 10_000

type endedActor struct {
	job, reason string
}

// forget removes an ended actor, remembering why it ended. The caller holds e.amu.
func (e *Engine) forgetLocked(a *actor, reason string) {
	delete(e.actors, a.id)
	if a.key != "" && e.named[a.key] == a.id {
		delete(e.named, a.key)
		e.releaseName(a)
	}
	e.ended[a.id] = endedActor{job: a.job, reason: reason}
	e.endedOrder = append(e.endedOrder, a.id)
	if len(e.endedOrder) > maxEnded {
		delete(e.ended, e.endedOrder[0])
		e.endedOrder = e.endedOrder[1:]
	}
}

// callActor queues a method call and returns the handle of its result.
func (e *Engine) callActor(job string, id int64, method string, input []byte) (int64, error) {
	return e.callActorBorrowing(job, id, method, input, nil)
}

// callActorBorrowing is callActor for a call that holds the objects borrowed (already retained)
// until it ends.
func (e *Engine) callActorBorrowing(job string, id int64, method string, input []byte, borrowed []int64) (int64, error) {
	a, err := e.actor(job, id)
	if err != nil {
		return 0, err
	}
	full := a.typ + "." + method
	if i := a.hm.Info.Manifest.Index(full); i < 0 || a.hm.Info.Manifest.Functions[i].Kind != abi.KindMethod {
		return 0, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor type %s has no method %q", a.typ, method)}
	}
	h, obj := e.objects.Pending(job)
	a.mu.Lock()
	switch {
	case a.dead != nil:
		a.mu.Unlock()
		e.objects.Complete(obj, nil, a.dead)
		e.objects.ReleaseAll(borrowed)
		return h, nil
	case a.killed:
		a.mu.Unlock()
		e.objects.Complete(obj, nil, &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("actor %d was killed", id)})
		e.objects.ReleaseAll(borrowed)
		return h, nil
	}
	a.queue = append(a.queue, &actorCall{method: full, input: input, obj: obj, borrowed: borrowed})
	a.mu.Unlock()
	a.wake()
	return h, nil
}

func (a *actor) wake() {
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

// killActor stops an actor for good; its queued calls fail as cancelled.
func (e *Engine) killActor(job string, id int64) error {
	a, err := e.actor(job, id)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.killed = true
	a.mu.Unlock()
	a.wake()
	return nil
}

// failQueued marks the actor stopped (killed, unless it died of something else) and fails the
// calls still queued with the reason.
func (e *Engine) failQueued(a *actor) {
	a.mu.Lock()
	queued := a.queue
	a.queue = nil
	if a.dead == nil {
		a.dead = &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("actor %d was killed", a.id)}
	}
	reason := a.dead
	a.mu.Unlock()
	for _, c := range queued {
		e.objects.Complete(c.obj, nil, reason)
		e.objects.ReleaseAll(c.borrowed)
	}
}

// killActors kills the actors of ids that still live.
func (e *Engine) killActors(ids []int64) {
	for _, id := range ids {
		e.amu.Lock()
		a := e.actors[id]
		e.amu.Unlock()
		if a != nil {
			a.mu.Lock()
			a.killed = true
			a.mu.Unlock()
			a.wake()
		}
	}
}

// runActor is the actor's goroutine: start the instance, then run calls until killed, dead or
// the engine closes.
func (e *Engine) runActor(a *actor) {
	defer e.wg.Done()
	recorded := false
	defer func() {
		a.mu.Lock()
		reason, killed := a.dead.Error(), a.killed
		a.mu.Unlock()
		e.amu.Lock()
		e.forgetLocked(a, reason)
		e.amu.Unlock()
		if recorded {
			e.endRecord(a, killed)
		}
	}()
	if err := e.adm.Acquire(e.ctx, a.res); err != nil {
		a.mu.Lock()
		a.dead = &abi.Error{Kind: abi.KindCancelled, Message: "the engine closed before the actor could start"}
		a.mu.Unlock()
		e.failQueued(a)
		return
	}
	defer e.adm.Release(a.res)
	var inst *host.Instance
	defer func() {
		e.endScope(a.cc, nil, nil, false)
		if inst != nil {
			inst.Close(context.Background())
		}
		e.failQueued(a)
	}()
	start := func() error {
		in, err := e.rt.NewInstance(e.ctx, host.InstanceSpec{Module: a.hm, Job: a.job, Grants: a.cc.Grants, Limits: a.cc.Limits, Context: a.cc})
		if err != nil {
			return err
		}
		if a.saved != nil {
			_, err = in.Call(e.ctx, a.typ+"."+abi.LoadMethod, a.saved)
		} else {
			_, err = in.Call(e.ctx, a.typ, a.args)
		}
		if err != nil {
			in.Close(context.Background())
			return err
		}
		inst = in
		return nil
	}
	if err := start(); err != nil {
		a.mu.Lock()
		a.dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %s could not start: %v", a.typ, err)}
		a.mu.Unlock()
		return
	}
	recorded = true
	e.putRecord(a, ActorAlive, "")
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.killed {
			a.mu.Unlock()
			select {
			case <-a.signal:
			case <-e.ctx.Done():
				return
			}
			a.mu.Lock()
		}
		if a.killed {
			a.mu.Unlock()
			return
		}
		c := a.queue[0]
		a.queue = a.queue[1:]
		a.mu.Unlock()

		res, err := inst.Call(e.ctx, c.method, c.input)
		e.objects.ReleaseAll(c.borrowed)
		if err != nil {
			e.objects.Complete(c.obj, nil, asABIError(err))
		} else {
			// What the call made and returned passes to its result; what it made and kept
			// stays with the actor (its state may hold it) until the actor ends.
			kept, _ := objects.RefsIn(res.Output, a.cc.Owned)
			e.objects.Adopt(c.obj, kept)
			a.cc.Owned = without(a.cc.Owned, kept)
			e.objects.Complete(c.obj, res.Output, nil)
			if a.canSave {
				if st, err := inst.Call(e.ctx, a.typ+"."+abi.SaveMethod, nil); err == nil {
					a.saved = st.Output
				} else {
					e.logf("actor %d: saving its state failed: %v", a.id, err)
				}
			}
		}
		if inst.Err() == nil {
			continue
		}
		// The instance died under this call: restart the actor if it may.
		inst.Close(context.Background())
		inst = nil
		a.mu.Lock()
		may := a.maxRestarts < 0 || a.restarts < a.maxRestarts
		if may {
			a.restarts++
		} else {
			a.dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d died (%v) and has no restarts left", a.id, err)}
		}
		a.mu.Unlock()
		if !may {
			return
		}
		if serr := start(); serr != nil {
			a.mu.Lock()
			a.dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d could not restart: %v", a.id, serr)}
			a.mu.Unlock()
			return
		}
		e.putRecord(a, ActorAlive, "")
	}
}

// without returns hs less the handles in drop.
func without(hs, drop []int64) []int64 {
	if len(drop) == 0 {
		return hs
	}
	out := hs[:0]
	for _, h := range hs {
		if !slices.Contains(drop, h) {
			out = append(out, h)
		}
	}
	return out
}
