package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Actors across nodes, in the ownership style of placed tasks (placement.go): the node that
// accepted an actor's creation owns it, and the handle its caller holds is the owner's. When the
// actor asks for resources this node lacks now and another live node has, the owner creates it
// there (a wire.PlacedActor on the peer routes, so it is not placed again) and keeps a proxy: the
// proxy's mailbox forwards the calls one at a time, in the order they arrived, and each call's
// result becomes an object on the owner, fetched back from the holding node.
//
// When the holding node is declared dead or stops answering, the calls forwarded to it fail
// (at-most-once, as on one node) and the owner creates the actor again on a node that fits, this
// one included, up to max_restarts; the calls still queued go to the new instance. The
// constructor runs again: state saved with __save/__load lives on the node that died and is lost
// with it. A holding node kills the actors placed on it whose owner is declared dead or no longer
// records them (the owner restarted, or moved the actor away).
//
// A named actor looked up on a node that does not own it gets a handle there of the same kind, a
// follower: its calls and kill are forwarded to the owner, which runs or forwards them in turn.
//
// Every actor is recorded through raft under actors/<owner>/<handle> (ActorRecord): where it
// runs, its restarts and its state. The records are written in batches by one writer per node,
// a moment after the change, so that a burst of actors costs a few commits, not one each.

// actorsPrefix holds the actor records, by owner node and handle.
const actorsPrefix = "actors/"

// Actor states in the records.
const (
	ActorAlive      = "ALIVE"
	ActorRestarting = "RESTARTING"
	ActorDead       = "DEAD"
)

// ActorRecord is what the replicated state says of one actor.
type ActorRecord struct {
	Owner  string `json:"owner"`  // the node that created it and holds its handle
	Handle int64  `json:"handle"` // its handle on the owner
	Boot   string `json:"boot"`   // the owner's run: handles start again after a restart
	Job    string `json:"job"`
	Type   string `json:"type"`
	Module string `json:"module"` // the module's digest
	// Name is "namespace/name" for a named actor.
	Name string `json:"name,omitempty"`
	// Node is the node its instance runs on, and Remote its handle there when that is not the
	// owner.
	Node     string `json:"node"`
	Remote   int64  `json:"remote,omitempty"`
	Restarts int    `json:"restarts"`
	State    string `json:"state"`
	// Reason says why a DEAD actor died.
	Reason string `json:"reason,omitempty"`
}

func actorRecordKey(owner string, handle int64) string {
	return actorsPrefix + owner + "/" + strconv.FormatInt(handle, 10)
}

// actorsRemote is a node's share of the actors across nodes: the batched record writer and the
// reaper of orphaned placed actors.
type actorsRemote struct {
	mu      sync.Mutex
	pending map[string][]byte // key -> record; nil deletes it
	// written are the keys whose last committed record is a set; inflight those being
	// committed. A record queued and ended before either is never written.
	written, inflight map[string]bool
	kick              chan struct{}
	writer            sync.Once
	reaper            sync.Once
	// follow holds the handle of each named actor of another node looked up here (guarded by
	// Engine.amu).
	follow map[string]*actor
}

// placed is the owner's side of an actor whose instance it placed on a node: what it takes to
// create it again, and where it runs now.
type placed struct {
	digest string
	req    abi.ActorCreateRequest // without its name: the owner keeps the name
	grants []abi.Capability
	demand scheduler.Resources

	// follows marks a handle through which this node calls a named actor that another node
	// owns (names.go): it forwards calls and kills to the owner, and never creates an instance.
	follows bool
	boot    string // the owner's run, for a follower

	// Set by the actor's goroutine, under the actor's mu.
	node   string // "" : this node runs the instance, as actor remote
	remote int64
	gen    int // counts the instances
	lost   int // the latest instance whose node failed
}

// heldFor marks an actor placed on this node by its owner.
type heldFor struct {
	owner, boot string
	handle      int64
	since       time.Time
}

// placeable says whether work with these grants may run on another node: directory and
// environment grants name this node's paths and values.
func placeable(cc *callContext) bool {
	return len(cc.Grants.Dirs) == 0 && cc.Grants.Env == nil
}

