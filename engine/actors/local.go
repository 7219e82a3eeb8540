package actors

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
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
	cc          *tasks.Scope
	maxRestarts int
	// canSave: the type has __save and __load methods and the actor may restart, so its state is
	// saved after every call and loaded into a restarted instance instead of running the
	// constructor again.
	canSave bool
	saved   []byte
	// durable: the state is stored in the replicated state after every checkpointEvery-th call
	// (durable.go), and a call is acknowledged only once it is.
	durable         bool
	checkpointEvery int
	superseded      bool // another instance took the durable state over: this one ends, the actor lives on

	// pl is set when the actor's instance runs on another node (placed.go): this node
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

// Create checks the actor type, registers the actor (and its name) and starts it in the
// background; its constructor runs before its first call. An actor whose resources this node
// lacks now and another live node has runs there, owned by this node (placed.go). The actor
// runs with the grants and limits of cc, the creating call's scope; the caller owns the returned
// handle (a call's scope lists its owned actors in Scope.Actors, killed when it ends).
func (m *Manager) Create(ctx context.Context, job, module string, req *abi.ActorCreateRequest, cc *tasks.Scope) (int64, error) {
	return m.newActor(ctx, job, module, req, cc, actorOpts{})
}

// actorOpts says how an actor is created.
type actorOpts struct {
	here bool     // run it here: another node placed it, or its owner restarts it here
	held *heldFor // the owner of an actor placed here
}

func (m *Manager) newActor(ctx context.Context, job, module string, req *abi.ActorCreateRequest, cc *tasks.Scope, o actorOpts) (int64, error) {
	if req.MaxConcurrency > 1 {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf(
			"max_concurrency %d: an actor's state lives in one single-threaded WebAssembly instance, so its calls run one at a time; for parallel work use several actors or tasks", req.MaxConcurrency)}
	}
	if req.CheckpointEvery < 0 {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("checkpoint_every %d: it must be 0 or more", req.CheckpointEvery)}
	}
	fn, err := m.function(ctx, module, req.Actor, abi.KindActor)
	if err != nil {
		return 0, err
	}
	mf := fn.Module.Info.Manifest
	saveLoad := mf.Index(req.Actor+"."+abi.SaveMethod) >= 0 && mf.Index(req.Actor+"."+abi.LoadMethod) >= 0
	if req.IsDurable() {
		if !saveLoad {
			return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf(
				"actor %s: a durable actor's type needs the methods %s.%s and %s.%s, through which its state is stored and loaded back", req.Actor, req.Actor, abi.SaveMethod, req.Actor, abi.LoadMethod)}
		}
		if !o.here && req.MaxRestarts == 0 {
			// Durable asks to survive its node: it restarts without limit unless told otherwise.
			r := *req
			r.MaxRestarts = -1
			req = &r
		}
	}
	// An actor holds the resources it asks for as long as it lives; by default none, so that
	// idle actors do not starve tasks.
	d := scheduler.FromABI(req.Resources)
	var pl *placed
	if !o.here {
		var err error
		if pl, err = m.placeActor(module, req, cc, d); err != nil {
			return 0, err
		}
	}
	if pl == nil {
		if err := m.pool.Check(d); err != nil {
			return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("actor %s: %v", req.Actor, err)}
		}
	} else {
		d = nil // its instance holds the resources where it runs
	}
	a := &actor{
		id: m.objects.NewHandle(), job: job, typ: req.Actor, hm: fn.Module, args: []byte(req.Args), res: d,
		cc: &tasks.Scope{Grants: cc.Grants, Limits: cc.Limits}, maxRestarts: req.MaxRestarts, signal: make(chan struct{}, 1),
		pl: pl, held: o.held, durable: req.IsDurable(), checkpointEvery: req.CheckpointEvery,
	}
	a.canSave = pl == nil && req.MaxRestarts != 0 && saveLoad && !a.durable
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return 0, &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	}
	if err := m.quotaLocked(job); err != nil {
		m.mu.Unlock()
		return 0, err
	}
	if req.Name != "" {
		ns := req.Namespace
		if ns == "" {
			ns = job
		}
		a.key = ns + "/" + req.Name
		if _, taken := m.named[a.key]; taken {
			m.mu.Unlock()
			return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q", req.Name, ns)}
		}
		m.named[a.key] = a.id
	}
	m.mu.Unlock()
	if a.key != "" {
		// The name is this node's; now make it the cluster's.
		if err := m.ledger.claimName(ctx, a); err != nil {
			m.mu.Lock()
			if m.named[a.key] == a.id {
				delete(m.named, a.key)
			}
			m.mu.Unlock()
			return 0, err
		}
	}
	m.mu.Lock()
	err = nil
	if m.closing {
		err = &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	} else {
		err = m.quotaLocked(job) // checked again: others may have come in meanwhile
	}
	if err != nil {
		if a.key != "" && m.named[a.key] == a.id {
			delete(m.named, a.key)
			m.ledger.releaseName(a)
		}
		m.mu.Unlock()
		return 0, err
	}
	m.actors[a.id] = a
	m.perJob[job]++
	m.mu.Unlock()
	m.wg.Add(1)
	switch {
	case pl != nil:
		go m.runPlaced(a)
	default:
		if o.held != nil && o.held.owner != m.nodeID {
			m.startReaper()
		}
		go m.runActor(a)
	}
	return a.id, nil
}

