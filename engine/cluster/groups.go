package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Placement groups (Ray's): bundles of resources reserved together on the cluster's nodes, all or
// none, so that work needing them all (a training job's workers, a pipeline's stages) starts
// together. The node that creates a group places its bundles (scheduler.PlaceBundles, on the live
// nodes' free resources) and commits the decision through raft; each node reserves the bundles
// placed on it out of its free resources and marks each one ready through raft. A task submitted
// with a group and a bundle index runs on that bundle's node and draws on the bundle's
// reservation, not on the node's free pool. Removing the group gives the reservations back.

// Keys: pg/<id> the group, pgr/<id>/<index> a bundle reserved by its node.
const (
	groupPrefix = "pg/"
	readyPrefix = "pgr/"
)

// GroupSpec is what a client asks for.
type GroupSpec struct {
	Name     string                `json:"name,omitempty"`
	Strategy string                `json:"strategy,omitempty"` // PACK (default), SPREAD, STRICT_PACK, STRICT_SPREAD
	Bundles  []scheduler.Resources `json:"bundles"`
}

// Group is a placed group.
type Group struct {
	ID       string                `json:"id"`
	Name     string                `json:"name,omitempty"`
	Strategy scheduler.Strategy    `json:"strategy"`
	Bundles  []scheduler.Resources `json:"bundles"`
	Nodes    []string              `json:"nodes"` // the node of each bundle
	Created  time.Time             `json:"created"`
	// Ready says, per bundle, whether its node has reserved it (filled on reads).
	Ready []bool `json:"ready"`
}

// maxBundles caps a group.
const maxBundles = 1024

// ErrGroupNotFound is returned for an unknown group.
var ErrGroupNotFound = wire.Wrap(wire.KindNotFound, errors.New("cluster: no such placement group"))

// Groups is a node's share of the placement groups: the bundles it holds reserved. It is safe
// for concurrent use.
type Groups struct {
	n        *Node
	pool     *tasks.Pool         // the node's resources, which reservations are taken from
	total    scheduler.Resources // what the node offers
	mu       sync.Mutex
	reserved map[string]map[int]*tasks.Pool // group -> bundle index -> the bundle's admission
	version  func() uint64
	seen     uint64
	pending  bool            // a bundle placed here waits for resources
	creating map[string]bool // groups this node reserved for before committing them
}

// NewGroups returns node n's placement groups, reserving bundles out of pool (the node's
// resources, total in all); Start starts reserving.
func NewGroups(n *Node, pool *tasks.Pool, total scheduler.Resources) *Groups {
	return &Groups{n: n, pool: pool, total: total, reserved: map[string]map[int]*tasks.Pool{}, creating: map[string]bool{},
		version: n.raft.KV().Watch(groupPrefix)}
}

// Start reserves the bundles placed on this node and gives back those of removed groups, on
// every's loop (the node's, which ends when it closes).
func (g *Groups) Start(every func(d time.Duration, f func())) {
	every(20*time.Millisecond, func() { g.reconcile(false) })
}

// reconcile reserves the bundles placed on this node that it does not hold yet and gives
// back those of removed groups. It does nothing unless the groups changed or a bundle still
// waits for resources (force runs it anyway).
func (g *Groups) reconcile(force bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := g.version()
	if !force && v == g.seen && !g.pending {
		return
	}
	g.seen, g.pending = v, false
	self := g.n.cfg.NodeID
	live := map[string]bool{}
	var marks []raftstore.Op
	g.n.raft.KV().View(func(r raftstore.Reader) error {
		return r.Scan([]byte(groupPrefix), func(_, val []byte) error {
			var pg Group
			if json.Unmarshal(val, &pg) != nil {
				return nil
			}
			live[pg.ID] = true
			for i, n := range pg.Nodes {
				if n != self || i >= len(pg.Bundles) {
					continue
				}
				if g.reserved[pg.ID][i] != nil {
					continue
				}
				if !g.pool.TryAcquire(pg.Bundles[i]) {
					g.pending = true // its resources are in use: try again on the next tick
					continue
				}
				if g.reserved[pg.ID] == nil {
					g.reserved[pg.ID] = map[int]*tasks.Pool{}
				}
				g.reserved[pg.ID][i] = tasks.NewPool(pg.Bundles[i])
				marks = append(marks, raftstore.Op{Kind: raftstore.OpSet, Key: []byte(readyKey(pg.ID, i)), Value: []byte(self)})
			}
			return nil
		})
	})
	for id, bs := range g.reserved {
		if live[id] || g.creating[id] {
			continue
		}
		for _, a := range bs {
			g.pool.Release(a.Total())
		}
		delete(g.reserved, id)
	}
	if len(marks) > 0 {
		g.n.deps.WG.Add(1)
		go func() {
			defer g.n.deps.WG.Done()
			g.n.raft.Apply(g.n.deps.Ctx, &raftstore.Command{Ops: marks})
		}()
	}
}

func groupKey(id string) string        { return groupPrefix + id }
func readyKey(id string, i int) string { return readyPrefix + id + "/" + strconv.Itoa(i) }

// Create places a group's bundles on the live nodes, all or none, and commits the
// decision. With wait it returns once every bundle's node has reserved it (or ctx ends).
func (g *Groups) Create(ctx context.Context, spec GroupSpec, wait bool) (*Group, error) {
	st, err := scheduler.ParseStrategy(spec.Strategy)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	if len(spec.Bundles) == 0 || len(spec.Bundles) > maxBundles {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("a placement group has 1 to %d bundles", maxBundles)}
	}
	for i, b := range spec.Bundles {
		for k, v := range b {
			if k == "" || v < 0 || v != v {
				return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("bundle %d: resource %q amount %v", i, k, v)}
			}
		}
	}
	nodes := []scheduler.Node{{ID: g.n.cfg.NodeID, Total: g.total.Clone(), Available: g.pool.Available()}}
	for _, v := range g.n.Nodes() {
		if v.ID != g.n.cfg.NodeID && !v.Dead {
			nodes = append(nodes, scheduler.Node{ID: v.ID, Total: v.Total, Available: v.Available})
		}
	}
	placed, err := scheduler.PlaceBundles(nodes, spec.Bundles, st)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	var raw [8]byte
	rand.Read(raw[:])
	pg := &Group{ID: "pg-" + hex.EncodeToString(raw[:]), Name: spec.Name, Strategy: st, Bundles: spec.Bundles, Nodes: placed, Created: time.Now().UTC()}
	rec, err := json.Marshal(pg)
	if err != nil {
		return nil, err
	}
	// The bundles placed on this node are reserved before the decision commits, and marked
	// ready in the same command; the others are reserved by their nodes when they apply it.
	ops := []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(groupKey(pg.ID)), Value: rec}}
	g.mu.Lock()
	mine := map[int]*tasks.Pool{}
	for i, n := range placed {
		if n != g.n.cfg.NodeID {
			continue
		}
		if !g.pool.TryAcquire(spec.Bundles[i]) {
			for _, a := range mine {
				g.pool.Release(a.Total())
			}
			g.mu.Unlock()
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("%s group of %d bundles cannot be placed now: not enough free resources", st, len(spec.Bundles))}
		}
		mine[i] = tasks.NewPool(spec.Bundles[i])
		ops = append(ops, raftstore.Op{Kind: raftstore.OpSet, Key: []byte(readyKey(pg.ID, i)), Value: []byte(g.n.cfg.NodeID)})
	}
	g.reserved[pg.ID], g.creating[pg.ID] = mine, true
	g.mu.Unlock()
	err = g.n.raft.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: []byte(groupKey(pg.ID)), Absent: true}}, Ops: ops})
	g.mu.Lock()
	delete(g.creating, pg.ID)
	if err != nil {
		for _, a := range mine {
			g.pool.Release(a.Total())
		}
		delete(g.reserved, pg.ID)
	}
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	g.n.CountPlaced(placed, spec.Bundles)
	if !wait {
		return g.Get(ctx, pg.ID)
	}
	// All or none: a bundle its node cannot reserve in time (its free resources went to other
	// work since the view was taken) undoes the whole group.
	wctx, cancel := context.WithTimeout(ctx, reserveTimeout)
	defer cancel()
	for {
		got, err := g.Get(wctx, pg.ID)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(got.Ready, false) {
			return got, nil
		}
		select {
		case <-wctx.Done():
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer rcancel()
			g.Remove(rctx, pg.ID)
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf(
				"placement group: bundles %v were not reserved by their nodes within %v (their resources are in use); the group is removed", notReady(got), reserveTimeout)}
		case <-time.After(time.Millisecond):
		}
	}
}

