package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Actors across nodes, in the ownership style of placed tasks (engine/tasks): the node that
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
// with it, unless the actor is durable (durable.go): its state is in the replicated state, the
// new instance loads it, and a call that certainly never reached the lost node is queued again. A holding node kills the actors placed on it whose owner is declared dead or no longer
// records them (the owner restarted, or moved the actor away).
//
// A named actor looked up on a node that does not own it gets a handle there of the same kind, a
// follower: its calls and kill are forwarded to the owner, which runs or forwards them in turn.
//
// Every actor is recorded through raft under actors/<owner>/<handle> (Record): where it
// runs, its restarts and its state. The records are written in batches by one writer per node,
// a moment after the change, so that a burst of actors costs a few commits, not one each.

// actorsPrefix holds the actor records, by owner node and handle.
const actorsPrefix = "actors/"

// Actor states in the records.
const (
	Alive      = "ALIVE"
	Restarting = "RESTARTING"
	Dead       = "DEAD"
)

// Record is what the replicated state says of one actor.
type Record struct {
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
	// Durable says the actor's state is stored in the replicated state after its calls.
	Durable bool `json:"durable,omitempty"`
	// Reason says why a DEAD actor died.
	Reason string `json:"reason,omitempty"`
}

func actorRecordKey(owner string, handle int64) string {
	return actorsPrefix + owner + "/" + strconv.FormatInt(handle, 10)
}

// actorsRemote is a node's share of the actors across nodes: the batched record writer and the
// reaper of orphaned placed actors.
type actorsRemote struct {
	reaper sync.Once
	// follow holds the handle of each named actor of another node looked up here (guarded by
	// Manager.mu).
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
func placeable(cc *tasks.Scope) bool {
	return len(cc.Grants.Dirs) == 0 && cc.Grants.Env == nil
}

// actorNode picks the node for an actor with demand d, "" for this one: here when it fits now;
// else a live node with room now; else here when this node can ever hold it (it waits for
// room); else a live node that can ever hold it.
func (m *Manager) actorNode(d scheduler.Resources, exclude map[string]bool) (string, error) {
	self := m.nodeID
	if !exclude[self] && m.pool.Available().Fits(d) {
		return "", nil
	}
	if m.cluster.Peers() {
		if n := m.cluster.Place(d, exclude); n != "" && n != self {
			return n, nil
		}
	}
	herr := m.pool.Check(d)
	if !exclude[self] && herr == nil {
		return "", nil
	}
	for _, v := range m.cluster.Nodes() {
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
func (m *Manager) placeActor(module string, req *abi.ActorCreateRequest, cc *tasks.Scope, d scheduler.Resources) (*placed, error) {
	if !placeable(cc) || m.pool.Available().Fits(d) {
		return nil, nil
	}
	node, err := m.actorNode(d, nil)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("actor %s: %v", req.Actor, err)}
	}
	if node == "" {
		return nil, nil
	}
	digest, err := m.digest(module)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	r := *req
	r.Module, r.Name, r.Namespace = digest, "", ""
	return &placed{digest: digest, req: r, grants: cc.Grants.Capabilities, demand: d, node: node}, nil
}

// CreateHere creates an actor that owner placed on this node: it runs here, once this node
// has applied the state up to index (the placing node's), so its module is known here.
func (m *Manager) CreateHere(ctx context.Context, job string, req *abi.ActorCreateRequest, grants host.Grants, index uint64, owner wire.ActorOwner) (int64, error) {
	if req.Module == "" {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "an actor created from outside a module must name its module"}
	}
	if err := owner.Check(); err != nil {
		return 0, err
	}
	held := &heldFor{owner: owner.Node, handle: owner.Handle, boot: owner.Boot, since: time.Now()}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.node.KV().WaitApplied(wctx, index); err != nil {
		return 0, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("this node is behind the one that placed the actor: %v", err)}
	}
	return m.newActor(ctx, job, req.Module, req, &tasks.Scope{Grants: grants}, actorOpts{here: true, held: held})
}

