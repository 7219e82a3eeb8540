package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Durable actors (abi.ActorCreateRequest.Durable) keep the state their __save method returns in
// the replicated state, so that the loss of the node an actor runs on loses no acknowledged
// call: the owner creates the actor again on another node (placed.go), which loads the last
// state stored instead of running the constructor.
//
// The node that runs the instance stores the state through raft after each call and only then
// completes the call's result; calls waiting in the mailbox run first and share the store (group
// commit, up to maxGroup). With CheckpointEvery N it stores after every N-th call, and the calls
// in between are acknowledged at once. A state larger than MaxDurableState, or a write raft
// refuses, fails the call and loads the last stored state back into the instance, so the
// instance never runs ahead of what is stored.
//
// Keys, by the owner's node, run and handle (the handle the actor's callers hold):
//
//	actorstate/<owner>/<boot>/<handle>/state  the last state stored
//	actorstate/<owner>/<boot>/<handle>/lease  "<node>/<boot>/<instance>": the instance that may write it
//
// Every write of the state is conditional on the lease naming the writing instance. A new
// instance takes the lease by a write conditional on the state being the one it loaded, so an
// instance the owner has given up on (its node stopped answering but lives) can neither
// overwrite the new instance's state nor have a write of its own acknowledged after the new
// instance loaded an older one. The owner deletes both keys when the actor ends; a node's
// keys of earlier runs, and of a node declared dead, go with its names (DropNames).

// statePrefix holds the durable actors' states and leases.
const statePrefix = "actorstate/"

// MaxDurableState caps the state a durable actor may store after a call: it goes through raft,
// in one log entry with the call's other writes, on every node. A call after which the state is
// larger fails (limit_exceeded) and the actor goes back to the state stored before it.
const MaxDurableState = 64 << 10

// errFenced is the outcome of a state write of an instance that no longer holds the lease:
// another instance of the actor took over.
var errFenced = errors.New("another instance of the actor holds its state now")

// durable is the running instance's side of a durable actor. It is used by the actor's
// goroutine only.
type durable struct {
	state, lease []byte // the keys
	mine         []byte // the lease value naming this instance
	stored       []byte // the last state stored
	every        int    // store after every every-th call
	since        int    // calls since the last store
}

// stateKeys returns the keys of the state and lease of the actor its owner holds as handle.
func stateKeys(owner, boot string, handle int64) (state, lease []byte) {
	base := statePrefix + owner + "/" + boot + "/" + strconv.FormatInt(handle, 10) + "/"
	return []byte(base + "state"), []byte(base + "lease")
}

// newDurable returns the durable side of actor a, whose instance runs here.
func (m *Manager) newDurable(a *actor) *durable {
	owner, boot, handle := m.nodeID, m.cluster.Boot(), a.id
	if a.held != nil {
		owner, boot, handle = a.held.owner, a.held.boot, a.held.handle
	}
	st, ls := stateKeys(owner, boot, handle)
	return &durable{state: st, lease: ls, every: max(1, a.checkpointEvery),
		mine: []byte(m.nodeID + "/" + m.cluster.Boot() + "/" + strconv.FormatInt(a.id, 10))}
}

// load reads the state stored for the actor, nil when none is (a new actor). The read is
// linearizable: it sees every state an earlier instance stored.
func (d *durable) load(ctx context.Context, node *raftstore.Node) ([]byte, error) {
	if err := node.Linearize(ctx); err != nil {
		return nil, fmt.Errorf("read the actor's stored state: %w", err)
	}
	b, err := node.KV().Get(d.state)
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the actor's stored state: %w", err)
	}
	if b == nil {
		b = []byte{} // an empty state is a state
	}
	return b, nil
}

// claim makes this instance the one that stores the actor's state, provided the state stored is
// still prev (nil: none), and stores st as its state when prev is nil. It returns ErrConflict
// when the state changed since it was read.
func (d *durable) claim(ctx context.Context, node *raftstore.Node, prev, st []byte) error {
	c := &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: d.lease, Value: d.mine}}}
	if prev == nil {
		c.Conds = []raftstore.Cond{{Key: d.state, Absent: true}}
		c.Ops = append(c.Ops, raftstore.Op{Kind: raftstore.OpSet, Key: d.state, Value: st})
	} else {
		c.Conds = []raftstore.Cond{{Key: d.state, Value: prev}}
		st = prev
	}
	if err := node.Apply(ctx, c); err != nil {
		return err
	}
	d.stored = st
	return nil
}

// store writes st as the actor's state if this instance still holds the lease.
func (d *durable) store(ctx context.Context, node *raftstore.Node, st []byte, limit int) error {
	if len(st) > limit {
		return &abi.Error{Kind: abi.KindLimit, Limit: abi.LimitOutput, Message: fmt.Sprintf(
			"the actor's state is %d bytes after the call; a durable actor's state may be at most %d bytes", len(st), limit)}
	}
	err := node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: d.lease, Value: d.mine}},
		Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: d.state, Value: st}}})
	if errors.Is(err, raftstore.ErrConflict) {
		return errFenced
	}
	if err != nil {
		return err
	}
	d.stored = st
	d.since = 0
	return nil
}