// reserveTimeout bounds how long a creation waits for the bundles' nodes to reserve them.
const reserveTimeout = 10 * time.Second

func notReady(pg *Group) []int {
	var out []int
	for i, r := range pg.Ready {
		if !r {
			out = append(out, i)
		}
	}
	return out
}

// Get reads a group and which of its bundles are reserved.
func (g *Groups) Get(ctx context.Context, id string) (*Group, error) {
	b, err := g.n.raft.KV().Get([]byte(groupKey(id)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrGroupNotFound, id)
	}
	var pg Group
	if err := json.Unmarshal(b, &pg); err != nil {
		return nil, err
	}
	pg.Ready = make([]bool, len(pg.Bundles))
	g.n.raft.KV().View(func(r raftstore.Reader) error {
		return r.Scan([]byte(readyPrefix+id+"/"), func(k, _ []byte) error {
			if i, err := strconv.Atoi(strings.TrimPrefix(string(k), readyPrefix+id+"/")); err == nil && i >= 0 && i < len(pg.Ready) {
				pg.Ready[i] = true
			}
			return nil
		})
	})
	return &pg, nil
}

// Remove removes a group; each node gives its bundles' reservations back. Tasks
// running in a bundle finish; new ones are refused.
func (g *Groups) Remove(ctx context.Context, id string) error {
	pg, err := g.Get(ctx, id)
	if err != nil {
		return err
	}
	ops := []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(groupKey(id))}}
	for i := range pg.Bundles {
		ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: []byte(readyKey(id, i))})
	}
	if err := g.n.raft.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: []byte(groupKey(id)), Exists: true}}, Ops: ops}); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			return fmt.Errorf("%w: %s", ErrGroupNotFound, id)
		}
		return err
	}
	g.reconcile(true)
	return nil
}

// Pool returns the resources of bundle i of group id, reserved on this node.
func (g *Groups) Pool(id string, i int) (*tasks.Pool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.reserved[id][i]; a != nil {
		return a, nil
	}
	return nil, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("bundle %d of placement group %s is not reserved on node %s yet", i, id, g.n.cfg.NodeID)}
}
