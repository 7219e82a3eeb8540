package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// ledger is what the replicated state says of this node's actors: the record of each (the
// cluster's actor list) and the names they claim, written through raft. Records are batched by a
// writer goroutine, the latest of each key winning; names are claimed by conditional writes.
type ledger struct {
	ctx     context.Context
	wg      *sync.WaitGroup
	log     *slog.Logger
	nodeID  string
	cluster *cluster.Node
	node    *raftstore.Node
	live    func(id int64) bool // whether actor id still runs here

	mu      sync.Mutex
	pending map[string][]byte // key -> record; nil deletes it
	// written are the keys whose last committed record is a set; inflight those being
	// committed. A record queued and ended before either is never written.
	written, inflight map[string]bool
	kick              chan struct{}
	writer            sync.Once
}

// record returns the actor's record as its owner sees it now.
func (l *ledger) record(a *actor, state, reason string) Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := Record{Owner: l.nodeID, Handle: a.id, Boot: l.cluster.Boot(), Job: a.job, Type: a.typ, Module: a.hm.Digest,
		Name: a.key, Node: l.nodeID, Restarts: a.restarts, State: state, Reason: reason, Durable: a.durable}
	if a.pl != nil {
		if a.pl.node != "" {
			r.Node = a.pl.node
		}
		r.Remote = a.pl.remote
		if state == Restarting {
			r.Node, r.Remote = "", 0
		}
	}
	return r
}

// putRecord queues the actor's record for the writer. Actors placed here by another node are
// recorded by their owner.
func (l *ledger) putRecord(a *actor, state, reason string) {
	if a.held != nil || (a.pl != nil && a.pl.follows) {
		return
	}
	b, _ := json.Marshal(l.record(a, state, reason))
	l.queueRecord(actorRecordKey(l.nodeID, a.id), b)
}

// endRecord records an actor's end: its record goes when it was killed or its node closes, and
// stays DEAD with the reason when it died.
func (l *ledger) endRecord(a *actor, killed bool) {
	if a.held != nil || (a.pl != nil && a.pl.follows) {
		return
	}
	a.mu.Lock()
	var reason *abi.Error
	errors.As(a.dead, &reason)
	a.mu.Unlock()
	if killed || reason == nil || reason.Kind == abi.KindCancelled || l.ctx.Err() != nil {
		l.queueRecord(actorRecordKey(l.nodeID, a.id), nil)
		return
	}
	l.putRecord(a, Dead, reason.Message)
}

func (l *ledger) queueRecord(key string, val []byte) {
	r := l
	r.writer.Do(func() {
		r.kick = make(chan struct{}, 1)
		l.wg.Add(1)
		go l.writeRecords()
	})
	r.mu.Lock()
	if r.pending == nil {
		r.pending = map[string][]byte{}
	}
	if prev, queued := r.pending[key]; val == nil && queued && prev != nil && !r.written[key] && !r.inflight[key] {
		// An actor that ended before its record was written: nothing to write.
		delete(r.pending, key)
		r.mu.Unlock()
		return
	}
	r.pending[key] = val
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// recordLinger is how long the writer waits after a change for more to batch with it.
const recordLinger = 10 * time.Millisecond

// maxRecordOps caps the records one command writes.
const maxRecordOps = 512

// writeRecords commits the queued records, the latest of each key, until the node closes. A
// failed commit is tried again after a pause, unless a newer record of the key came meanwhile.
func (l *ledger) writeRecords() {
	defer l.wg.Done()
	r := l
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-r.kick:
		}
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(recordLinger):
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		if r.written == nil {
			r.written = map[string]bool{}
		}
		r.inflight = map[string]bool{}
		for k := range batch {
			r.inflight[k] = true
		}
		r.mu.Unlock()
		keys := make([]string, 0, len(batch))
		for k := range batch {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		failed := false
		for len(keys) > 0 {
			n := min(len(keys), maxRecordOps)
			ops := make([]raftstore.Op, 0, n)
			for _, k := range keys[:n] {
				if v := batch[k]; v == nil {
					ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: []byte(k)})
				} else {
					ops = append(ops, raftstore.Op{Kind: raftstore.OpSet, Key: []byte(k), Value: v})
				}
			}
			if err := l.node.Apply(l.ctx, &raftstore.Command{Ops: ops}); err != nil {
				if l.ctx.Err() != nil {
					return
				}
				failed = true
				r.mu.Lock()
				if r.pending == nil {
					r.pending = map[string][]byte{}
				}
				for _, k := range keys {
					if _, newer := r.pending[k]; !newer {
						r.pending[k] = batch[k]
					}
				}
				r.mu.Unlock()
				l.log.Warn("writing actor records failed; trying again", "records", len(keys), "err", err)
				break
			}
			r.mu.Lock()
			for _, k := range keys[:n] {
				if batch[k] != nil {
					r.written[k] = true
				} else {
					delete(r.written, k)
				}
			}
			r.mu.Unlock()
			keys = keys[n:]
		}
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		if failed {
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
	}
}

// nameValue is the record of named actor a owned by this node.
func (l *ledger) nameValue(a *actor) []byte {
	b, _ := json.Marshal(nameRecord{Node: l.nodeID, Boot: l.cluster.Boot(), ID: a.id, Job: a.job, Type: a.typ, Module: a.hm.Digest})
	return b
}

// claimName records a named actor through raft; it fails when the name lives elsewhere (or
// still here), and takes over a record this node left behind before a restart.
func (l *ledger) claimName(ctx context.Context, a *actor) error {
	key, rec := a.key, l.nameValue(a)
	set := raftstore.Op{Kind: raftstore.OpSet, Key: actorKey(key), Value: rec}
	err := l.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Absent: true}}, Ops: []raftstore.Op{set}})
	if !errors.Is(err, raftstore.ErrConflict) {
		return err
	}
	ns, name, _ := strings.Cut(key, "/")
	// The record that won may not have reached this node yet.
	if lerr := l.node.Linearize(ctx); lerr != nil {
		return lerr
	}
	old, gerr := l.node.KV().Get(actorKey(key))
	var prev nameRecord
	if gerr != nil || json.Unmarshal(old, &prev) != nil {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q", name, ns)}
	}
	if prev.Node != l.nodeID || (prev.Boot == l.cluster.Boot() && l.live(prev.ID)) {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("an actor named %q already lives in namespace %q (on node %s)", name, ns, prev.Node)}
	}
	// This node's record from before a restart: the actor it names is gone.
	return l.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: old}}, Ops: []raftstore.Op{set}})
}

// releaseName drops the record of an ended named actor (if it is still this actor's). It runs in
// the background: the actor is gone from this node whatever raft says.
func (l *ledger) releaseName(a *actor) {
	key, rec := a.key, l.nameValue(a)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.node.Apply(l.ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: actorKey(key), Value: rec}},
			Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: actorKey(key)}}})
	}()
}
