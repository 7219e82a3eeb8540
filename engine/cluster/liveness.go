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

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// DeadPrefix holds the committed decisions "node dead", by node id.
const DeadPrefix = "cluster/dead/"

// liveness is the leader's memory of heartbeats, and every node's copy of the leader's view.
//
// The leader declares a node dead only on silence it has watched itself, for DeadAfter, in its
// current term: its watch starts when it finds itself leader in a new term (every node's clock
// starts there, not at heartbeats an earlier term recorded) and starts again when its own loop
// stalled (the process was paused or starved: it watched nothing meanwhile). Before each round of
// declarations it confirms through raft that it still leads (VerifyLeader), and it writes them
// only as leader of that term (ApplyAsLeader), so a deposed leader, resumed, declares nothing.
// It never declares itself.
type liveness struct {
	mu       sync.Mutex
	seen     map[string]time.Time // when the leader last heard each node, in its term; never before watched
	last     map[string]wire.Heartbeat
	term     uint64    // the term the watch belongs to; 0 while this node does not lead
	watched  time.Time // since when this leader has watched, without a stall
	lastTick time.Time // the monitor's previous run, to notice its own stalls
	view     []wire.NodeView
	viewAt   time.Time
	peers    atomic.Bool  // the view holds another live node: placement is worth a look
	asked    atomic.Int64 // turns of someMemberAPI
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
	if n.checkRemoved() {
		return
	}
	hb := n.myHeartbeat()
	if n.raft.IsLeader() {
		n.Heartbeat(n.deps.Ctx, hb)
		return
	}
	api := n.LeaderAPI()
	if api == "" {
		// No leader known: ask a member, which names the leader (or, being the leader, answers).
		// A node removed while it was down or cut off learns it so.
		if api = n.someMemberAPI(); api == "" {
			return
		}
	}
	ctx, cancel := context.WithTimeout(n.deps.Ctx, 2*time.Second)
	defer cancel()
	view, err := n.peer.Heartbeat(ctx, api, &hb)
	if we, answered := peer.IsAnswer(err); answered && we.Kind == wire.KindNotLeader && we.LeaderAPI != "" && we.LeaderAPI != api {
		view, err = n.peer.Heartbeat(ctx, we.LeaderAPI, &hb)
	}
	if we, answered := peer.IsAnswer(err); answered && we.Kind == wire.KindRemoved {
		n.markRemoved("the leader says so: " + we.Message)
		return
	}
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
//
// A node the configuration no longer lists gets ErrRemoved (kind removed_from_cluster), once this
// node has confirmed that it leads: the heartbeat of a removed node is how it learns of its
// removal when it missed the entry. Its heartbeat is not recorded, so no work is placed on it.
func (n *Node) Heartbeat(ctx context.Context, hb wire.Heartbeat) ([]wire.NodeView, error) {
	if !n.raft.IsLeader() {
		return nil, fmt.Errorf("cluster: heartbeat: %w", errNotLeader)
	}
	if hb.ID != n.cfg.NodeID && !n.isMember(hb.ID) {
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.raft.VerifyLeader(vctx, n.raft.Term())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cluster: heartbeat of %s: %w", hb.ID, errNotLeader)
		}
		if !n.isMember(hb.ID) {
			return nil, fmt.Errorf("%w: node %s is not in the cluster's configuration (removed, or never joined)", ErrRemoved, hb.ID)
		}
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

// ErrRemoved is the leader's answer to the heartbeat of a node its configuration does not list.
var ErrRemoved = wire.Wrap(wire.KindRemoved, errors.New("cluster: removed from the cluster"))

// checkRemoved looks for this node's removal in the configuration it holds (see
// raftstore.Node.CheckRemoved) and says whether it knows it was removed.
func (n *Node) checkRemoved() bool {
	if gone, _ := n.raft.Removed(); gone {
		return true
	}
	if n.raft.CheckRemoved() {
		_, why := n.raft.Removed()
		n.removedLog(why)
		return true
	}
	return false
}

// markRemoved records that this node was removed, as the leader said.
func (n *Node) markRemoved(why string) {
	if n.raft.MarkRemoved(why) {
		n.removedLog(why)
	}
}

func (n *Node) removedLog(why string) {
	n.log.Error("this node was removed from the cluster: it refuses writes and linearizable reads (removed_from_cluster); start it with an empty data directory and join again to take part",
		"node", n.cfg.NodeID, "how", why)
}

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

// monitor, on the leader, declares dead the members it has watched stay silent for DeadAfter in
// its term (see liveness).
func (n *Node) monitor() {
	if !n.raft.IsLeader() {
		n.live.mu.Lock()
		n.live.term = 0
		n.live.mu.Unlock()
		return
	}
	term := n.raft.Term()
	members, err := n.raft.Members()
	if err != nil {
		return
	}
	dead := n.live.silent(n.cfg.NodeID, term, members, time.Now(), n.cfg)
	var todo []string
	for _, id := range dead {
		if !n.IsDead(id) {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return
	}
	// Confirm the office before acting on it: a leader that was paused or cut off has been
	// replaced, and its watch says nothing of the others.
	ctx, cancel := context.WithTimeout(n.deps.Ctx, 5*time.Second)
	defer cancel()
	if err := n.raft.VerifyLeader(ctx, term); err != nil {
		n.log.Info("not declaring silent nodes dead: leadership not confirmed", "nodes", todo, "err", err)
		return
	}
	_, deadAfter := n.cfg.Intervals()
	for _, id := range todo {
		err := n.raft.ApplyAsLeader(ctx, term, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(DeadPrefix + id), Value: []byte(time.Now().UTC().Format(time.RFC3339))}}})
		if err != nil {
			n.log.Info("not declaring a silent node dead", "node", id, "err", err)
			return
		}
		n.log.Warn("node declared dead", "node", id, "silent_for", deadAfter, "term", term)
		if n.deps.OnDead != nil {
			n.deps.OnDead(id)
		}
	}
}