// actorNode picks the node for an actor with demand d, "" for this one: here when it fits now;
// else a live node with room now; else here when this node can ever hold it (it waits for
// room); else a live node that can ever hold it.
func (e *Engine) actorNode(d scheduler.Resources, exclude map[string]bool) (string, error) {
	self := e.nodeID()
	if !exclude[self] && e.adm.Available().Fits(d) {
		return "", nil
	}
	if e.cluster.Peers() {
		if n := e.cluster.Place(d, exclude); n != "" && n != self {
			return n, nil
		}
	}
	herr := e.adm.Check(d)
	if !exclude[self] && herr == nil {
		return "", nil
	}
	for _, v := range e.ClusterNodes() {
		if v.ID != self && !v.Dead && !exclude[v.ID] && v.API != "" && scheduler.Resources(v.Total).Fits(d) {
			return v.ID, nil
		}
	}
	if herr == nil {
		herr = fmt.Errorf("no live node can hold %s now", d)
	}
	return "", herr
}

// placeActor decides where a new actor runs: nil when here, else the proxy of an actor placed on
// another node.
func (e *Engine) placeActor(module string, req *abi.ActorCreateRequest, cc *callContext, d scheduler.Resources) (*placed, error) {
	if !placeable(cc) || e.adm.Available().Fits(d) {
		return nil, nil
	}
	node, err := e.actorNode(d, nil)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("actor %s: %v", req.Actor, err)}
	}
	if node == "" {
		return nil, nil
	}
	m, err := e.reg.Resolve(module)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	r := *req
	r.Module, r.Name, r.Namespace = m.Digest, "", ""
	return &placed{digest: m.Digest, req: r, grants: cc.Grants.Capabilities, demand: d, node: node}, nil
}

// createActorHere creates an actor that owner placed on this node: it runs here, once this node
// has applied the state up to index (the placing node's), so its module is known here.
func (e *Engine) createActorHere(ctx context.Context, job string, req *abi.ActorCreateRequest, grants host.Grants, index uint64, owner wire.ActorOwner) (int64, error) {
	if req.Module == "" {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "an actor created from outside a module must name its module"}
	}
	if err := owner.Check(); err != nil {
		return 0, err
	}
	held := &heldFor{owner: owner.Node, handle: owner.Handle, boot: owner.Boot, since: time.Now()}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.node.KV().WaitApplied(wctx, index); err != nil {
		return 0, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("this node is behind the one that placed the actor: %v", err)}
	}
	return e.newActor(ctx, jobOr(job), req.Module, req, &callContext{Grants: grants}, actorOpts{here: true, held: held})
}

// runPlaced is the goroutine of an actor placed on another node: create the instance, then
// forward the calls in order until killed or dead, creating the instance again when its node
// fails.
func (e *Engine) runPlaced(a *actor) {
	defer e.wg.Done()
	p := a.pl
	defer func() {
		e.failQueued(a)
		a.mu.Lock()
		reason, killed := a.dead, a.killed
		a.mu.Unlock()
		e.amu.Lock()
		e.forgetLocked(a, reason.Error())
		e.amu.Unlock()
		e.endRecord(a, killed)
	}()
	exclude := map[string]bool{}
	if !p.follows && !e.startPlaced(a, p.node, false, exclude) {
		return
	}
	beat, _ := e.cfg.Cluster.Intervals()
	tick := time.NewTicker(beat)
	defer tick.Stop()
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.killed && p.lost < p.gen {
			node := p.node
			a.mu.Unlock()
			select {
			case <-a.signal:
			case <-tick.C:
				if node != "" && e.cluster.IsDead(node) {
					e.markLost(a, p.gen)
				}
			case <-e.ctx.Done():
				return
			}
			a.mu.Lock()
		}
		if a.killed {
			a.mu.Unlock()
			e.killPlaced(a)
			return
		}
		if p.lost >= p.gen {
			a.mu.Unlock()
			if !e.restartPlaced(a, exclude) {
				return
			}
			continue
		}
		c := a.queue[0]
		a.queue = a.queue[1:]
		a.mu.Unlock()
		if dead := e.forward(a, c); dead != nil {
			a.mu.Lock()
			a.dead = dead
			a.mu.Unlock()
			return
		}
	}
}