// due counts a call that succeeded and says whether the state is to be stored after it.
func (d *durable) due() bool {
	d.since++
	return d.since >= d.every
}

// dropState deletes the stored state and lease of the actor this node owns as handle, when it
// has ended for good. It runs in the background; leftovers of a node go with its run (DropNames).
func (m *Manager) dropState(handle int64) {
	st, ls := stateKeys(m.nodeID, m.cluster.Boot(), handle)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.node.Apply(m.ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: st}, {Kind: raftstore.OpDelete, Key: ls}}})
	}()
}

// staleStates returns the delete operations of the stored states of the actors node owned,
// for those of runs other than boot ("" : every run).
func staleStates(r raftstore.Reader, node, boot string) []raftstore.Op {
	var ops []raftstore.Op
	prefix := statePrefix + node + "/"
	r.Scan([]byte(prefix), func(k, _ []byte) error {
		run, _, _ := strings.Cut(strings.TrimPrefix(string(k), prefix), "/")
		if boot == "" || run != boot {
			ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: append([]byte(nil), k...)})
		}
		return nil
	})
	return ops
}

// durableWait bounds how long a durable actor waits for the replicated state to load or store
// its state (a cluster without a quorum answers nothing).
const durableWait = time.Minute

// startDurable readies instance in, the first of durable actor a on this node: it loads the
// state stored for the actor, or runs the constructor and stores the state it leaves when none
// is, and takes the lease that lets this instance store the state.
func (m *Manager) startDurable(a *actor, in *host.Instance, dur *durable) error {
	ctx, cancel := context.WithTimeout(m.ctx, durableWait)
	defer cancel()
	constructed := false
	for try := 0; ; try++ {
		prev, err := dur.load(ctx, m.node)
		if err != nil {
			return err
		}
		var st []byte
		if prev != nil {
			if _, err := in.Call(m.ctx, a.typ+"."+abi.LoadMethod, prev); err != nil {
				return fmt.Errorf("load its stored state (%d bytes): %w", len(prev), err)
			}
		} else {
			if !constructed {
				if _, err := in.Call(m.ctx, a.typ, a.args); err != nil {
					return err
				}
				constructed = true
			}
			out, err := in.Call(m.ctx, a.typ+"."+abi.SaveMethod, nil)
			if err != nil {
				return fmt.Errorf("save its first state: %w", err)
			}
			if st = out.Output; len(st) > m.maxState {
				return fmt.Errorf("its first state is %d bytes; a durable actor's state may be at most %d", len(st), m.maxState)
			}
			if st == nil {
				st = []byte{}
			}
		}
		err = dur.claim(ctx, m.node, prev, st)
		if errors.Is(err, raftstore.ErrConflict) && try < 5 {
			continue // another instance stored a state meanwhile: load that one
		}
		if err != nil {
			return fmt.Errorf("take its stored state: %w", err)
		}
		a.saved = dur.stored
		return nil
	}
}

// storeState stores the state of durable actor a after a call that succeeded, through __save. It
// returns the error the call fails with when the state could not be stored (nil when it was),
// whether the instance must stop because another holds the actor's state now, and whether it
// must be restarted from the stored state because it could not be taken back to it.
//
// With CheckpointEvery above 1 a failed store fails no call: it is logged and tried again after
// the next call.
func (m *Manager) storeState(a *actor, inst *host.Instance, dur *durable) (failed *abi.Error, fenced, restart bool) {
	var serr error
	out, err := inst.Call(m.ctx, a.typ+"."+abi.SaveMethod, nil)
	if err != nil {
		serr = fmt.Errorf("its %s failed: %w", abi.SaveMethod, err)
	} else {
		st := out.Output
		if st == nil {
			st = []byte{}
		}
		ctx, cancel := context.WithTimeout(m.ctx, durableWait)
		serr = dur.store(ctx, m.node, st, m.maxState)
		cancel()
	}
	if serr == nil {
		a.saved = dur.stored
		return nil, false, false
	}
	if errors.Is(serr, errFenced) {
		return &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf(
			"actor %d: %v (its owner created it again elsewhere); this instance stops, and the call's outcome was not stored", a.id, serr)}, true, false
	}
	if dur.every > 1 {
		m.log.Warn(fmt.Sprintf("actor %d: storing its state failed; trying again after the next call: %v", a.id, serr))
		return nil, false, false
	}
	failed = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("actor %d: the call ran but its state could not be stored, so the actor went back to its state before the call: %v", a.id, serr)}
	var ae *abi.Error
	if errors.As(serr, &ae) {
		failed.Kind, failed.Limit = ae.Kind, ae.Limit
	}
	if _, err := inst.Call(m.ctx, a.typ+"."+abi.LoadMethod, dur.stored); err != nil {
		m.log.Warn(fmt.Sprintf("actor %d: loading its stored state back failed; restarting it: %v", a.id, err))
		return failed, false, true
	}
	return failed, false, false
}
