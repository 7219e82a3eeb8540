package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Objects across nodes, in Ray's ownership model. The node that accepted a task owns its result
// object, wherever the task runs. When the task ran on another node, the value stays there: the
// owner records its location (the node and the handle there) and fetches it on the first get,
// keeping a copy. A task placed on another node receives, for each object it reads, where that
// object lives (its owner, or the node the owner knows holds it); the node running it fetches
// the value when the guest first reads it. Every fetch is checked against the CRC-32C of the
// value taken when it was made and against the one the sender computes while sending.
//
// Reference counts: the owner holds the remote copy of a result it owns and releases it when its
// own object is freed; a node running a task holds what it fetched for the task until the task
// ends; the owner holds a task's arguments for as long as the task's result lives (lineage).
//
// Lineage: when the node holding a result dies, the owner rebuilds the result by running its
// task again, on a live node; the task's own arguments are rebuilt first when they were lost
// too, recursively. An object made by put on a node that dies has no task to run again: a get of
// it fails, saying so.

// Deps is what a Plane uses of its node.
type Deps struct {
	Ctx context.Context // ends when the node closes; fetches and releases run under it
	WG  *sync.WaitGroup // the node's background work, which the releases of remote objects join
	Log *slog.Logger

	NodeID string // this node's id in the cluster
	APIURL string // this node's API URL, which other nodes fetch its objects from

	Objects *objects.Store  // the node's objects; New connects their fetches and releases here
	Cluster *cluster.Node   // membership, liveness and placement; its raft's applied index goes with placed tasks
	Peer    *peer.Client    // the client of the other nodes' peer routes
	Tasks   *tasks.Pipeline // runs a lost object's task again (ExecPlaced)

	// CallBorrowing calls method of actor id of job with input, the call holding borrowed (the
	// caller's references, released when the call ends) (actors.Manager.CallBorrowing).
	CallBorrowing func(job string, id int64, method string, input []byte, borrowed []int64) (int64, error)
}

// Plane is the node's cross-node data plane: the fetches and rebuilds of objects held on other
// nodes, the refs of placed tasks, the results held for other nodes' tasks, and RunOn. It is safe
// for concurrent use.
type Plane struct {
	d Deps

	rebuilt     atomic.Int64 // objects rebuilt from lineage after their node was lost
	pulledBytes atomic.Int64 // bytes of objects fetched from other nodes

	mu   sync.Mutex
	held []heldResult // results kept for tasks other nodes placed here (under mu)
}

// New makes the plane and connects the object store to the other nodes: a remote object's
// value is fetched through it, and released on its holder when freed here.
func New(d Deps) *Plane {
	p := &Plane{d: d}
	p.initRemote()
	return p
}

// Rebuilt counts the objects rebuilt from lineage after their node was lost.
func (p *Plane) Rebuilt() int64 { return p.rebuilt.Load() }

// PulledBytes counts the bytes of objects fetched from other nodes.
func (p *Plane) PulledBytes() int64 { return p.pulledBytes.Load() }

// ObjectValue waits for object h of job like Get and returns its value with the handles its
// value refers to and its checksum, for a node fetching it.
func (p *Plane) ObjectValue(ctx context.Context, job string, h int64, timeout time.Duration) ([]byte, wire.ObjectMeta, error) {
	b, err := p.d.Objects.Get(ctx, wire.JobOr(job), h, timeout)
	if err != nil {
		return nil, wire.ObjectMeta{}, err
	}
	return b, wire.ObjectMeta{Size: int64(len(b)), Checksum: p.d.Objects.SumOf(wire.JobOr(job), h, b), Refs: p.d.Objects.ChildrenOf(wire.JobOr(job), h)}, nil
}

// ObjectMeta waits for object h of job like Get and describes it.
func (p *Plane) ObjectMeta(ctx context.Context, job string, h int64, timeout time.Duration) (wire.ObjectMeta, error) {
	_, m, err := p.ObjectValue(ctx, job, h, timeout)
	return m, err
}

