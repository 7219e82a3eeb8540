package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// DeadPrefix holds the committed decisions "node dead", by node id.
const DeadPrefix = "cluster/dead/"

// liveness is the leader's memory of heartbeats, and every node's copy of the leader's view.
type liveness struct {
	mu        sync.Mutex
	seen      map[string]time.Time
	last      map[string]wire.Heartbeat
	leadSince time.Time // when this node last became leader; no node is declared dead before DeadAfter from it
	view      []wire.NodeView
	viewAt    time.Time
	peers     atomic.Bool // the view holds another live node: placement is worth a look
}

// startLiveness runs the heartbeat loop of every node and the leader's monitor.
func (n *Node) startLiveness() {
	beat, _ := n.cfg.Intervals()
	n.deps.WG.Add(1)
	go func() {
		defer n.deps.WG.Done()
		t := time.NewTicker(beat)
		defer t.Stop()
		for {
			n.heartbeat()
			n.monitor()
			if n.deps.EveryBeat != nil {
				n.deps.EveryBeat()
			}
			select {
			case <-n.deps.Ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (n *Node) myHeartbeat() wire.Heartbeat {
	return wire.Heartbeat{ID: n.cfg.NodeID, API: n.cfg.APIURL, Total: n.deps.Total.Clone(),
		Available: n.deps.Available(), TasksRun: n.deps.Counters().TasksRun}
}

// heartbeat sends this node's heartbeat to the leader (or records it, on the leader) and keeps
// the view the leader answers with.
func (n *Node) heartbeat() {
	hb := n.myHeartbeat()
	if n.raft.IsLeader() {
		n.live.mu.Lock()
		if n.live.leadSince.IsZero() {
			n.live.leadSince = time.Now()
		}
		n.live.mu.Unlock()
		n.Heartbeat(n.deps.Ctx, hb)
		return
	}
	n.live.mu.Lock()
	n.live.leadSince = time.Time{}
	n.live.mu.Unlock()
	api := n.LeaderAPI()
	if api == "" {
		return
	}
	ctx, cancel := context.WithTimeout(n.deps.Ctx, 2*time.Second)
	defer cancel()
	view, err := n.peer.Heartbeat(ctx, api, &hb)
	if err != nil {
		return
	}
	n.setView(view)
}

// setView keeps the leader's view of the live nodes.
func (n *Node) setView(view []wire.NodeView) {
	peers := false
	for _, v := range view {
		peers = peers || (v.ID != n.cfg.NodeID && !v.Dead)
	}
	n.live.mu.Lock()
	// A copy: the caller may still read view (the leader answers it), and placement writes
	// its own copy's free resources.
	n.live.view, n.live.viewAt = slices.Clone(view), time.Now()
	n.live.mu.Unlock()
	n.live.peers.Store(peers)
}

// Heartbeat records a node's heartbeat on the leader and returns the leader's view of the live
// nodes. A node declared dead that heartbeats again is declared alive. On a follower it fails:
// heartbeats go to the leader (LeaderAPI).
func (n *Node) Heartbeat(ctx context.Context, hb wire.Heartbeat) ([]wire.NodeView, error) {
	if !n.raft.IsLeader() {
		return nil, fmt.Errorf("cluster: heartbeat: %w", errNotLeader)
	}
	n.live.mu.Lock()
	n.live.seen[hb.ID] = time.Now()
	n.live.last[hb.ID] = hb
	n.live.mu.Unlock()
	if _, err := n.raft.KV().Get([]byte(DeadPrefix + hb.ID)); err == nil {
		n.raft.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(DeadPrefix + hb.ID)}}})
	}
	view := n.leaderView()
	n.setView(view)
	return view, nil
}

var errNotLeader = errors.New("not the leader")

// leaderView lists the nodes that heartbeat, with how long ago, and whether they are dead.
func (n *Node) leaderView() []wire.NodeView {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	out := make([]wire.NodeView, 0, len(n.live.last))
	for id, hb := range n.live.last {
		_, err := n.raft.KV().Get([]byte(DeadPrefix + id))
		out = append(out, wire.NodeView{Heartbeat: hb, SeenAgoMs: time.Since(n.live.seen[id]).Milliseconds(), Dead: err == nil})
	}
	slices.SortFunc(out, func(a, b wire.NodeView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// monitor, on the leader, declares dead the members not heard from for DeadAfter.
func (n *Node) monitor() {
	if !n.raft.IsLeader() {
		return
	}
	_, deadAfter := n.cfg.Intervals()
	members, err := n.raft.Members()
	if err != nil {
		return
	}
	n.live.mu.Lock()
	since := n.live.leadSince
	var dead []string
	for _, m := range members {
		seen, ok := n.live.seen[m.ID]
		if !ok {
			seen = since // not heard from since this node leads
		}
		if time.Since(seen) > deadAfter && time.Since(since) > deadAfter {
			dead = append(dead, m.ID)
		}
	}
	n.live.mu.Unlock()
	for _, id := range dead {
		if _, err := n.raft.KV().Get([]byte(DeadPrefix + id)); err == nil {
			continue
		}
		n.log.Warn("node declared dead", "node", id, "silent_for", deadAfter)
		err := n.raft.Apply(n.deps.Ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(DeadPrefix + id), Value: []byte(time.Now().UTC().Format(time.RFC3339))}}})
		if err == nil && id != n.cfg.NodeID && n.deps.OnDead != nil {
			n.deps.OnDead(id)
		}
	}
}