// markLost records that instance gen of a placed actor lost its node.
func (e *Engine) markLost(a *actor, gen int) {
	a.mu.Lock()
	if a.pl.lost < gen {
		a.pl.lost = gen
	}
	a.mu.Unlock()
	a.wake()
}

func (e *Engine) lostError(a *actor, node string, cause error) *abi.Error {
	return &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d was lost with node %s; the call may or may not have run (%v)", a.id, node, cause)}
}

// startPlaced creates the actor's instance on node ("" here), or on a node that fits when choose
// is set or that node fails. It waits while no node can hold the actor, until it is killed.
// It returns false when the actor is dead or killed (a.dead says why when dead).
func (e *Engine) startPlaced(a *actor, node string, choose bool, exclude map[string]bool) bool {
	p := a.pl
	beat, _ := e.cfg.Cluster.Intervals()
	systemFails := 0
	for {
		a.mu.Lock()
		killed := a.killed
		a.mu.Unlock()
		if killed || e.ctx.Err() != nil {
			return false
		}
		if choose {
			n, err := e.actorNode(p.demand, exclude)
			if err != nil {
				// No node can hold it now: forget the nodes that failed but live, and wait.
				for x := range exclude {
					if !e.cluster.IsDead(x) {
						delete(exclude, x)
					}
				}
				select {
				case <-e.ctx.Done():
				case <-a.signal:
					a.wake() // keep the token for the mailbox loop
					select {
					case <-e.ctx.Done():
					case <-time.After(beat):
					}
				case <-time.After(beat):
				}
				continue
			}
			node = n
		}
		choose = true
		id, err := e.createInstance(a, node)
		var ae *abi.Error
		if errors.As(err, &ae) && ae.Kind == abi.KindSystem && node != "" && systemFails < maxSystemFails {
			// The node refused for a reason of its own (it is behind, say): try another.
			systemFails++
		} else if errors.As(err, &ae) {
			a.mu.Lock()
			a.dead = &abi.Error{Kind: ae.Kind, Message: fmt.Sprintf("actor %d could not be created on node %s: %s", a.id, nodeName(e, node), ae.Message)}
			a.mu.Unlock()
			return false
		}
		if err != nil {
			e.log.Warn("placing an actor failed; trying another node", "actor", a.id, "node", node, "err", err)
			exclude[node] = true
			continue
		}
		a.mu.Lock()
		p.node, p.remote = node, id
		p.gen++
		a.mu.Unlock()
		e.putRecord(a, ActorAlive, "")
		return true
	}
}

// maxSystemFails bounds the nodes that may refuse to create an actor for a reason of their own
// (a system error) before the actor is given up as dead.
const maxSystemFails = 5

func nodeName(e *Engine, node string) string {
	if node == "" {
		return e.nodeID()
	}
	return node
}

// createInstance creates a placed actor's instance on node ("" here) and returns its handle
// there. An error that is not an *abi.Error means the node failed.
func (e *Engine) createInstance(a *actor, node string) (int64, error) {
	p := a.pl
	req := p.req
	a.mu.Lock()
	if a.maxRestarts >= 0 {
		// The holding node restarts the instance when it dies there, out of what is left.
		req.MaxRestarts = max(0, a.maxRestarts-a.restarts)
	}
	a.mu.Unlock()
	held := &heldFor{owner: e.nodeID(), handle: a.id, boot: e.cluster.Boot(), since: time.Now()}
	if node == "" {
		return e.newActor(e.ctx, a.job, p.digest, &req, &callContext{Grants: host.Grants{Capabilities: p.grants}}, actorOpts{here: true, held: held})
	}
	m, err := e.cluster.Member(node)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	out, err := e.live.peer.CreateActor(ctx, m.API, &wire.PlacedActor{Actor: req, Job: a.job, Grants: p.grants,
		Owner: wire.ActorOwner{Node: held.owner, Handle: held.handle, Boot: held.boot}, Applied: e.node.KV().Applied()})
	if err != nil {
		return 0, actorRemoteError(err)
	}
	return out.Actor, nil
}

