package engine

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Liveness and placement across nodes, as in Ray: every node heartbeats its resources to the
// leader, which keeps liveness in memory and commits only the decision "node dead" (and its
// reversal) through raft. The heartbeat's answer is the leader's view of every live node, which
// a node uses to place the tasks submitted to it: where they fit now, spreading load, the node
// itself first when it has room. The node that accepted a task owns it: it keeps its result
// object, and when the node running the task dies it runs the task again elsewhere
// (at-least-once execution, exactly-once result).

// deadPrefix holds the committed decisions "node dead", by node id.
const deadPrefix = "cluster/dead/"

// liveness is the leader's memory of heartbeats, and every node's copy of the leader's view.
type liveness struct {
	mu        sync.Mutex
	seen      map[string]time.Time
	last      map[string]wire.Heartbeat
	leadSince time.Time // when this node last became leader; no node is declared dead before DeadAfter from it
	view      []wire.NodeView
	viewAt    time.Time
	peers     atomic.Bool // the view holds another live node: placement is worth a look

	boot string // this run of the node, random

	peer *peer.Client // this node's client of the other nodes' peer routes

	rebuilt     atomic.Int64 // objects rebuilt from lineage after their node was lost
	pulledBytes atomic.Int64 // bytes of objects fetched from other nodes
	held        []heldResult // results kept for tasks other nodes placed here (under mu)
}

func (c *ClusterConfig) intervals() (beat, dead time.Duration) {
	beat, dead = c.HeartbeatInterval, c.DeadAfter
	if beat <= 0 {
		beat = time.Second
	}
	if dead <= 0 {
		dead = 10 * time.Second
	}
	return beat, dead
}

// startLiveness runs the heartbeat loop of every node and the leader's monitor.
func (e *Engine) startLiveness() {
	e.live.seen, e.live.last = map[string]time.Time{}, map[string]wire.Heartbeat{}
	var b [8]byte
	crand.Read(b[:])
	e.live.boot = hex.EncodeToString(b[:])
	e.initRemote()
	beat, _ := e.cfg.Cluster.intervals()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(beat)
		defer t.Stop()
		for {
			e.heartbeat()
			e.monitor()
			e.dropOrphans()
			select {
			case <-e.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (e *Engine) myHeartbeat() wire.Heartbeat {
	return wire.Heartbeat{ID: e.cfg.Cluster.NodeID, API: e.cfg.Cluster.APIURL, Total: e.cfg.Resources.Clone(),
		Available: e.adm.Available(), TasksRun: e.tasks.Counts().Ran}
}

// heartbeat sends this node's heartbeat to the leader (or records it, on the leader) and keeps
// the view the leader answers with.
func (e *Engine) heartbeat() {
	hb := e.myHeartbeat()
	if e.node.IsLeader() {
		e.live.mu.Lock()
		if e.live.leadSince.IsZero() {
			e.live.leadSince = time.Now()
		}
		e.live.mu.Unlock()
		e.Heartbeat(e.ctx, hb)
		return
	}
	e.live.mu.Lock()
	e.live.leadSince = time.Time{}
	e.live.mu.Unlock()
	api := e.LeaderAPI()
	if api == "" {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	defer cancel()
	view, err := e.live.peer.Heartbeat(ctx, api, &hb)
	if err != nil {
		return
	}
	e.setView(view)
}

// setView keeps the leader's view of the live nodes.
func (e *Engine) setView(view []wire.NodeView) {
	peers := false
	for _, v := range view {
		peers = peers || (v.ID != e.nodeID() && !v.Dead)
	}
	e.live.mu.Lock()
	// A copy: the caller may still read view (the leader answers it), and placement writes
	// its own copy's free resources.
	e.live.view, e.live.viewAt = slices.Clone(view), time.Now()
	e.live.mu.Unlock()
	e.live.peers.Store(peers)
}

// Heartbeat records a node's heartbeat on the leader and returns the leader's view of the live
// nodes. A node declared dead that heartbeats again is declared alive.
func (e *Engine) Heartbeat(ctx context.Context, hb wire.Heartbeat) ([]wire.NodeView, error) {
	if !e.node.IsLeader() {
		return nil, fmt.Errorf("engine: heartbeat: %w", errNotLeader)
	}
	e.live.mu.Lock()
	e.live.seen[hb.ID] = time.Now()
	e.live.last[hb.ID] = hb
	e.live.mu.Unlock()
	if _, err := e.node.KV().Get([]byte(deadPrefix + hb.ID)); err == nil {
		e.node.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(deadPrefix + hb.ID)}}})
	}
	view := e.leaderView()
	e.setView(view)
	return view, nil
}

