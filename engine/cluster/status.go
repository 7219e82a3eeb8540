package cluster

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// NodeStatus is what a node says of itself.
type NodeStatus struct {
	raftstore.Stats
	API        string `json:"api"`
	StateHash  string `json:"state_hash"`
	StateKeys  int    `json:"state_keys"`
	Goroutines int    `json:"goroutines"`
	Counters
}

// Self reports this node's raft state, the hash of its replicated state and its counters.
func (n *Node) Self() NodeStatus {
	h, k, _ := n.raft.KV().Hash()
	return NodeStatus{Stats: n.raft.Stats(), API: n.cfg.APIURL, StateHash: h, StateKeys: k, Goroutines: runtime.NumGoroutine(),
		Counters: n.deps.Counters()}
}

// Wire is what the node says of itself to a peer.
func (s NodeStatus) Wire() wire.NodeStatus {
	return wire.NodeStatus{ID: s.ID, State: s.State, Leader: s.Leader, Term: s.Term, CommitIndex: s.CommitIndex,
		AppliedIndex: s.AppliedIndex, API: s.API, StateHash: s.StateHash, StateKeys: s.StateKeys, Goroutines: s.Goroutines,
		TasksRun: s.TasksRun, PlacedOut: s.PlacedOut, Retried: s.Retried, Rebuilt: s.Rebuilt, PulledBytes: s.PulledBytes}
}

// MemberStatus is one member as the cluster status shows it.
type MemberStatus struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	API     string `json:"api,omitempty"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitempty"`
	State   string `json:"state,omitempty"`
	Applied uint64 `json:"applied_index"`
	Lag     uint64 `json:"lag"` // entries behind the leader's commit index
	Hash    string `json:"state_hash,omitempty"`
	// Goroutines is the member's goroutine count, for leak checks.
	Goroutines int `json:"goroutines,omitempty"`
	// Worker is set for a non-voting worker; Dead when the cluster declared it dead.
	Worker bool `json:"worker,omitempty"`
	Dead   bool `json:"dead,omitempty"`
	// Counters are the member's task and object counters.
	Counters
}

// Status is the whole cluster as one node sees it.
type Status struct {
	Node        string         `json:"node"`
	Leader      string         `json:"leader"`
	Term        uint64         `json:"term"`
	CommitIndex uint64         `json:"commit_index"`
	Members     []MemberStatus `json:"members"`
	// Nodes is the live nodes' resources as the leader last told this node.
	Nodes []wire.NodeView `json:"nodes"`
	// Removed is set once this node knows it was removed from the cluster: it answers writes
	// and linearizable reads with removed_from_cluster (410). RemovedHow says how it learned it.
	Removed    bool   `json:"removed,omitempty"`
	RemovedHow string `json:"removed_how,omitempty"`
}

// Status asks every member for its state (in parallel, each within half a second) and reports
// the leader, term, commit index and each member's lag.
func (n *Node) Status(ctx context.Context) Status {
	self := n.Self()
	out := Status{Node: self.ID, Leader: self.Leader, Term: self.Term, CommitIndex: self.CommitIndex}
	ms := make([]MemberStatus, len(self.Members))
	done := make(chan struct{}, len(ms))
	for i, m := range self.Members {
		ms[i] = MemberStatus{ID: m.ID, Raft: m.Address, Voter: m.Voter, Leader: m.ID == self.Leader, Worker: !m.Voter, Dead: n.IsDead(m.ID)}
		go func(ms *MemberStatus) {
			defer func() { done <- struct{}{} }()
			var ns wire.NodeStatus
			if ms.ID == self.ID {
				ns = self.Wire()
			} else {
				rec, err := n.Member(ms.ID)
				if err != nil {
					ms.Error = err.Error()
					return
				}
				ms.API = rec.API
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				if ns, err = n.peer.Self(cctx, rec.API); err != nil {
					ms.Error = fmt.Sprintf("unreachable: %v", err)
					return
				}
			}
			ms.API, ms.Reached, ms.State, ms.Applied, ms.Hash = ns.API, true, ns.State, ns.AppliedIndex, ns.StateHash
			ms.Goroutines, ms.TasksRun, ms.PlacedOut, ms.Retried = ns.Goroutines, ns.TasksRun, ns.PlacedOut, ns.Retried
			ms.Rebuilt, ms.PulledBytes = ns.Rebuilt, ns.PulledBytes
		}(&ms[i])
	}
	for range ms {
		<-done
	}
	commit := out.CommitIndex
	for _, m := range ms {
		if m.Leader && m.Reached {
			commit = max(commit, m.Applied)
		}
	}
	for i := range ms {
		if ms[i].Reached && commit > ms[i].Applied {
			ms[i].Lag = commit - ms[i].Applied
		}
	}
	out.Members = ms
	out.Nodes = n.Nodes()
	out.Removed, out.RemovedHow = n.raft.Removed()
	return out
}