// IsDead says whether the cluster has declared node id dead.
func (n *Node) IsDead(id string) bool {
	_, err := n.raft.KV().Get([]byte(DeadPrefix + id))
	return err == nil
}

// Peers says whether the leader's last view holds another live node: only then is placing
// work elsewhere worth a look.
func (n *Node) Peers() bool { return n.live.peers.Load() }

// Nodes returns this node's latest view of the live nodes (the leader's, from the last
// heartbeat).
func (n *Node) Nodes() []wire.NodeView {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	return slices.Clone(n.live.view)
}

// Place picks the node for a task with demand d: "" for this node. It places elsewhere only
// when this node lacks room now and another live node (seen within two heartbeats) has it.
// exclude names nodes not to pick (this node's id included).
func (n *Node) Place(d scheduler.Resources, exclude map[string]bool) string {
	self := n.cfg.NodeID
	if !exclude[self] && n.deps.Available().Fits(d) {
		return ""
	}
	beat, _ := n.cfg.Intervals()
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	if time.Since(n.live.viewAt) > 3*beat {
		return ""
	}
	var nodes []scheduler.Node
	for _, v := range n.live.view {
		if v.ID == self || v.Dead || exclude[v.ID] || v.API == "" || v.SeenAgoMs > 3*beat.Milliseconds() {
			continue
		}
		nodes = append(nodes, scheduler.Node{ID: v.ID, Total: v.Total, Available: v.Available})
	}
	id, err := scheduler.Place(nodes, d)
	if err != nil || id == "" {
		return ""
	}
	n.countPlacedLocked(id, d)
	return id
}

// countPlacedLocked counts a placement of d on node id against it until its next heartbeat says
// how busy it is, so a burst of tasks spreads instead of piling onto the node that looked
// freest. The caller holds n.live.mu.
func (n *Node) countPlacedLocked(id string, d scheduler.Resources) {
	for i := range n.live.view {
		if v := &n.live.view[i]; v.ID == id {
			avail := scheduler.Resources(v.Available).Clone()
			for k, amt := range d {
				avail[k] -= amt
			}
			v.Available = avail
		}
	}
}

// CountPlaced takes the bundles placed on other nodes (bundles[i] on nodes[i]) off this node's
// view of their free resources until their next heartbeat, so that placement groups created in
// a burst do not all count on the same free resources. Bundles on this node are skipped.
func (n *Node) CountPlaced(nodes []string, bundles []scheduler.Resources) {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	for i, id := range nodes {
		if id != n.cfg.NodeID {
			n.countPlacedLocked(id, bundles[i])
		}
	}
}

// PlaceOrQueue is Place for a task that may never fit on this node: when none has room now,
// such a task goes to a live node that can ever hold it (the one with the most room, in turns),
// to wait there, rather than be refused here. "" means here (or nowhere: this node says why
// when it admits it).
func (n *Node) PlaceOrQueue(d scheduler.Resources, exclude map[string]bool) string {
	if node := n.Place(d, exclude); node != "" {
		return node
	}
	self := n.cfg.NodeID
	if n.deps.CanHold(d) && !exclude[self] {
		return ""
	}
	beat, _ := n.cfg.Intervals()
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	best, bestScore := "", -1.0
	for _, v := range n.live.view {
		if v.ID == self || v.Dead || exclude[v.ID] || v.API == "" || v.SeenAgoMs > 3*beat.Milliseconds() || !scheduler.Resources(v.Total).Fits(d) {
			continue
		}
		// Room left after this task, summed over what it asks for (negative while busy); a
		// task queued on a node counts against it until its next heartbeat, so a burst spreads.
		score := 0.0
		for k, amt := range d {
			score += v.Available[k] - amt
		}
		if best == "" || score > bestScore {
			best, bestScore = v.ID, score
		}
	}
	if best != "" {
		n.countPlacedLocked(best, d)
	}
	return best
}