// initRemote connects the object store to the other nodes.
func (p *Plane) initRemote() {
	p.d.Objects.Fetch = p.fetchObject
	p.d.Objects.ReleaseRemote = func(loc objects.Location) {
		p.d.WG.Add(1)
		go func() {
			defer p.d.WG.Done()
			if p.d.Cluster.IsDead(loc.Node) {
				return // its objects went with it
			}
			ctx, cancel := context.WithTimeout(p.d.Ctx, 10*time.Second)
			defer cancel()
			if err := p.d.Peer.ReleaseObject(ctx, loc.API, loc.Job, loc.Handle); err != nil && p.d.Ctx.Err() == nil {
				p.d.Log.Warn("releasing an object on the node that holds it failed", "node", loc.Node, "handle", loc.Handle, "err", err)
			}
		}()
	}
}

// errLost marks a fetch that failed because the holding node is gone.
var errLost = errors.New("the node holding it is lost")

// fetchObject reads the value of object h (o.loc) from the node holding it. While that node is
// alive but does not answer, it tries again; once the cluster declares it dead (or it left the
// cluster), the value is rebuilt from o's lineage. The caller holds o's pull lock.
func (p *Plane) fetchObject(ctx context.Context, h int64, o *objects.Object) ([]byte, error) {
	// A guest's get passes the context of its call, which the host reuses once the call ends;
	// the HTTP transport may look at a request's context after the request. Fetch under a
	// context of our own, cancelled with the caller's.
	fctx, cancel := context.WithCancel(p.d.Ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	ctx = fctx
	backoff := 50 * time.Millisecond
	for {
		loc := p.d.Objects.LocationOf(o)
		if loc == nil { // only rebuild clears it, under o's pull lock, which the caller holds
			return nil, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("object %d has no location to fetch it from", h)}
		}
		data, err := p.pullFrom(ctx, h, o, *loc)
		if err == nil {
			return data, nil
		}
		var ae *abi.Error
		switch {
		case errors.As(err, &ae):
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, errLost) && !p.holderLost(loc.Node):
			p.d.Log.Warn("fetching an object failed; trying again", "node", loc.Node, "handle", loc.Handle, "err", err)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		data, err = p.rebuild(ctx, h, o, loc.Node)
		if err != nil || data != nil {
			return data, err // rebuilt here, or not at all
		}
	}
}

// holderLost says whether node id is gone for good: declared dead, or no longer a member.
func (p *Plane) holderLost(id string) bool {
	if p.d.Cluster.IsDead(id) {
		return true
	}
	_, err := p.d.Cluster.Member(id)
	return err != nil
}

// rebuild runs again the task that made object h, whose holder lost died, and records where its
// value now lives; when the task ran here, it keeps the value here and returns it. The caller
// holds o's pull lock.
func (p *Plane) rebuild(ctx context.Context, h int64, o *objects.Object, lost string) ([]byte, error) {
	lineage, _ := o.Lineage().(*tasks.Placed)
	if lineage == nil {
		return nil, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf(
			"object %d was lost with node %s and cannot be rebuilt: it was made by put or inside another task, not by a task this node placed", h, lost)}
	}
	t := *lineage
	p.rebuilt.Add(1)
	p.d.Log.Warn("object lost with its node; running its task again", "node", lost, "handle", h, "function", t.Function)
	first := p.d.Cluster.PlaceOrQueue(t.Demand, map[string]bool{lost: true})
	out, err := p.d.Tasks.ExecPlaced(ctx, first, t, map[string]bool{lost: true})
	if err != nil {
		return nil, fmt.Errorf("object %d was lost with node %s and rebuilding it failed: %w", h, lost, err)
	}
	if out.Loc != nil {
		p.d.Objects.Relocate(o, out.Loc)
		return nil, nil
	}
	// It ran here: keep the value here for good (non-nil, even when empty: the caller tells
	// "rebuilt here" from "rebuilt elsewhere" by it).
	if out.Data == nil {
		out.Data = []byte{}
	}
	if err := p.d.Objects.KeepRebuilt(h, o, out.Data); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// pullFrom fetches the value at loc, checks it against the sender's checksum and the one
