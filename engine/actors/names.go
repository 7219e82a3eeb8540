package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Actor names are unique across the cluster: a named actor is recorded through raft under
// actor/<namespace>/<name> with the node it lives on, by a write conditional on the name being
// free, so two nodes cannot both create "ns/cache". The record goes when the actor ends, when
// its node restarts (actors do not survive a restart) and when its node is declared dead.

const actorPrefix = "actor/"

// nameRecord is what the replicated state says of a named actor.
type nameRecord struct {
	Node string `json:"node"`
	Boot string `json:"boot"` // the node's run: handles start again after a restart
	ID   int64  `json:"id"`
	Job  string `json:"job"`
	// Type and Module (its digest) let another node call the actor through its owner.
	Type   string `json:"type,omitempty"`
	Module string `json:"module,omitempty"`
}

func actorKey(key string) []byte { return []byte(actorPrefix + key) }

func (m *Manager) liveActor(id int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.actors[id] != nil
}

// DropNames deletes the name records and the actor records (placed.go) of the actors a
// node owned, when it is declared dead or, for this node, those of its runs before this one.
func (m *Manager) DropNames(ctx context.Context, node string) {
	var ops []raftstore.Op
	var conds []raftstore.Cond
	stale := func(owner, boot string) bool {
		return owner == node && (node != m.nodeID || boot != m.cluster.Boot())
	}
	m.node.KV().View(func(r raftstore.Reader) error {
		r.Scan([]byte(actorsPrefix+node+"/"), func(k, v []byte) error {
			var rec Record
			if json.Unmarshal(v, &rec) != nil || stale(rec.Owner, rec.Boot) {
				ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: k})
				conds = append(conds, raftstore.Cond{Key: k, Value: v})
			}
			return nil
		})
		if node != m.nodeID {
			ops = append(ops, staleStates(r, node, "")...)
		} else {
			ops = append(ops, staleStates(r, node, m.cluster.Boot())...)
		}
		return r.Scan([]byte(actorPrefix), func(k, v []byte) error {
			var rec nameRecord
			if json.Unmarshal(v, &rec) == nil && stale(rec.Node, rec.Boot) {
				ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: k})
				conds = append(conds, raftstore.Cond{Key: k, Value: v})
			}
			return nil
		})
	})
	if len(ops) > 0 {
		m.node.Apply(ctx, &raftstore.Command{Conds: conds, Ops: ops})
	}
}

// remoteNamedActor returns a handle through which this node calls a named actor that another
// node owns (followNamed), or says where it lives when that cannot be made yet.
func (m *Manager) remoteNamedActor(namespace, name string) (int64, string, error) {
	b, err := m.node.KV().Get(actorKey(namespace + "/" + name))
	var rec nameRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Node == m.nodeID {
		return 0, "", &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor named %q in namespace %q", name, namespace)}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	id, job, ferr := m.followNamed(ctx, namespace+"/"+name, rec)
	if ferr == nil {
		return id, job, nil
	}
	where := rec.Node
	if mem, err := m.cluster.Member(rec.Node); err == nil && mem.API != "" {
		where += " (" + mem.API + ")"
	}
	return 0, "", &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("the actor named %q in namespace %q lives on node %s: ask that node (%v)", name, namespace, where, ferr)}
}
