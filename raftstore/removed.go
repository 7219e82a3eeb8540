package raftstore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// ErrRemoved means this node was removed from the cluster: it no longer receives the log, so a
// write or a linearizable read through it could never complete. It is final for this run of the
// node; to take part again, the node must start afresh (an empty data directory) and join.
var ErrRemoved = errors.New("raftstore: this node was removed from the cluster")

// errStopped ends a wait cut short by the node's removal.
var errStopped = errors.New("stopped")

// removal is what a node knows of its own removal. Its zero value knows nothing; removed is
// made by OpenNode.
type removal struct {
	removed   chan struct{} // closed once the node learns it was removed
	why       string        // how it learned it; set before removed is closed
	wasMember bool          // the configuration listed this node at some point of this run
	closing   bool          // Close has begun: raft shutting down is no news
}

// MarkRemoved records that this node was removed from the cluster, for the reason given (the
// leader said so, the configuration no longer lists it). From then on, writes and linearizable
// reads through it fail at once with ErrRemoved, and those waiting are woken with it. It reports
// whether this call was the one that recorded it. It is safe for concurrent use.
func (n *Node) MarkRemoved(why string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.rm.removed:
		return false
	default:
	}
	n.rm.why = why
	close(n.rm.removed)
	return true
}

// Removed says whether this node knows it was removed from the cluster, and how it learned it.
func (n *Node) Removed() (bool, string) {
	select {
	case <-n.rm.removed:
		n.mu.Lock()
		defer n.mu.Unlock()
		return true, n.rm.why
	default:
		return false, ""
	}
}

// CheckRemoved looks for this node's removal in the cluster's configuration as this node holds
// it: once the node has seen itself listed during this run, a configuration without it (or raft
// having shut itself down, which it does on a leader that removed itself) means it was removed,
// and CheckRemoved records it as MarkRemoved does. A node that never received its removal (it
// was down or cut off then) learns it from the leader instead (see MarkRemoved). It returns
// whether the node knows it was removed.
func (n *Node) CheckRemoved() bool {
	if gone, _ := n.Removed(); gone {
		return true
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.mu.Lock()
		closing := n.rm.closing
		n.mu.Unlock()
		if errors.Is(err, raft.ErrRaftShutdown) && !closing {
			return n.MarkRemoved("raft shut down after this node, as leader, committed its own removal")
		}
		return false
	}
	servers := f.Configuration().Servers
	listed := slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.cfg.ID })
	n.mu.Lock()
	was := n.rm.wasMember
	if listed {
		n.rm.wasMember = true
	}
	n.mu.Unlock()
	if !listed && was && len(servers) > 0 {
		n.MarkRemoved("the cluster's configuration no longer lists this node")
		return true
	}
	return false
}

// removedErr is ErrRemoved with how the node learned it, or nil while it was not removed.
func (n *Node) removedErr() error {
	if gone, why := n.Removed(); gone {
		return fmt.Errorf("%w (%s); it answers no writes or linearizable reads: start it afresh and join again to take part", ErrRemoved, why)
	}
	return nil
}