func (m *Manager) actor(job string, id int64) (*actor, error) {
	m.mu.Lock()
	a := m.actors[id]
	gone, ended := m.ended[id]
	m.mu.Unlock()
	switch {
	case a == nil && ended && gone.job == job:
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d has ended: %s", id, gone.reason)}
	case a == nil || a.job != job:
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor %d in job %q", id, job)}
	}
	return a, nil
}

// maxEnded bounds how many ended actors the manager remembers, to say why a call to one fails.
const maxEnded = 10_000

type endedActor struct {
	job, reason string
}

// forgetLocked removes an ended actor, remembering why it ended. The caller holds m.mu.
func (m *Manager) forgetLocked(a *actor, reason string) {
	if m.actors[a.id] == a && counted(a) {
		if m.perJob[a.job]--; m.perJob[a.job] <= 0 {
			delete(m.perJob, a.job)
		}
	}
	delete(m.actors, a.id)
	if a.key != "" && m.named[a.key] == a.id {
		delete(m.named, a.key)
		m.ledger.releaseName(a)
	}
	m.ended[a.id] = endedActor{job: a.job, reason: reason}
	m.endedOrder = append(m.endedOrder, a.id)
	if len(m.endedOrder) > maxEnded {
		delete(m.ended, m.endedOrder[0])
		m.endedOrder = m.endedOrder[1:]
	}
}

// Call queues a method call and returns the handle of its result.
func (m *Manager) Call(job string, id int64, method string, input []byte) (int64, error) {
	return m.CallBorrowing(job, id, method, input, nil)
}