// actorRemoteError reads another node's error answer about an actor: the node's verdict (an
// *abi.Error, whatever its status, when its body says what kind) or a failure of the node (no
// answer, 421, 503, or an error that is not an actor's).
func actorRemoteError(err error) error {
	we, answered := peer.IsAnswer(err)
	if !answered {
		return err
	}
	switch status := we.Kind.Status(); {
	case status == http.StatusMisdirectedRequest || status == http.StatusServiceUnavailable:
		return fmt.Errorf("node answered %d: %s", status, we.Message)
	case status >= 500 && we.Kind != wire.Kind(abi.KindSystem):
		return fmt.Errorf("node answered %d: %s", status, we.Message)
	}
	return &abi.Error{Kind: abi.ErrorKind(we.Kind), Message: we.Message, Limit: we.Limit, Code: we.Code}
}

// forward sends call c to the actor's instance and fetches its result in the background. It
// returns the reason the actor is dead when the instance has ended for good.
func (e *Engine) forward(a *actor, c *actorCall) *abi.Error {
	p := a.pl
	a.mu.Lock()
	node, remote, gen := p.node, p.remote, p.gen
	a.mu.Unlock()
	method := strings.TrimPrefix(c.method, a.typ+".")
	if node == "" {
		h, err := e.callActor(a.job, remote, method, c.input)
		if err != nil {
			ae, _ := asABIError(err).(*abi.Error)
			e.objects.Complete(c.obj, nil, ae)
			return ae
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			out, err := e.objects.Get(e.ctx, a.job, h, -1)
			e.objects.Release(a.job, h)
			if err != nil {
				err = asABIError(err)
			}
			e.objects.Complete(c.obj, out, err)
		}()
		return nil
	}
	if e.cluster.IsDead(node) {
		e.objects.Complete(c.obj, nil, e.lostError(a, node, errors.New("declared dead")))
		e.markLost(a, gen)
		return nil
	}
	m, err := e.cluster.Member(node)
	if err != nil {
		e.objects.Complete(c.obj, nil, e.lostError(a, node, err))
		e.markLost(a, gen)
		return nil
	}
	api := strings.TrimRight(m.API, "/")
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	call := &wire.ActorCall{Job: a.job, Method: method, Input: c.input}
	if len(c.borrowed) > 0 {
		// The objects the call reads: where each lives, for the holding node to fetch them.
		refs, err := e.shipRefs(ctx, a.job, c.borrowed)
		if err != nil {
			cancel()
			ae, _ := asABIError(err).(*abi.Error)
			e.objects.Complete(c.obj, nil, ae)
			return nil
		}
		call.RemoteRefs = refs
	}
	sub, err := e.live.peer.CallActor(ctx, api, remote, call)
	cancel()
	if err != nil {
		err = actorRemoteError(err)
	}
	var ae *abi.Error
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.Kind == abi.KindNotFound && !strings.Contains(ae.Message, "has ended"):
		// The node does not know the instance: it restarted since.
		e.objects.Complete(c.obj, nil, e.lostError(a, node, err))
		e.markLost(a, gen)
		return nil
	case errors.As(err, &ae):
		e.objects.Complete(c.obj, nil, ae)
		if ae.Kind == abi.KindNotFound {
			return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d has ended on node %s: %s", a.id, node, ae.Message)}
		}
		return nil
	default:
		e.objects.Complete(c.obj, nil, e.lostError(a, node, err))
		e.markLost(a, gen)
		return nil
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		out, err := e.fetchRemote(node, api, sub.Ref, sub.Job)
		var ae *abi.Error
		answered := err == nil || errors.As(err, &ae)
		if !answered {
			if e.ctx.Err() != nil {
				err = &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
			} else {
				err = e.lostError(a, node, err)
				e.markLost(a, gen)
			}
		}
		if err == nil && bytes.Contains(out, refMarker) {
			// The result may refer to objects the actor made there: if so it stays there, and
			// a get here fetches it, mapping those refs to objects here (remote.go).
			if loc := e.resultWithRefs(node, api, sub.Ref, sub.Job); loc != nil {
				e.objects.CompleteRemote(c.obj, loc, nil)
				return
			}
		}
		e.objects.Complete(c.obj, out, err)
		if answered {
			// The result is this node's now: the holding node may free its copy.
			rctx, rcancel := context.WithTimeout(e.ctx, 10*time.Second)
			e.live.peer.ReleaseObject(rctx, api, sub.Job, sub.Ref)
			rcancel()
		}
	}()
	return nil
}

