package engine

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

// actorRecord is what the replicated state says of a named actor.
type actorRecord struct {
	Node string `json:"node"`
	Boot string `json:"boot"` // the node's run: handles start again after a restart
	ID   int64  `json:"id"`
	Job  string `json:"job"`
	// Type and Module (its digest) let another node call the actor through its owner.
	Type   string `json:"type,omitempty"`
	Module string `json:"module,omitempty"`
}

// nameRecord is the record of named actor a owned by this node.
func (e *Engine) nameRecord(a *actor) []byte {
	b, _ := json.Marshal(actorRecord{Node: e.nodeID(), Boot: e.cluster.Boot(), ID: a.id, Job: a.job, Type: a.typ, Module: a.hm.Digest})
	return b
}

func actorKey(key string) []byte { return []byte(actorPrefix + key) }

// claimName records a named actor through raft; it fails when the name lives elsewhere (or
// still here), and takes over a record this node left behind before a restart.
func (e *Engine) claimName(ctx context.Context, a *actor) error {
	key, rec := a.key, e.nameRecord(a)
	set := raftstore.Op{Kind: raftstore.OpSet, Key: actorKey(key), Value: rec}
	err := e.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Absent: true}}, Ops: []raftstore.Op{set}})
	if !errors.Is(err, raftstore.ErrConflict) {
		return err
	}
	ns, name, _ := strings.Cut(key, "/")
	// The record that won may not have reached this node yet.
	if lerr := e.node.Linearize(ctx); lerr != nil {
		return lerr
	}
	old, gerr := e.node.KV().Get(actorKey(key))
	var prev actorRecord
	if gerr != nil || json.Unmarshal(old, &prev) != nil {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q", name, ns)}
	}
	if prev.Node != e.nodeID() || (prev.Boot == e.cluster.Boot() && e.liveActor(prev.ID)) {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q (on node %s)", name, ns, prev.Node)}
	}
	// This node's record from before a restart: the actor it names is gone.
	return e.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: old}}, Ops: []raftstore.Op{set}})
}

func (e *Engine) liveActor(id int64) bool {
	e.amu.Lock()
	defer e.amu.Unlock()
	return e.actors[id] != nil
}

// releaseName drops the record of an ended named actor (if it is still this actor's). It runs in
// the background: the actor is gone from this node whatever raft says.
func (e *Engine) releaseName(a *actor) {
	key, rec := a.key, e.nameRecord(a)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.node.Apply(e.ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: rec}},
			Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: actorKey(key)}}})
	}()
}

// dropNames deletes the name records and the actor records (actors_remote.go) of the actors a
// node owned, when it is declared dead or, for this node, those of its runs before this one.
func (e *Engine) dropNames(ctx context.Context, node string) {
	var ops []raftstore.Op
	var conds []raftstore.Cond
	stale := func(owner, boot string) bool {
		return owner == node && (node != e.nodeID() || boot != e.cluster.Boot())
	}
	e.node.KV().View(func(r raftstore.Reader) error {
		r.Scan([]byte(actorsPrefix+node+"/"), func(k, v []byte) error {
			var rec ActorRecord
			if json.Unmarshal(v, &rec) != nil || stale(rec.Owner, rec.Boot) {
				ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: k})
				conds = append(conds, raftstore.Cond{Key: k, Value: v})
			}
			return nil
		})
		return r.Scan([]byte(actorPrefix), func(k, v []byte) error {
			var rec actorRecord
			if json.Unmarshal(v, &rec) == nil && stale(rec.Node, rec.Boot) {
				ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: k})
				conds = append(conds, raftstore.Cond{Key: k, Value: v})
			}
			return nil
		})
	})
	if len(ops) > 0 {
		e.node.Apply(ctx, &raftstore.Command{Conds: conds, Ops: ops})
	}
}

// remoteNamedActor returns a handle through which this node calls a named actor that another
// node owns (followNamed), or says where it lives when that cannot be made yet.
func (e *Engine) remoteNamedActor(namespace, name string) (int64, string, error) {
	b, err := e.node.KV().Get(actorKey(namespace + "/" + name))
	var rec actorRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Node == e.nodeID() {
		return 0, "", &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor named %q in namespace %q", name, namespace)}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	id, job, ferr := e.followNamed(ctx, namespace+"/"+name, rec)
	if ferr == nil {
		return id, job, nil
	}
	where := rec.Node
	if m, err := e.cluster.Member(rec.Node); err == nil && m.API != "" {
		where += " (" + m.API + ")"
	}
	return 0, "", &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("the actor named %q in namespace %q lives on node %s: ask that node (%v)", name, namespace, where, ferr)}
}
