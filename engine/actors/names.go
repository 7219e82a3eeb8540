package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// nameValue is the record of named actor a owned by this node.
func (m *Manager) nameValue(a *actor) []byte {
	b, _ := json.Marshal(nameRecord{Node: m.nodeID, Boot: m.cluster.Boot(), ID: a.id, Job: a.job, Type: a.typ, Module: a.hm.Digest})
	return b
}

func actorKey(key string) []byte { return []byte(actorPrefix + key) }

// claimName records a named actor through raft; it fails when the name lives elsewhere (or
// still here), and takes over a record this node left behind before a restart.
func (m *Manager) claimName(ctx context.Context, a *actor) error {
	key, rec := a.key, m.nameValue(a)
	set := raftstore.Op{Kind: raftstore.OpSet, Key: actorKey(key), Value: rec}
	err := m.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Absent: true}}, Ops: []raftstore.Op{set}})
	if !errors.Is(err, raftstore.ErrConflict) {
		return err
	}
	ns, name, _ := strings.Cut(key, "/")
	// The record that won may not have reached this node yet.
	if lerr := m.node.Linearize(ctx); lerr != nil {
		return lerr
	}
	old, gerr := m.node.KV().Get(actorKey(key))
	var prev nameRecord
	if gerr != nil || json.Unmarshal(old, &prev) != nil {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q", name, ns)}
	}
	if prev.Node != m.nodeID || (prev.Boot == m.cluster.Boot() && m.liveActor(prev.ID)) {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q (on node %s)", name, ns, prev.Node)}
	}
	// This node's record from before a restart: the actor it names is gone.
	return m.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: old}}, Ops: []raftstore.Op{set}})
}

func (m *Manager) liveActor(id int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.actors[id] != nil
}

// releaseName drops the record of an ended named actor (if it is still this actor's). It runs in
// the background: the actor is gone from this node whatever raft says.
func (m *Manager) releaseName(a *actor) {
	key, rec := a.key, m.nameValue(a)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.node.Apply(m.ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: rec}},
			Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: actorKey(key)}}})
	}()
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