// resultWithRefs returns where the ready object ref of job on node lives when its value refers
// to other objects there, else nil.
func (e *Engine) resultWithRefs(node, api string, ref int64, job string) *objects.Location {
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	m, err := e.live.peer.ObjectMeta(ctx, api, job, ref, 30*time.Second)
	if err != nil || len(m.Refs) == 0 {
		return nil
	}
	return &objects.Location{Node: node, API: api, Job: job, Handle: ref, Size: m.Size, Sum: m.Checksum, Owned: true}
}

// fetchRemote waits for object ref of job on node (its peer routes), a few seconds at a time so that a node
// declared dead is noticed. An error that is not an *abi.Error means the node failed.
func (e *Engine) fetchRemote(node, api string, ref int64, job string) ([]byte, error) {
	for {
		if e.cluster.IsDead(node) {
			return nil, fmt.Errorf("node %s was declared dead", node)
		}
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		v, err := e.live.peer.Object(ctx, api, job, ref, 2*time.Second, -1)
		cancel()
		we, answered := peer.IsAnswer(err)
		switch {
		case err == nil:
			return v.Value, nil
		case answered && we.Kind == wire.KindNotReady:
			continue
		default:
			return nil, actorRemoteError(err)
		}
	}
}

// restartPlaced creates a placed actor again after its node failed, if its max_restarts allow.
func (e *Engine) restartPlaced(a *actor, exclude map[string]bool) bool {
	p := a.pl
	a.mu.Lock()
	old, remote := p.node, p.remote
	may := !p.follows && (a.maxRestarts < 0 || a.restarts < a.maxRestarts)
	var dead *abi.Error
	switch {
	case may:
		a.restarts++
	case p.follows:
		dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d (the actor named %q, owned by node %s) was lost with its owner", a.id, a.key, old)}
		a.dead = dead
	default:
		dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d was lost with node %s and may not restart (max_restarts %d)", a.id, nodeName(e, old), a.maxRestarts)}
		a.dead = dead
	}
	a.mu.Unlock()
	if p.follows {
		return false
	}
	if old != "" {
		exclude[old] = true
		if !e.cluster.IsDead(old) {
			// It may only have stopped answering this node: end the old instance if it lives.
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.killRemote(old, remote, a)
			}()
		}
	}
	if !may {
		e.putRecord(a, ActorDead, dead.Message)
		return false
	}
	e.log.Warn("actor lost with its node; creating it again", "actor", a.id, "node", old, "restart", a.restarts)
	e.putRecord(a, ActorRestarting, "")
	return e.startPlaced(a, "", true, exclude)
}

// killPlaced ends a placed actor's instance.
func (e *Engine) killPlaced(a *actor) {
	p := a.pl
	a.mu.Lock()
	node, remote := p.node, p.remote
	a.mu.Unlock()
	if node == "" {
		e.killActor(a.job, remote)
		return
	}
	if !e.cluster.IsDead(node) {
		e.killRemote(node, remote, a)
	}
}