// recorded when it was made, and makes local objects for the objects it refers to.
func (p *Plane) pullFrom(ctx context.Context, h int64, o *objects.Object, loc objects.Location) ([]byte, error) {
	v, err := p.d.Peer.Object(ctx, loc.API, loc.Job, loc.Handle, 30*time.Second, loc.Size)
	if we, answered := peer.IsAnswer(err); answered {
		switch we.Kind {
		case wire.KindNotFound:
			return nil, fmt.Errorf("%w: node %s no longer has object %d: %s", errLost, loc.Node, loc.Handle, we.Message)
		case wire.KindTooLarge:
			return nil, &abi.Error{Kind: abi.KindLimit, Message: fmt.Sprintf("object %d on node %s is over %d bytes", loc.Handle, loc.Node, maxRemoteResult)}
		}
		return nil, fmt.Errorf("node %s answered for object %d: %w", loc.Node, loc.Handle, err)
	}
	if err != nil {
		return nil, fmt.Errorf("object %d from node %s: %w", loc.Handle, loc.Node, err)
	}
	data, sum, refs := v.Value, v.Meta.Checksum, v.Meta.Refs
	if loc.Sum != "" && loc.Sum != sum {
		return nil, fmt.Errorf("object %d from node %s: checksum %s, but %s when it was made", loc.Handle, loc.Node, sum, loc.Sum)
	}
	p.pulledBytes.Add(int64(len(data)))
	if len(refs) == 0 {
		return data, nil
	}
	return rewriteRefs(data, p.d.Objects.MapRefs(o, loc, refs)), nil
}

// refMarker opens an object ref in JSON (objects.RefMarker).
var refMarker = []byte(objects.RefMarker)

// rewriteRefs returns b with every {"$ref": N} whose N is a key of m made {"$ref": m[N]}; other
// bytes are kept as they are.
func rewriteRefs(b []byte, m map[int64]int64) []byte {
	if len(m) == 0 || !bytes.Contains(b, refMarker) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	rest := b
	for {
		i := bytes.Index(rest, refMarker)
		if i < 0 {
			break
		}
		i += len(refMarker)
		out = append(out, rest[:i]...)
		rest = rest[i:]
		j := 0
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		k, n := j, int64(0)
		for ; k < len(rest) && rest[k] >= '0' && rest[k] <= '9' && k-j < 19; k++ {
			n = n*10 + int64(rest[k]-'0')
		}
		to, ok := m[n]
		if k == j || !ok || (k < len(rest) && rest[k] >= '0' && rest[k] <= '9') {
			continue
		}
		out = append(out, rest[:j]...)
		out = strconv.AppendInt(out, to, 10)
		rest = rest[k:]
	}
	return append(out, rest...)
}

// ShipRefs says where each of the objects a placed task reads lives, waiting for each to be
// ready. An argument whose task failed fails the task with its error; one whose holder died is
// rebuilt first.
func (p *Plane) ShipRefs(ctx context.Context, job string, refs []int64) ([]wire.RemoteRef, error) {
	out := make([]wire.RemoteRef, 0, len(refs))
	for _, r := range refs {
		o, err := p.d.Objects.Lookup(job, r)
		if err != nil {
			return nil, err
		}
		select {
		case <-o.Ready():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if o.Err() != nil {
			return nil, o.Err()
		}
		if loc := p.d.Objects.LocationOf(o); loc != nil && p.holderLost(loc.Node) {
			o.LockPull()
			if loc = p.d.Objects.LocationOf(o); loc != nil && p.holderLost(loc.Node) {
				_, err = p.rebuild(ctx, r, o, loc.Node)
			}
			o.UnlockPull()
			if err != nil {
				return nil, err
			}
		}
		if loc := p.d.Objects.LocationOf(o); loc != nil {
			out = append(out, wire.RemoteRef{Ref: r, Node: loc.Node, API: loc.API, Handle: loc.Handle, Job: loc.Job, Size: loc.Size, Checksum: loc.Sum})
			continue
		}
		out = append(out, wire.RemoteRef{Ref: r, Node: p.d.NodeID, API: p.d.APIURL, Handle: r, Job: job, Size: -1})
	}
	return out, nil
}

// TakeRefs makes the objects a task placed here reads, from where remote says they live, and
// returns the request with its refs (and the {"$ref": N} in its args) made this node's, and the
// objects made for it, which the caller releases once the task holds them.
func (p *Plane) TakeRefs(job string, req *abi.TaskRequest, remote []wire.RemoteRef) (*abi.TaskRequest, []int64, error) {
	byRef := map[int64]wire.RemoteRef{}
	for i, r := range remote {
		switch {
		case r.Ref <= 0 || r.Handle <= 0:
			return nil, nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("remote_refs[%d]: ref and handle must be positive", i)}
		case r.Node == "":
			return nil, nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("remote_refs[%d]: node is required", i)}
		}
		byRef[r.Ref] = r
	}
	m := map[int64]int64{}
	var made []int64
	fail := func(err error) (*abi.TaskRequest, []int64, error) {
		p.d.Objects.ReleaseAll(made)
		return nil, nil, err
	}
	refs := make([]int64, len(req.Refs))
	for i, ref := range req.Refs {
		r, ok := byRef[ref]
		if !ok {
			return fail(&abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("refs[%d] = %d: remote_refs does not say where it lives", i, ref)})
		}
		if h, ok := m[ref]; ok {
			refs[i] = h
			continue
		}
		if r.Node == p.d.NodeID {
			if _, err := p.d.Objects.Lookup(job, r.Handle); err != nil {
				return fail(err)
			}
			m[ref] = r.Handle // it lives here already
		} else {
			// The node's address comes from the cluster's member records, never from the
			// request: a fetch carries the cluster's token.
			rec, err := p.d.Cluster.Member(r.Node)
			if err != nil {
				return fail(&abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("refs[%d] = %d lives on node %s, which is not a member of this cluster", i, ref, r.Node)})
			}
			h := p.d.Objects.Remote(job, &objects.Location{Node: r.Node, API: rec.API, Job: wire.JobOr(r.Job), Handle: r.Handle, Size: r.Size, Sum: r.Checksum})
			made = append(made, h)
			m[ref] = h
		}
		refs[i] = m[ref]
	}
	out := *req
	out.Refs = refs
	if len(req.Args) > 0 {
		out.Args = rewriteRefs(req.Args, m)
	}
	return &out, made, nil
}