// silent returns the members other than self that this leader, in term, has watched stay silent
// for DeadAfter at now. It starts a new watch when term is new or when the previous run is
// longer ago than half of DeadAfter (and at least three heartbeats): this node was paused or
// starved, and saw nothing meanwhile. It forgets the nodes no longer members. Pure but for the
// liveness state it keeps.
func (l *liveness) silent(self string, term uint64, members []raftstore.Member, now time.Time, cfg Config) []string {
	beat, deadAfter := cfg.Intervals()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term != term || now.Sub(l.lastTick) > max(deadAfter/2, 3*beat) {
		l.term, l.watched = term, now
		clear(l.seen)
	}
	l.lastTick = now
	listed := map[string]bool{}
	var dead []string
	for _, m := range members {
		listed[m.ID] = true
		if m.ID == self {
			continue
		}
		heard := l.watched
		if t, ok := l.seen[m.ID]; ok && t.After(heard) {
			heard = t
		}
		if now.Sub(heard) > deadAfter {
			dead = append(dead, m.ID)
		}
	}
	for id := range l.last {
		if !listed[id] {
			delete(l.last, id)
			delete(l.seen, id)
		}
	}
	return dead
}

// isMember says whether the configuration, as this node holds it, lists node id.
func (n *Node) isMember(id string) bool {
	members, err := n.raft.Members()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(members, func(m raftstore.Member) bool { return m.ID == id })
}

// someMemberAPI returns the API URL of a member other than this node, in turns, or "".
func (n *Node) someMemberAPI() string {
	members, err := n.raft.Members()
	if err != nil {
		return ""
	}
	var apis []string
	for _, m := range members {
		if m.ID == n.cfg.NodeID {
			continue
		}
		if rec, err := n.Member(m.ID); err == nil && rec.API != "" {
			apis = append(apis, rec.API)
		}
	}
	if len(apis) == 0 {
		return ""
	}
	return apis[int(n.live.asked.Add(1))%len(apis)]
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