var errNotLeader = errors.New("not the leader")

// leaderView lists the nodes that heartbeat, with how long ago, and whether they are dead.
func (e *Engine) leaderView() []wire.NodeView {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	out := make([]wire.NodeView, 0, len(e.live.last))
	for id, hb := range e.live.last {
		_, err := e.node.KV().Get([]byte(deadPrefix + id))
		out = append(out, wire.NodeView{Heartbeat: hb, SeenAgoMs: time.Since(e.live.seen[id]).Milliseconds(), Dead: err == nil})
	}
	slices.SortFunc(out, func(a, b wire.NodeView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// monitor, on the leader, declares dead the members not heard from for DeadAfter.
func (e *Engine) monitor() {
	if !e.node.IsLeader() {
		return
	}
	_, deadAfter := e.cfg.Cluster.intervals()
	members, err := e.node.Members()
	if err != nil {
		return
	}
	e.live.mu.Lock()
	since := e.live.leadSince
	var dead []string
	for _, m := range members {
		seen, ok := e.live.seen[m.ID]
		if !ok {
			seen = since // not heard from since this node leads
		}
		if time.Since(seen) > deadAfter && time.Since(since) > deadAfter {
			dead = append(dead, m.ID)
		}
	}
	e.live.mu.Unlock()
	for _, id := range dead {
		if _, err := e.node.KV().Get([]byte(deadPrefix + id)); err == nil {
			continue
		}
		e.log.Warn("node declared dead", "node", id, "silent_for", deadAfter)
		err := e.node.Apply(e.ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(deadPrefix + id), Value: []byte(time.Now().UTC().Format(time.RFC3339))}}})
		if err == nil && id != e.nodeID() {
			e.workflows.Adopt(id)
			e.dropNames(e.ctx, id)
		}
	}
}

// isDead says whether the cluster has declared node id dead.
func (e *Engine) isDead(id string) bool {
	_, err := e.node.KV().Get([]byte(deadPrefix + id))
	return err == nil
}

// ClusterNodes returns this node's latest view of the live nodes (the leader's, from the last
// heartbeat).
func (e *Engine) ClusterNodes() []wire.NodeView {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	return slices.Clone(e.live.view)
}

// placeTask picks the node for a task with demand d: "" for this node. It places elsewhere only
// when this node lacks room now and another live node (seen within two heartbeats) has it.
func (e *Engine) placeTask(d scheduler.Resources, exclude map[string]bool) string {
	self := e.cfg.Cluster.NodeID
	if !exclude[self] && e.adm.Available().Fits(d) {
		return ""
	}
	beat, _ := e.cfg.Cluster.intervals()
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	if time.Since(e.live.viewAt) > 3*beat {
		return ""
	}
	var nodes []scheduler.Node
	for _, v := range e.live.view {
		if v.ID == self || v.Dead || exclude[v.ID] || v.API == "" || v.SeenAgoMs > 3*beat.Milliseconds() {
			continue
		}
		nodes = append(nodes, scheduler.Node{ID: v.ID, Total: v.Total, Available: v.Available})
	}
	id, err := scheduler.Place(nodes, d)
	if err != nil || id == "" {
		return ""
	}
	e.countPlacedLocked(id, d)
	return id
}

// countPlacedLocked counts a placement of d on node id against it until its next heartbeat says
// how busy it is, so a burst of tasks spreads instead of piling onto the node that looked
// freest. The caller holds e.live.mu.
func (e *Engine) countPlacedLocked(id string, d scheduler.Resources) {
	for i := range e.live.view {
		if v := &e.live.view[i]; v.ID == id {
			avail := scheduler.Resources(v.Available).Clone()
			for k, amt := range d {
				avail[k] -= amt
			}
			v.Available = avail
		}
	}
}

