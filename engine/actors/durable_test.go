package actors

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/sdk/abi"
)

// call calls method of actor id of job with input and waits for its result.
func (n *node) call(t *testing.T, job string, id int64, method, input string) (string, error) {
	t.Helper()
	h, err := n.m.Call(job, id, method, []byte(input))
	if err != nil {
		return "", err
	}
	return n.result(t, job, h)
}

// stored reads the state stored for the actor the node owns as handle ("" when none is).
func (n *node) stored(t *testing.T, handle int64) string {
	t.Helper()
	st, _ := stateKeys(n.m.nodeID, n.m.cluster.Boot(), handle)
	b, err := n.m.node.KV().Get(st)
	if err != nil {
		return ""
	}
	return string(b)
}

// A durable actor's call is answered only once the state after it is in the replicated state;
// an instance created again elsewhere (here: a second instance standing for the owner's
// handle, as a node the owner places it on after its node died) loads that state instead of
// running the constructor, and the old instance, should it live on, can store nothing more.
// Before durable actors the second instance started from the constructor (answering 1, not 101).
func TestDurable_RestartedInstanceLoadsTheLastAcknowledgedState(t *testing.T) {
	n := newNode(t, 2)
	id := n.create(t, "j", 0, abi.ActorCreateRequest{Durable: true})
	start := time.Now()
	for i := 1; i <= 100; i++ {
		out, err := n.call(t, "j", id, "incr", "1")
		if err != nil || out != strconv.Itoa(i) {
			t.Fatalf("call %d: %q %v", i, out, err)
		}
		// Acknowledged: its state is stored already.
		if got := n.stored(t, id); got != out {
			t.Fatalf("after call %d answered %s the stored state is %q", i, out, got)
		}
	}
	t.Logf("100 durable calls, one at a time: %v", time.Since(start))
	// The owner's restart path: an instance for the same handle, placed "elsewhere".
	held := &heldFor{owner: n.m.nodeID, boot: n.m.cluster.Boot(), handle: id, since: time.Now()}
	req := abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0"), Durable: true}
	id2, err := n.m.newActor(context.Background(), "j", guestMod.Digest, &req, &tasks.Scope{Grants: grants}, actorOpts{here: true, held: held})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.call(t, "j", id2, "incr", "1"); err != nil || out != "101" {
		t.Fatalf("the instance created again answers %q, %v; want 101", out, err)
	}
	// The first instance lost the lease: its call fails, is not stored, and it stops.
	if out, err := n.call(t, "j", id, "incr", "1"); err == nil || !strings.Contains(err.Error(), "another instance") {
		t.Fatalf("the old instance answered %q, %v; want it refused", out, err)
	}
	if got := n.stored(t, id); got != "101" {
		t.Fatalf("stored %q after the old instance's refused call, want 101", got)
	}
	if out, err := n.call(t, "j", id2, "incr", "1"); err != nil || out != "102" {
		t.Fatalf("the new instance answers %q, %v; want 102", out, err)
	}
	// The superseded instance ended, but the actor lives on: its state stays.
	if got := n.stored(t, id); got != "102" {
		t.Fatalf("stored %q after the old instance ended, want 102", got)
	}
}

// With checkpoint_every N the state is stored after every N-th call; the calls between are
// answered at once (and lost with the node).
func TestDurable_CheckpointEveryStoresEveryNthCall(t *testing.T) {
	n := newNode(t, 2)
	id := n.create(t, "j", 0, abi.ActorCreateRequest{CheckpointEvery: 3})
	want := []string{"0", "0", "3", "3", "3", "6", "6"}
	for i, w := range want {
		if out, err := n.call(t, "j", id, "incr", "1"); err != nil || out != strconv.Itoa(i+1) {
			t.Fatalf("call %d: %q %v", i+1, out, err)
		}
		if got := n.stored(t, id); got != w {
			t.Fatalf("after call %d the stored state is %q, want %q", i+1, got, w)
		}
	}
	waitFor(t, "the record says durable", func() bool { r, ok := n.record(t, "j", id); return ok && r.Durable })
	// Killing the actor drops its state.
	if err := n.m.Kill("j", id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stored state is dropped", func() bool { return n.stored(t, id) == "" })
}

// A state over the cap fails the call, and the actor goes back to the state stored before it.
func TestDurable_StateOverTheCapFailsTheCallAndRollsBack(t *testing.T) {
	n := newNode(t, 2)
	n.m.maxState = 2 // "99" fits, "100" does not
	id := n.create(t, "j", 90, abi.ActorCreateRequest{Durable: true})
	if out, err := n.call(t, "j", id, "incr", "9"); err != nil || out != "99" {
		t.Fatalf("incr to 99: %q %v", out, err)
	}
	_, err := n.call(t, "j", id, "incr", "1")
	var ae *abi.Error
	if !asABI(err, &ae) || ae.Kind != abi.KindLimit || !strings.Contains(ae.Message, "at most 2 bytes") {
		t.Fatalf("a call leaving 3 bytes of state: %v, want limit_exceeded naming the cap", err)
	}
	if out, err := n.call(t, "j", id, "incr", "0"); err != nil || out != "99" {
		t.Fatalf("after the refused call the actor answers %q, %v; want 99 (rolled back)", out, err)
	}
	if got := n.stored(t, id); got != "99" {
		t.Fatalf("stored %q, want 99", got)
	}
}

// Durable needs __save and __load; checkpoint_every may not be negative.
func TestDurable_Refusals(t *testing.T) {
	n := newNode(t, 2)
	for _, tc := range []struct {
		name string
		req  abi.ActorCreateRequest
		want string
	}{
		{"negative checkpoint_every", abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0"), CheckpointEvery: -1}, "checkpoint_every -1"},
	} {
		_, err := n.m.Create(context.Background(), "j", guestMod.Digest, &tc.req, &tasks.Scope{Grants: grants})
		if kindOf(err) != abi.KindBadInput || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want bad_input naming %q", tc.name, err, tc.want)
		}
	}
}

func asABI(err error, ae **abi.Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*abi.Error)
	if ok {
		*ae = e
	}
	return ok
}

// Calls waiting in a durable actor's mailbox run before one store answers them all (group
// commit): 200 calls queued at once cost far fewer raft commits than 200, every answer is right
// and in order, and the state stored at the end is the last answer. (Before group commit each
// call took a commit of its own.)
func TestDurable_QueuedCallsShareAStore(t *testing.T) {
	n := newNode(t, 2)
	id := n.create(t, "j", 0, abi.ActorCreateRequest{Durable: true})
	if out, err := n.call(t, "j", id, "incr", "0"); err != nil || out != "0" {
		t.Fatalf("first call: %q %v", out, err)
	}
	before := n.m.node.KV().Applied()
	start := time.Now()
	const calls = 200
	hs := make([]int64, calls)
	for i := range hs {
		h, err := n.m.Call("j", id, "incr", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	for i, h := range hs {
		if out, err := n.result(t, "j", h); err != nil || out != strconv.Itoa(i+1) {
			t.Fatalf("call %d: %q %v", i+1, out, err)
		}
	}
	commits := n.m.node.KV().Applied() - before
	t.Logf("%d queued durable calls in %v, %d raft entries applied", calls, time.Since(start), commits)
	if commits >= calls/2 {
		t.Fatalf("%d raft entries for %d queued calls: the calls were not stored together", commits, calls)
	}
	if got := n.stored(t, id); got != strconv.Itoa(calls) {
		t.Fatalf("stored %q, want %d", got, calls)
	}
}