// heldResult is a result this node keeps for a task another node (its owner) placed here.
type heldResult struct {
	owner, job string
	handle     int64
}

// HoldFor records that object h of job is the result of a task node owner placed here, so that
// it is released if owner dies before releasing it.
func (p *Plane) HoldFor(owner, job string, h int64) {
	if owner == "" || owner == p.d.NodeID {
		return
	}
	p.mu.Lock()
	p.held = append(p.held, heldResult{owner: owner, job: wire.JobOr(job), handle: h})
	p.mu.Unlock()
}

// DropOrphans releases the results held for owners the cluster declared dead, and forgets those
// their owners released.
func (p *Plane) DropOrphans() {
	p.mu.Lock()
	held := p.held
	p.mu.Unlock()
	if len(held) == 0 {
		return
	}
	keep := make([]heldResult, 0, len(held))
	var orphans []heldResult
	dead := map[string]bool{} // per owner, read once
	for _, r := range held {
		d, ok := dead[r.owner]
		if !ok {
			d = p.d.Cluster.IsDead(r.owner)
			dead[r.owner] = d
		}
		switch {
		case !p.d.Objects.Has(r.job, r.handle):
		case d:
			orphans = append(orphans, r)
		default:
			keep = append(keep, r)
		}
	}
	p.mu.Lock()
	// Entries added since the snapshot stay.
	p.held = append(keep, p.held[len(held):]...)
	p.mu.Unlock()
	for _, r := range orphans {
		p.d.Objects.Release(r.job, r.handle)
	}
	if len(orphans) > 0 {
		p.d.Log.Warn("released the results of tasks whose owner died", "count", len(orphans))
	}
}

// CallActorReading calls method of actor id of job, for a call forwarded by the actor's owner
// that reads objects living elsewhere (remote, whose Ref fields are the handles its input uses): the call fetches
// them as it reads them, and holds them until it ends.
func (p *Plane) CallActorReading(job string, id int64, method string, input []byte, remote []wire.RemoteRef) (int64, error) {
	job = wire.JobOr(job)
	req := &abi.TaskRequest{Refs: make([]int64, len(remote))}
	for i, r := range remote {
		req.Refs[i] = r.Ref
	}
	if json.Valid(input) {
		req.Args = input
	} else {
		req.ArgsBytes = input
	}
	local, made, err := p.TakeRefs(job, req, remote)
	if err != nil {
		return 0, err
	}
	defer p.d.Objects.ReleaseAll(made) // the call holds them now, or failed to start
	in := []byte(local.Args)
	if local.ArgsBytes != nil {
		in = local.ArgsBytes
	}
	if err := p.d.Objects.Retain(job, local.Refs); err != nil {
		return 0, err
	}
	h, err := p.d.CallBorrowing(job, id, method, in, local.Refs)
	if err != nil {
		p.d.Objects.ReleaseAll(local.Refs)
	}
	return h, err
}