// killRemote asks node to kill a's instance id there (best effort: a node that does not answer
// kills it itself once it sees its owner no longer records it there). The node kills it only if
// it is still a's (the kill names its owner): after a restart it may have given the handle to
// another.
func (e *Engine) killRemote(node string, id int64, a *actor) {
	m, err := e.cluster.Member(node)
	if err != nil {
		return
	}
	k := &wire.ActorKill{Job: a.job}
	if !a.pl.follows {
		k.Owner = &wire.ActorOwner{Node: e.nodeID(), Handle: a.id, Boot: e.cluster.Boot()}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	e.live.peer.KillActor(ctx, m.API, id, k)
}

// killPlacedActor kills actor id of job, placed here by owner; an actor of that handle that
// another owner placed, or none placed, is not found.
func (e *Engine) killPlacedActor(job string, id int64, owner wire.ActorOwner) error {
	if err := owner.Check(); err != nil {
		return err
	}
	a, err := e.actor(jobOr(job), id)
	if err != nil {
		return err
	}
	if h := a.held; h == nil || h.owner != owner.Node || h.handle != owner.Handle || h.boot != owner.Boot {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d was not placed here by %s", id, truncate([]byte(owner.String()), 100))}
	}
	return e.killActor(jobOr(job), id)
}

// record returns the actor's record as its owner sees it now.
func (e *Engine) record(a *actor, state, reason string) ActorRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := ActorRecord{Owner: e.nodeID(), Handle: a.id, Boot: e.cluster.Boot(), Job: a.job, Type: a.typ, Module: a.hm.Digest,
		Name: a.key, Node: e.nodeID(), Restarts: a.restarts, State: state, Reason: reason}
	if a.pl != nil {
		if a.pl.node != "" {
			r.Node = a.pl.node
		}
		r.Remote = a.pl.remote
		if state == ActorRestarting {
			r.Node, r.Remote = "", 0
		}
	}
	return r
}

// putRecord queues the actor's record for the writer. Actors placed here by another node are
// recorded by their owner.
func (e *Engine) putRecord(a *actor, state, reason string) {
	if a.held != nil || (a.pl != nil && a.pl.follows) {
		return
	}
	b, _ := json.Marshal(e.record(a, state, reason))
	e.queueRecord(actorRecordKey(e.nodeID(), a.id), b)
}

// endRecord records an actor's end: its record goes when it was killed or its node closes, and
// stays DEAD with the reason when it died.
func (e *Engine) endRecord(a *actor, killed bool) {
	if a.held != nil || (a.pl != nil && a.pl.follows) {
		return
	}
	a.mu.Lock()
	var reason *abi.Error
	errors.As(a.dead, &reason)
	a.mu.Unlock()
	if killed || reason == nil || reason.Kind == abi.KindCancelled || e.ctx.Err() != nil {
		e.queueRecord(actorRecordKey(e.nodeID(), a.id), nil)
		return
	}
	e.putRecord(a, ActorDead, reason.Message)
}

func (e *Engine) queueRecord(key string, val []byte) {
	r := &e.remote
	r.writer.Do(func() {
		r.kick = make(chan struct{}, 1)
		e.wg.Add(1)
		go e.writeRecords()
	})
	r.mu.Lock()
	if r.pending == nil {
		r.pending = map[string][]byte{}
	}
	if prev, queued := r.pending[key]; val == nil && queued && prev != nil && !r.written[key] && !r.inflight[key] {
		// An actor that ended before its record was written: nothing to write.
		delete(r.pending, key)
		r.mu.Unlock()
		return
	}
	r.pending[key] = val
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// recordLinger is how long the writer waits after a change for more to batch with it.
const recordLinger = 10 * time.Millisecond

// maxRecordOps caps the records one command writes.
const maxRecordOps = 512

// writeRecords commits the queued records, the latest of each key, until the engine closes. A
// failed commit is tried again after a pause, unless a newer record of the key came meanwhile.
func (e *Engine) writeRecords() {
	defer e.wg.Done()
	r := &e.remote
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-r.kick:
		}
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(recordLinger):
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		if r.written == nil {
			r.written = map[string]bool{}
		}
		r.inflight = map[string]bool{}
		for k := range batch {
			r.inflight[k] = true
		}
		r.mu.Unlock()
		keys := make([]string, 0, len(batch))
		for k := range batch {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		failed := false
		for len(keys) > 0 {
			n := min(len(keys), maxRecordOps)
			ops := make([]raftstore.Op, 0, n)
			for _, k := range keys[:n] {
				if v := batch[k]; v == nil {
					ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: []byte(k)})
				} else {
					ops = append(ops, raftstore.Op{Kind: raftstore.OpSet, Key: []byte(k), Value: v})
				}
			}
			if err := e.node.Apply(e.ctx, &raftstore.Command{Ops: ops}); err != nil {
				if e.ctx.Err() != nil {
					return
				}
				failed = true
				r.mu.Lock()
				if r.pending == nil {
					r.pending = map[string][]byte{}
				}
				for _, k := range keys {
					if _, newer := r.pending[k]; !newer {
						r.pending[k] = batch[k]
					}
				}
				r.mu.Unlock()
				e.log.Warn("writing actor records failed; trying again", "records", len(keys), "err", err)
				break
			}
			r.mu.Lock()
			for _, k := range keys[:n] {
				if batch[k] != nil {
					r.written[k] = true
				} else {
					delete(r.written, k)
				}
			}
			r.mu.Unlock()
			keys = keys[n:]
		}
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		if failed {
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
	}
}