// runPlaced is the goroutine of an actor placed on another node: create the instance, then
// forward the calls in order until killed or dead, creating the instance again when its node
// fails.
func (m *Manager) runPlaced(a *actor) {
	defer m.wg.Done()
	p := a.pl
	defer func() {
		m.failQueued(a)
		a.mu.Lock()
		reason, killed := a.dead, a.killed
		a.mu.Unlock()
		m.mu.Lock()
		m.forgetLocked(a, reason.Error())
		m.mu.Unlock()
		m.ledger.endRecord(a, killed)
		if a.durable && !p.follows {
			m.dropState(a.id)
		}
	}()
	exclude := map[string]bool{}
	if !p.follows && !m.startPlaced(a, p.node, false, exclude) {
		return
	}
	beat := m.beat
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
				if node != "" && m.cluster.IsDead(node) {
					m.markLost(a, p.gen)
				}
			case <-m.ctx.Done():
				return
			}
			a.mu.Lock()
		}
		if a.killed {
			a.mu.Unlock()
			m.killPlaced(a)
			return
		}
		if p.lost >= p.gen {
			a.mu.Unlock()
			if !m.restartPlaced(a, exclude) {
				return
			}
			continue
		}
		c := a.queue[0]
		a.queue = a.queue[1:]
		a.mu.Unlock()
		if dead := m.forward(a, c); dead != nil {
			a.mu.Lock()
			a.dead = dead
			a.mu.Unlock()
			return
		}
	}
}

// markLost records that instance gen of a placed actor lost its node.
func (m *Manager) markLost(a *actor, gen int) {
	a.mu.Lock()
	if a.pl.lost < gen {
		a.pl.lost = gen
	}
	a.mu.Unlock()
	a.wake()
}

func (m *Manager) lostError(a *actor, node string, cause error) *abi.Error {
	return &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d was lost with node %s; the call may or may not have run (%v)", a.id, node, cause)}
}

// startPlaced creates the actor's instance on node ("" here), or on a node that fits when choose
// is set or that node fails. It waits while no node can hold the actor, until it is killed.
// It returns false when the actor is dead or killed (a.dead says why when dead).
func (m *Manager) startPlaced(a *actor, node string, choose bool, exclude map[string]bool) bool {
	p := a.pl
	beat := m.beat
	systemFails := 0
	for {
		a.mu.Lock()
		killed := a.killed
		a.mu.Unlock()
		if killed || m.ctx.Err() != nil {
			return false
		}
		if choose {
			n, err := m.actorNode(p.demand, exclude)
			if err != nil {
				// No node can hold it now: forget the nodes that failed but live, and wait.
				for x := range exclude {
					if !m.cluster.IsDead(x) {
						delete(exclude, x)
					}
				}
				select {
				case <-m.ctx.Done():
				case <-a.signal:
					a.wake() // keep the token for the mailbox loop
					select {
					case <-m.ctx.Done():
					case <-time.After(beat):
					}
				case <-time.After(beat):
				}
				continue
			}
			node = n
		}
		choose = true
		id, err := m.createInstance(a, node)
		var ae *abi.Error
		if errors.As(err, &ae) && (ae.Kind == abi.KindSystem || abi.IsQuota(ae.Limit)) && node != "" && systemFails < maxSystemFails {
			// The node refused for a reason of its own (it is behind, or the job holds its cap
			// of actors there, say): try another.
			systemFails++
		} else if errors.As(err, &ae) {
			a.mu.Lock()
			a.dead = &abi.Error{Kind: ae.Kind, Message: fmt.Sprintf("actor %d could not be created on node %s: %s", a.id, m.nodeName(node), ae.Message)}
			a.mu.Unlock()
			return false
		}
		if err != nil {
			m.log.Warn("placing an actor failed; trying another node", "actor", a.id, "node", node, "err", err)
			exclude[node] = true
			continue
		}
		a.mu.Lock()
		p.node, p.remote = node, id
		p.gen++
		a.mu.Unlock()
		m.ledger.putRecord(a, Alive, "")
		return true
	}
}

// maxSystemFails bounds the nodes that may refuse to create an actor for a reason of their own
// (a system error) before the actor is given up as dead.
const maxSystemFails = 5