// placeOrQueue is placeTask for a task that may never fit on this node: when none has room
// now, such a task goes to a live node that can ever hold it (the one with the most room, in
// turns), to wait there, rather than be refused here. "" means here (or nowhere: this node
// says why when it admits it).
func (e *Engine) placeOrQueue(d scheduler.Resources, exclude map[string]bool) string {
	if node := e.placeTask(d, exclude); node != "" {
		return node
	}
	if e.adm.Check(d) == nil && !exclude[e.nodeID()] {
		return ""
	}
	beat, _ := e.cfg.Cluster.intervals()
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	best, bestScore := "", -1.0
	for _, v := range e.live.view {
		if v.ID == e.nodeID() || v.Dead || exclude[v.ID] || v.API == "" || v.SeenAgoMs > 3*beat.Milliseconds() || !scheduler.Resources(v.Total).Fits(d) {
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
		e.countPlacedLocked(best, d)
	}
	return best
}

// runOn places t on node (its peer routes) and waits there until its result is ready, which
// stays there: runOn returns where. An error that is not an *abi.Error means the node failed (unreachable,
// dead): the caller places the task again.
func (e *Engine) runOn(ctx context.Context, node string, t *tasks.Placed) (*objects.Location, error) {
	rec, err := e.member(node)
	if err != nil {
		return nil, err
	}
	api := strings.TrimRight(rec.API, "/")
	remote, err := e.shipRefs(ctx, t.Job, t.Refs)
	if err != nil {
		return nil, asABIError(err)
	}
	sub, err := e.live.peer.SubmitTask(ctx, api, &wire.PlacedTask{
		Task: abi.TaskRequest{Module: t.Digest, Function: t.Function, Args: t.Args, ArgsBytes: t.ArgsBytes, Refs: t.Refs, TimeoutMs: t.TimeoutMs,
			MaxRetries: &t.Retries, RetryGuestErrors: t.RetryGuest},
		Job: t.Job, Grants: t.Grants, PlacementGroup: t.Group, BundleIndex: t.Bundle, RemoteRefs: remote, Owner: e.nodeID(),
		Applied: e.node.KV().Applied()})
	if err != nil {
		return nil, remoteError(err)
	}
	loc := &objects.Location{Node: node, API: api, Job: sub.Job, Handle: sub.Ref, Size: -1, Owned: true}
	release := func() { e.objects.ReleaseRemote(*loc) }
	// Wait for the result, a few seconds at a time, so a node that dies is noticed.
	for {
		if e.isDead(node) {
			return nil, fmt.Errorf("node %s was declared dead", node)
		}
		if ctx.Err() != nil {
			// Cancelled: cancel it there too, and let it go.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			e.live.peer.CancelTask(cctx, api, sub.Job, sub.Ref)
			cancel()
			release()
			return nil, ctx.Err()
		}
		m, err := e.live.peer.ObjectMeta(ctx, api, sub.Job, sub.Ref, 2*time.Second)
		we, answered := peer.IsAnswer(err)
		switch {
		case err == nil:
			loc.Size, loc.Sum = m.Size, m.Checksum
			return loc, nil
		case answered && we.Kind == wire.KindNotReady:
			continue
		case !answered && ctx.Err() != nil:
			continue
		case !answered:
			// The task runs again elsewhere: if this node is only out of reach for a while, the
			// result it may still make there is not wanted (released when the node answers).
			release()
			return nil, err
		default:
			err := remoteError(err)
			var ae *abi.Error
			if errors.As(err, &ae) {
				release() // the task's error: nothing to keep there
			}
			return nil, err
		}
	}
}

// remoteError turns another node's error answer into the task's *abi.Error when it is the
// task's outcome (a 4xx: the node ran or refused the task), or into a node failure (5xx, 421,
// no answer), which the owner answers by placing the task again.
func remoteError(err error) error {
	we, answered := peer.IsAnswer(err)
	if !answered {
		return err
	}
	if status := we.Kind.Status(); status >= 500 || status == http.StatusMisdirectedRequest {
		return fmt.Errorf("node answered %d: %s", status, we.Message)
	}
	return &abi.Error{Kind: abi.ErrorKind(we.Kind), Message: we.Message, Limit: we.Limit, Code: we.Code}
}

// maxRemoteResult caps a result fetched from another node.
const maxRemoteResult = 1 << 30