// Actors lists the actor records of the cluster, of job when it is not empty, ordered by owner
// and handle. The read is linearizable; a record follows its actor's change by a moment.
func (e *Engine) Actors(ctx context.Context, job string) ([]ActorRecord, error) {
	out, err := raftstore.Records(ctx, e.node, actorsPrefix, func(rec *ActorRecord) bool { return job == "" || rec.Job == job })
	slices.SortFunc(out, func(a, b ActorRecord) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		return int(a.Handle - b.Handle)
	})
	return out, err
}

// startReaper starts, once, the loop that kills the actors placed here whose owner is declared
// dead or no longer records them here.
func (e *Engine) startReaper() {
	e.remote.reaper.Do(func() { e.every(time.Second, e.reap) })
}

// reapGrace is how long a placed actor lives before its owner's record of it must show: the
// record is written a moment after the actor is created.
const reapGrace = 30 * time.Second

func (e *Engine) reap() {
	self := e.nodeID()
	var held, orphans []*actor
	e.amu.Lock()
	for _, a := range e.actors {
		if a.held != nil && a.held.owner != self {
			held = append(held, a)
		}
	}
	e.amu.Unlock()
	for _, a := range held {
		h := a.held
		if e.cluster.IsDead(h.owner) {
			orphans = append(orphans, a)
			continue
		}
		if time.Since(h.since) < reapGrace {
			continue
		}
		b, err := e.node.KV().Get([]byte(actorRecordKey(h.owner, h.handle)))
		var rec ActorRecord
		if err != nil || json.Unmarshal(b, &rec) != nil || rec.Boot != h.boot || rec.State != ActorAlive || rec.Node != self || rec.Remote != a.id {
			orphans = append(orphans, a)
		}
	}
	for _, a := range orphans {
		e.log.Warn("killing an actor placed here: its owner is dead or no longer holds it", "actor", a.id, "owner", a.held.owner, "owner_handle", a.held.handle)
		a.mu.Lock()
		a.killed = true
		a.mu.Unlock()
		a.wake()
	}
}

// followNamed returns a handle on this node through which the actor named key ("ns/name"), owned
// by rec.Node, is called: its calls and kill go to the owner, which runs or forwards them. The
// handle is kept for the next lookup while it lives and the name still names the same actor.
func (e *Engine) followNamed(ctx context.Context, key string, rec actorRecord) (int64, string, error) {
	e.amu.Lock()
	if a := e.remote.follow[key]; a != nil && e.actors[a.id] == a && a.pl.node == rec.Node && a.pl.remote == rec.ID && a.pl.boot == rec.Boot {
		e.amu.Unlock()
		return a.id, a.job, nil
	}
	e.amu.Unlock()
	if rec.Type == "" || rec.Module == "" {
		return 0, "", fmt.Errorf("its name record, written by an older node, does not say its type")
	}
	fn, err := e.function(ctx, rec.Module, rec.Type, abi.KindActor)
	if err != nil {
		return 0, "", err
	}
	a := &actor{
		id: e.objects.NewHandle(), job: rec.Job, typ: rec.Type, hm: fn.Module, key: key, cc: &callContext{}, signal: make(chan struct{}, 1),
		pl: &placed{follows: true, boot: rec.Boot, digest: rec.Module, node: rec.Node, remote: rec.ID, gen: 1},
	}
	e.amu.Lock()
	if e.closing {
		e.amu.Unlock()
		return 0, "", &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	}
	if e.remote.follow == nil {
		e.remote.follow = map[string]*actor{}
	}
	e.remote.follow[key] = a
	e.actors[a.id] = a
	e.amu.Unlock()
	e.wg.Add(1)
	go e.runPlaced(a)
	return a.id, a.job, nil
}