func (m *Manager) nodeName(node string) string {
	if node == "" {
		return m.nodeID
	}
	return node
}

// createInstance creates a placed actor's instance on node ("" here) and returns its handle
// there. An error that is not an *abi.Error means the node failed.
func (m *Manager) createInstance(a *actor, node string) (int64, error) {
	p := a.pl
	req := p.req
	a.mu.Lock()
	if a.maxRestarts >= 0 {
		// The holding node restarts the instance when it dies there, out of what is left.
		req.MaxRestarts = max(0, a.maxRestarts-a.restarts)
	}
	a.mu.Unlock()
	held := &heldFor{owner: m.nodeID, handle: a.id, boot: m.cluster.Boot(), since: time.Now()}
	if node == "" {
		return m.newActor(m.ctx, a.job, p.digest, &req, &tasks.Scope{Grants: host.Grants{Capabilities: p.grants}}, actorOpts{here: true, held: held})
	}
	mem, err := m.cluster.Member(node)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	out, err := m.peer.CreateActor(ctx, mem.API, &wire.PlacedActor{Actor: req, Job: a.job, Grants: p.grants,
		Owner: wire.ActorOwner{Node: held.owner, Handle: held.handle, Boot: held.boot}, Applied: m.node.KV().Applied()})
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
func (m *Manager) forward(a *actor, c *actorCall) *abi.Error {
	p := a.pl
	a.mu.Lock()
	node, remote, gen := p.node, p.remote, p.gen
	a.mu.Unlock()
	method := strings.TrimPrefix(c.method, a.typ+".")
	if node == "" {
		h, err := m.Call(a.job, remote, method, c.input)
		if err != nil {
			ae := tasks.AsABIError(err)
			m.objects.Complete(c.obj, nil, ae)
			return ae
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			out, err := m.objects.Get(m.ctx, a.job, h, -1)
			m.objects.Release(a.job, h)
			if err != nil {
				err = tasks.AsABIError(err)
			}
			m.objects.Complete(c.obj, out, err)
		}()
		return nil
	}
	// notSent handles a call that certainly did not reach node: a durable actor's goes back to
	// the head of its mailbox, for the instance created again from the stored state; another
	// actor's fails as lost.
	notSent := func(cause error) *abi.Error {
		if a.durable {
			a.mu.Lock()
			a.queue = append([]*actorCall{c}, a.queue...)
			a.mu.Unlock()
		} else {
			m.objects.Complete(c.obj, nil, m.lostError(a, node, cause))
		}
		m.markLost(a, gen)
		return nil
	}
	if m.cluster.IsDead(node) {
		return notSent(errors.New("declared dead"))
	}
	mem, err := m.cluster.Member(node)
	if err != nil {
		return notSent(err)
	}
	api := strings.TrimRight(mem.API, "/")
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	call := &wire.ActorCall{Job: a.job, Method: method, Input: c.input}
	if len(c.borrowed) > 0 {
		// The objects the call reads: where each lives, for the holding node to fetch them.
		refs, err := m.shipRefs(ctx, a.job, c.borrowed)
		if err != nil {
			cancel()
			ae := tasks.AsABIError(err)
			m.objects.Complete(c.obj, nil, ae)
			return nil
		}
		call.RemoteRefs = refs
	}
	sub, err := m.peer.CallActor(ctx, api, remote, call)
	cancel()
	if err != nil {
		err = actorRemoteError(err)
	}
	var ae *abi.Error
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.Kind == abi.KindNotFound && !strings.Contains(ae.Message, "has ended"):
		// The node does not know the instance: it restarted since, and did not run the call.
		return notSent(err)
	case errors.As(err, &ae):
		m.objects.Complete(c.obj, nil, ae)
		if ae.Kind == abi.KindNotFound {
			return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d has ended on node %s: %s", a.id, node, ae.Message)}
		}
		return nil
	case neverSent(err):
		return notSent(err)
	default:
		m.objects.Complete(c.obj, nil, m.lostError(a, node, err))
		m.markLost(a, gen)
		return nil
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		out, err := m.fetchRemote(node, api, sub.Ref, sub.Job)
		var ae *abi.Error
		answered := err == nil || errors.As(err, &ae)
		if !answered {
			if m.ctx.Err() != nil {
				err = &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
			} else {
				err = m.lostError(a, node, err)
				m.markLost(a, gen)
			}
		}
		if err == nil && bytes.Contains(out, []byte(objects.RefMarker)) {
			// The result may refer to objects the actor made there: if so it stays there, and
			// a get here fetches it, mapping those refs to objects here (the object store's Fetch).
			if loc := m.resultWithRefs(node, api, sub.Ref, sub.Job); loc != nil {
				m.objects.CompleteRemote(c.obj, loc, nil)
				return
			}
		}
		m.objects.Complete(c.obj, out, err)
		if answered {
			// The result is this node's now: the holding node may free its copy.
			rctx, rcancel := context.WithTimeout(m.ctx, 10*time.Second)
			m.peer.ReleaseObject(rctx, api, sub.Job, sub.Ref)
			rcancel()
		}
	}()
	return nil
}