// CallBorrowing is Call for a call that holds the objects borrowed (already retained)
// until it ends.
func (m *Manager) CallBorrowing(job string, id int64, method string, input []byte, borrowed []int64) (int64, error) {
	a, err := m.actor(job, id)
	if err != nil {
		return 0, err
	}
	full := a.typ + "." + method
	if i := a.hm.Info.Manifest.Index(full); i < 0 || a.hm.Info.Manifest.Functions[i].Kind != abi.KindMethod {
		return 0, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor type %s has no method %q", a.typ, method)}
	}
	h, obj := m.objects.Pending(job)
	a.mu.Lock()
	switch {
	case a.dead != nil:
		a.mu.Unlock()
		m.objects.Complete(obj, nil, a.dead)
		m.objects.ReleaseAll(borrowed)
		return h, nil
	case a.killed:
		a.mu.Unlock()
		m.objects.Complete(obj, nil, &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("actor %d was killed", id)})
		m.objects.ReleaseAll(borrowed)
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

// Kill stops an actor for good; its queued calls fail as cancelled.
func (m *Manager) Kill(job string, id int64) error {
	a, err := m.actor(job, id)
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
func (m *Manager) failQueued(a *actor) {
	a.mu.Lock()
	queued := a.queue
	a.queue = nil
	if a.dead == nil {
		a.dead = &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("actor %d was killed", a.id)}
	}
	reason := a.dead
	a.mu.Unlock()
	for _, c := range queued {
		m.objects.Complete(c.obj, nil, reason)
		m.objects.ReleaseAll(c.borrowed)
	}
}

// KillAll kills the actors of ids that still live.
func (m *Manager) KillAll(ids []int64) {
	for _, id := range ids {
		m.mu.Lock()
		a := m.actors[id]
		m.mu.Unlock()
		if a != nil {
			a.mu.Lock()
			a.killed = true
			a.mu.Unlock()
			a.wake()
		}
	}
}

// runActor is the actor's goroutine: start the instance, then run calls until killed, dead or
// the node closes.
func (m *Manager) runActor(a *actor) {
	defer m.wg.Done()
	recorded := false
	defer func() {
		a.mu.Lock()
		reason, killed, superseded := a.dead.Error(), a.killed, a.superseded
		a.mu.Unlock()
		m.mu.Lock()
		m.forgetLocked(a, reason)
		m.mu.Unlock()
		if recorded {
			m.ledger.endRecord(a, killed)
		}
		if a.durable && a.held == nil && !superseded {
			m.dropState(a.id) // the owner's own actor has ended for good
		}
	}()
	if err := m.pool.Acquire(m.ctx, a.res); err != nil {
		a.mu.Lock()
		a.dead = &abi.Error{Kind: abi.KindCancelled, Message: "the engine closed before the actor could start"}
		a.mu.Unlock()
		m.failQueued(a)
		return
	}
	defer m.pool.Release(a.res)
	var inst *host.Instance
	defer func() {
		m.endScope(a.cc)
		if inst != nil {
			inst.Close(context.Background())
		}
		m.failQueued(a)
	}()
	var dur *durable
	if a.durable {
		dur = m.newDurable(a)
	}
	start := func() error {
		in, err := m.runtime.NewInstance(m.ctx, host.InstanceSpec{Module: a.hm, Job: a.job, Grants: a.cc.Grants, Limits: a.cc.Limits, Context: a.cc})
		if err != nil {
			return err
		}
		if dur != nil && a.saved == nil {
			// The first instance here: load the state an earlier instance stored, or run the
			// constructor and store its state, and take the lease either way.
			if err := m.startDurable(a, in, dur); err != nil {
				in.Close(context.Background())
				return err
			}
			inst = in
			return nil
		}
		if a.saved != nil {
			_, err = in.Call(m.ctx, a.typ+"."+abi.LoadMethod, a.saved)
		} else {
			_, err = in.Call(m.ctx, a.typ, a.args)
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
	m.ledger.putRecord(a, Alive, "")
	// answer completes call c with out: what the call made and returned passes to its result;
	// what it made and kept stays with the actor (its state may hold it) until the actor ends.
	answer := func(c *actorCall, out []byte) {
		kept, _ := objects.RefsIn(out, a.cc.Owned)
		m.objects.Adopt(c.obj, kept)
		a.cc.Owned = without(a.cc.Owned, kept)
		m.objects.Complete(c.obj, out, nil)
	}
	// group holds a durable actor's calls that ran since its state was last stored; they are
	// answered once it is. It is empty whenever the mailbox is.
	var group []doneCall
	failGroup := func(e *abi.Error) {
		for _, g := range group {
			m.objects.Complete(g.c.obj, nil, e)
		}
		group = nil
	}
	defer func() {
		failGroup(&abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("actor %d ended before the state after the call was stored", a.id)})
	}()
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.killed {
			a.mu.Unlock()
			select {
			case <-a.signal:
			case <-m.ctx.Done():
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

		res, err := inst.Call(m.ctx, c.method, c.input)
		m.objects.ReleaseAll(c.borrowed)
		switch {
		case err != nil:
			m.objects.Complete(c.obj, nil, tasks.AsABIError(err))
		case dur != nil && dur.every == 1:
			// Answered once the state after it is stored: with the calls waiting behind it, by
			// one store after them (group commit).
			group = append(group, doneCall{c, res.Output})
		case dur != nil:
			// checkpoint_every N: the state stored after every N-th call, before it is answered;
			// the calls between answered at once.
			if dur.due() {
				if serr, fenced, _ := m.storeState(a, inst, dur); fenced {
					m.objects.Complete(c.obj, nil, serr)
					a.mu.Lock()
					a.dead, a.superseded = serr, true
					a.mu.Unlock()
					return
				}
			}
			answer(c, res.Output)
		default:
			answer(c, res.Output)
			if a.canSave {
				if st, err := inst.Call(m.ctx, a.typ+"."+abi.SaveMethod, nil); err == nil {
					a.saved = st.Output
				} else {
					m.log.Warn(fmt.Sprintf("actor %d: saving its state failed: %v", a.id, err))
				}
			}
		}
		var serr *abi.Error
		restart := false
		if len(group) > 0 {
			a.mu.Lock()
			waiting := len(a.queue) > 0 && !a.killed
			a.mu.Unlock()
			switch {
			case inst.Err() != nil:
				failGroup(&abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d: the call ran, but the instance died before the state after it was stored (%v)", a.id, err)})
			case !waiting || len(group) >= maxGroup:
				var fenced bool
				serr, fenced, restart = m.storeState(a, inst, dur)
				if fenced {
					failGroup(serr)
					a.mu.Lock()
					a.dead, a.superseded = serr, true
					a.mu.Unlock()
					return
				}
				if serr != nil {
					failGroup(serr)
				} else {
					for _, g := range group {
						answer(g.c, g.out)
					}
					group = nil
				}
			}
		}
		if inst.Err() == nil && !restart {
			continue
		}
		if err == nil && serr != nil {
			err = serr
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
		m.ledger.putRecord(a, Alive, "")
	}
}

// doneCall is a durable actor's call that ran, waiting for the state after it to be stored.
type doneCall struct {
	c   *actorCall
	out []byte
}

// maxGroup caps the calls of a durable actor one store answers.
const maxGroup = 256

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