// neverSent says whether a request failed before it was sent: no connection to the node could be
// made.
func neverSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// resultWithRefs returns where the ready object ref of job on node lives when its value refers
// to other objects there, else nil.
func (m *Manager) resultWithRefs(node, api string, ref int64, job string) *objects.Location {
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	meta, err := m.peer.ObjectMeta(ctx, api, job, ref, 30*time.Second)
	if err != nil || len(meta.Refs) == 0 {
		return nil
	}
	return &objects.Location{Node: node, API: api, Job: job, Handle: ref, Size: meta.Size, Sum: meta.Checksum, Owned: true}
}

// fetchRemote waits for object ref of job on node (its peer routes), a few seconds at a time so that a node
// declared dead is noticed. An error that is not an *abi.Error means the node failed.
func (m *Manager) fetchRemote(node, api string, ref int64, job string) ([]byte, error) {
	for {
		if m.cluster.IsDead(node) {
			return nil, fmt.Errorf("node %s was declared dead", node)
		}
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		v, err := m.peer.Object(ctx, api, job, ref, 2*time.Second, -1)
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
func (m *Manager) restartPlaced(a *actor, exclude map[string]bool) bool {
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
		dead = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d was lost with node %s and may not restart (max_restarts %d)", a.id, m.nodeName(old), a.maxRestarts)}
		a.dead = dead
	}
	a.mu.Unlock()
	if p.follows {
		return false
	}
	if old != "" {
		exclude[old] = true
		if !m.cluster.IsDead(old) {
			// It may only have stopped answering this node: end the old instance if it lives.
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.killRemote(old, remote, a)
			}()
		}
	}
	if !may {
		m.ledger.putRecord(a, Dead, dead.Message)
		return false
	}
	m.log.Warn("actor lost with its node; creating it again", "actor", a.id, "node", old, "restart", a.restarts)
	m.ledger.putRecord(a, Restarting, "")
	return m.startPlaced(a, "", true, exclude)
}

// killPlaced ends a placed actor's instance.
func (m *Manager) killPlaced(a *actor) {
	p := a.pl
	a.mu.Lock()
	node, remote := p.node, p.remote
	a.mu.Unlock()
	if node == "" {
		m.Kill(a.job, remote)
		return
	}
	if !m.cluster.IsDead(node) {
		m.killRemote(node, remote, a)
	}
}

// killRemote asks node to kill a's instance id there (best effort: a node that does not answer
// kills it itself once it sees its owner no longer records it there). The node kills it only if
// it is still a's (the kill names its owner): after a restart it may have given the handle to
// another.
func (m *Manager) killRemote(node string, id int64, a *actor) {
	mem, err := m.cluster.Member(node)
	if err != nil {
		return
	}
	k := &wire.ActorKill{Job: a.job}
	if !a.pl.follows {
		k.Owner = &wire.ActorOwner{Node: m.nodeID, Handle: a.id, Boot: m.cluster.Boot()}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	m.peer.KillActor(ctx, mem.API, id, k)
}

// KillPlaced kills actor id of job, placed here by owner; an actor of that handle that
// another owner placed, or none placed, is not found.
func (m *Manager) KillPlaced(job string, id int64, owner wire.ActorOwner) error {
	if err := owner.Check(); err != nil {
		return err
	}
	a, err := m.actor(job, id)
	if err != nil {
		return err
	}
	if h := a.held; h == nil || h.owner != owner.Node || h.handle != owner.Handle || h.boot != owner.Boot {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("actor %d was not placed here by %s", id, truncate([]byte(owner.String()), 100))}
	}
	return m.Kill(job, id)
}

// Records lists the actor records of the cluster, of job when it is not empty, ordered by owner
// and handle. The read is linearizable; a record follows its actor's change by a moment.
func (m *Manager) Records(ctx context.Context, job string) ([]Record, error) {
	out, err := raftstore.Records(ctx, m.node, actorsPrefix, func(rec *Record) bool { return job == "" || rec.Job == job })
	slices.SortFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		return int(a.Handle - b.Handle)
	})
	return out, err
}

// startReaper starts, once, the loop that kills the actors placed here whose owner is declared
// dead or no longer records them here.
func (m *Manager) startReaper() {
	m.remote.reaper.Do(func() { m.every(time.Second, m.reap) })
}

// reapGrace is how long a placed actor lives before its owner's record of it must show: the
// record is written a moment after the actor is created.
const reapGrace = 30 * time.Second

func (m *Manager) reap() {
	self := m.nodeID
	var held, orphans []*actor
	m.mu.Lock()
	for _, a := range m.actors {
		if a.held != nil && a.held.owner != self {
			held = append(held, a)
		}
	}
	m.mu.Unlock()
	for _, a := range held {
		h := a.held
		if m.cluster.IsDead(h.owner) {
			orphans = append(orphans, a)
			continue
		}
		if time.Since(h.since) < reapGrace {
			continue
		}
		b, err := m.node.KV().Get([]byte(actorRecordKey(h.owner, h.handle)))
		var rec Record
		if err != nil || json.Unmarshal(b, &rec) != nil || rec.Boot != h.boot || rec.State != Alive || rec.Node != self || rec.Remote != a.id {
			orphans = append(orphans, a)
		}
	}
	for _, a := range orphans {
		m.log.Warn("killing an actor placed here: its owner is dead or no longer holds it", "actor", a.id, "owner", a.held.owner, "owner_handle", a.held.handle)
		a.mu.Lock()
		a.killed = true
		a.mu.Unlock()
		a.wake()
	}
}

// followNamed returns a handle on this node through which the actor named key ("ns/name"), owned
// by rec.Node, is called: its calls and kill go to the owner, which runs or forwards them. The
// handle is kept for the next lookup while it lives and the name still names the same actor.
func (m *Manager) followNamed(ctx context.Context, key string, rec nameRecord) (int64, string, error) {
	m.mu.Lock()
	if a := m.remote.follow[key]; a != nil && m.actors[a.id] == a && a.pl.node == rec.Node && a.pl.remote == rec.ID && a.pl.boot == rec.Boot {
		m.mu.Unlock()
		return a.id, a.job, nil
	}
	m.mu.Unlock()
	if rec.Type == "" || rec.Module == "" {
		return 0, "", fmt.Errorf("its name record, written by an older node, does not say its type")
	}
	fn, err := m.function(ctx, rec.Module, rec.Type, abi.KindActor)
	if err != nil {
		return 0, "", err
	}
	a := &actor{
		id: m.objects.NewHandle(), job: rec.Job, typ: rec.Type, hm: fn.Module, key: key, cc: &tasks.Scope{}, signal: make(chan struct{}, 1),
		pl: &placed{follows: true, boot: rec.Boot, digest: rec.Module, node: rec.Node, remote: rec.ID, gen: 1},
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return 0, "", &abi.Error{Kind: abi.KindCancelled, Message: "the engine is shutting down"}
	}
	if m.remote.follow == nil {
		m.remote.follow = map[string]*actor{}
	}
	m.remote.follow[key] = a
	m.actors[a.id] = a
	m.mu.Unlock()
	m.wg.Add(1)
	go m.runPlaced(a)
	return a.id, a.job, nil
}
