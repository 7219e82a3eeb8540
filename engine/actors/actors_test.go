package actors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/sdk/abi"
)

// The runtime and the compiled guest are shared by the tests: compiling is what takes time.
var (
	guestOnce sync.Once
	sharedRT  *host.Runtime
	guestMod  *host.Module
	guestErr  error
)

// grants are the capabilities the test guest's module asks for.
var grants = host.Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}

// node is one single-node Manager over a real runtime, object store, resource pool and raft
// (a one-voter cluster), running the engine's test guest (its actor type Counter).
type node struct {
	m    *Manager
	pool *tasks.Pool
}

func newNode(t *testing.T, cpus float64) *node {
	t.Helper()
	guestOnce.Do(func() {
		var wasm []byte
		if wasm, guestErr = os.ReadFile(guestbuild.Go(t, "../testdata/guest")); guestErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", "lumen-actors-test")
		if err != nil {
			guestErr = err
			return
		}
		if sharedRT, guestErr = host.New(context.Background(), host.Config{DataDir: dir}); guestErr != nil {
			return
		}
		guestMod, guestErr = sharedRT.Compile(context.Background(), wasm)
	})
	if guestErr != nil {
		t.Fatal(guestErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	total := scheduler.Resources{scheduler.CPU: cpus}
	pool := tasks.NewPool(total)
	c, err := cluster.Open(context.Background(), cluster.Deps{DataDir: t.TempDir(), Ctx: ctx, WG: &wg, Total: total,
		Available: pool.Available, CanHold: func(d scheduler.Resources) bool { return pool.Check(d) == nil }})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	waitFor(t, "the single node leads", func() bool { return c.Raft().IsLeader() })
	store := objects.New(0)
	n := &node{pool: pool}
	n.m = New(Deps{Ctx: ctx, WG: &wg, Runtime: sharedRT, Objects: store, Pool: pool, Cluster: c, Peer: c.Peer(),
		Function: func(_ context.Context, module, name string, kind abi.FuncKind) (tasks.Fn, error) {
			mf := guestMod.Info.Manifest
			if module != guestMod.Digest {
				return tasks.Fn{}, &abi.Error{Kind: abi.KindNotFound, Message: "no module " + module}
			}
			if i := mf.Index(name); i < 0 || mf.Functions[i].Kind != kind {
				return tasks.Fn{}, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("module has no %s %q", kind, name)}
			}
			return tasks.Fn{Module: guestMod}, nil
		},
		Digest: func(module string) (string, error) { return guestMod.Digest, nil },
		EndScope: func(sc *tasks.Scope) {
			store.ReleaseAll(sc.Owned)
			store.ReleaseAll(sc.Borrowed)
			n.m.KillAll(sc.Actors)
			sc.Owned, sc.Borrowed, sc.Actors = nil, nil, nil
		},
	})
	t.Cleanup(func() {
		n.m.Close()
		cancel()
		wg.Wait()
		c.Close()
	})
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// create creates a Counter of job starting at start.
func (n *node) create(t *testing.T, job string, start int, req abi.ActorCreateRequest) int64 {
	t.Helper()
	req.Actor, req.Args = "Counter", []byte(fmt.Sprint(start))
	id, err := n.m.Create(context.Background(), job, guestMod.Digest, &req, &tasks.Scope{Grants: grants})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return id
}

// result waits for the result object h of job.
func (n *node) result(t *testing.T, job string, h int64) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.m.objects.Get(ctx, job, h, -1)
	return string(out), err
}

func (n *node) record(t *testing.T, job string, id int64) (Record, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := n.m.Records(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Handle == id {
			return r, true
		}
	}
	return Record{}, false
}

func kindOf(err error) abi.ErrorKind {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Kind
	}
	return ""
}

func TestActor_CallsRunOneAtATimeInArrivalOrder(t *testing.T) {
	n := newNode(t, 2)
	id := n.create(t, "j", 0, abi.ActorCreateRequest{})
	var hs []int64
	for i := 1; i <= 30; i++ {
		h, err := n.m.Call("j", id, "incr", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	sum := 0
	for i, h := range hs {
		sum += i + 1
		if out, err := n.result(t, "j", h); err != nil || out != fmt.Sprint(sum) {
			t.Fatalf("call %d: %q, %v; want %d (every earlier call applied, in order)", i+1, out, err, sum)
		}
	}
	waitFor(t, "the actor is recorded ALIVE", func() bool {
		r, ok := n.record(t, "j", id)
		return ok && r.State == Alive && r.Type == "Counter" && r.Node == n.m.nodeID && r.Module == guestMod.Digest
	})
	if got := n.m.Count(); got != 1 {
		t.Fatalf("Count = %d, want 1", got)
	}
	if user := n.m.InUse(guestMod.Digest); !strings.Contains(user, fmt.Sprint(id)) {
		t.Fatalf("InUse = %q, want it to name actor %d", user, id)
	}
	if _, err := n.m.Call("other", id, "incr", []byte("1")); kindOf(err) != abi.KindNotFound {
		t.Fatalf("a call from another job: %v, want not found", err)
	}
	if _, err := n.m.Call("j", id, "nosuch", nil); kindOf(err) != abi.KindNotFound {
		t.Fatalf("a call of a method the type lacks: %v, want not found", err)
	}
}

func TestActor_KillFailsTheQueuedCalls(t *testing.T) {
	n := newNode(t, 1)
	// Hold the node's only cpu so that the actor, which asks for it, cannot start: its calls
	// stay queued.
	if err := n.pool.Acquire(context.Background(), scheduler.Resources{scheduler.CPU: 1}); err != nil {
		t.Fatal(err)
	}
	id := n.create(t, "j", 0, abi.ActorCreateRequest{Resources: abi.Resources{CPU: 1}})
	var hs []int64
	for range 5 {
		h, err := n.m.Call("j", id, "incr", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := n.m.Kill("j", id); err != nil {
		t.Fatal(err)
	}
	late, err := n.m.Call("j", id, "incr", []byte("1"))
	if err != nil {
		t.Fatalf("a call after the kill, before the actor ended: %v", err)
	}
	n.pool.Release(scheduler.Resources{scheduler.CPU: 1})
	for i, h := range append(hs, late) {
		out, err := n.result(t, "j", h)
		if kindOf(err) != abi.KindCancelled || !strings.Contains(err.Error(), "was killed") {
			t.Fatalf("call %d: %q, %v; want cancelled: the actor was killed", i, out, err)
		}
	}
	waitFor(t, "the killed actor has ended", func() bool { return n.m.Count() == 0 })
	if _, err := n.m.Call("j", id, "incr", []byte("1")); kindOf(err) != abi.KindNotFound || !strings.Contains(err.Error(), "has ended") {
		t.Fatalf("a call of the ended actor: %v, want not found: has ended", err)
	}
	if got := n.pool.Available()[scheduler.CPU]; got != 1 {
		t.Fatalf("%v cpu free after the actor ended, want 1", got)
	}
}

func TestActor_KillJobKillsOnlyThatJobsActors(t *testing.T) {
	n := newNode(t, 2)
	a := n.create(t, "a", 0, abi.ActorCreateRequest{})
	b := n.create(t, "b", 0, abi.ActorCreateRequest{})
	n.m.KillJob("a")
	waitFor(t, "job a's actor has ended", func() bool { return n.m.Count() == 1 })
	if _, err := n.m.Call("a", a, "incr", []byte("1")); kindOf(err) != abi.KindNotFound {
		t.Fatalf("a call of job a's actor: %v, want not found", err)
	}
	h, err := n.m.Call("b", b, "incr", []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.result(t, "b", h); err != nil || out != "2" {
		t.Fatalf("job b's actor: %q, %v", out, err)
	}
}

func TestActor_RestartsAfterATrapUpToMaxRestarts(t *testing.T) {
	n := newNode(t, 2)
	id := n.create(t, "j", 0, abi.ActorCreateRequest{MaxRestarts: 1})
	call := func(method string) (string, error) {
		t.Helper()
		h, err := n.m.Call("j", id, method, []byte("5"))
		if err != nil {
			return "", err
		}
		return n.result(t, "j", h)
	}
	if out, err := call("incr"); err != nil || out != "5" {
		t.Fatalf("incr: %q, %v", out, err)
	}
	if _, err := call("crash"); kindOf(err) == "" {
		t.Fatalf("crash: %v, want the call's failure", err)
	}
	// Restarted once, with the state it saved after its last successful call.
	if out, err := call("incr"); err != nil || out != "10" {
		t.Fatalf("incr after a restart: %q, %v; want 10", out, err)
	}
	waitFor(t, "the restart is recorded", func() bool {
		r, ok := n.record(t, "j", id)
		return ok && r.State == Alive && r.Restarts == 1
	})
	if _, err := call("crash"); kindOf(err) == "" {
		t.Fatalf("second crash: %v, want the call's failure", err)
	}
	// No restarts left: the actor is dead, and says so.
	if out, err := call("incr"); err == nil {
		t.Fatalf("incr after the last restart: %q, want an error", out)
	}
	waitFor(t, "the actor is recorded DEAD", func() bool {
		r, ok := n.record(t, "j", id)
		return ok && r.State == Dead && r.Restarts == 1 && strings.Contains(r.Reason, "no restarts left")
	})
}

func TestActor_RefusesConcurrencyAndUnknownTypes(t *testing.T) {
	n := newNode(t, 1)
	_, err := n.m.Create(context.Background(), "j", guestMod.Digest, &abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0"), MaxConcurrency: 4}, &tasks.Scope{Grants: grants})
	if kindOf(err) != abi.KindBadInput {
		t.Fatalf("max_concurrency 4: %v, want bad input", err)
	}
	_, err = n.m.Create(context.Background(), "j", guestMod.Digest, &abi.ActorCreateRequest{Actor: "NoSuch"}, &tasks.Scope{Grants: grants})
	if kindOf(err) != abi.KindNotFound {
		t.Fatalf("an unknown actor type: %v, want not found", err)
	}
	_, err = n.m.Create(context.Background(), "j", guestMod.Digest, &abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0"), Resources: abi.Resources{CPU: 2}}, &tasks.Scope{Grants: grants})
	if kindOf(err) != abi.KindBadInput {
		t.Fatalf("an actor no node can hold: %v, want bad input", err)
	}
	if got := n.m.Count(); got != 0 {
		t.Fatalf("Count = %d after refused creations, want 0", got)
	}
}

func TestNames_ClaimedOncePerNamespace(t *testing.T) {
	n := newNode(t, 2)
	first := n.create(t, "j", 1, abi.ActorCreateRequest{Name: "cache", Namespace: "ns"})
	_, err := n.m.Create(context.Background(), "j", guestMod.Digest, &abi.ActorCreateRequest{Actor: "Counter", Args: []byte("2"), Name: "cache", Namespace: "ns"}, &tasks.Scope{Grants: grants})
	if kindOf(err) != abi.KindBadInput || !strings.Contains(err.Error(), "already lives") {
		t.Fatalf("a second actor named ns/cache: %v, want bad input: already lives", err)
	}
	other := n.create(t, "j", 3, abi.ActorCreateRequest{Name: "cache", Namespace: "ns2"})
	inJob := n.create(t, "j", 4, abi.ActorCreateRequest{Name: "cache"}) // the job is its namespace
	for _, c := range []struct {
		ns   string
		want int64
	}{{"ns", first}, {"ns2", other}, {"j", inJob}} {
		if id, job, err := n.m.Named(c.ns, "cache"); err != nil || id != c.want || job != "j" {
			t.Fatalf("Named(%s, cache) = %d, %q, %v; want %d in job j", c.ns, id, job, err, c.want)
		}
	}
	// The name is the cluster's: recorded through raft with this node and run.
	rec, err := n.m.node.KV().Get([]byte(actorPrefix + "ns/cache"))
	if err != nil || !strings.Contains(string(rec), fmt.Sprintf(`"id":%d`, first)) || !strings.Contains(string(rec), `"node":"`+n.m.nodeID+`"`) {
		t.Fatalf("the name record: %s, %v", rec, err)
	}
	if _, _, err := n.m.Named("ns", "nosuch"); kindOf(err) != abi.KindNotFound {
		t.Fatalf("Named(ns, nosuch): %v, want not found", err)
	}
	// Once the actor ends its name is free again, here and in the replicated state.
	if err := n.m.Kill("j", first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the name's record is gone", func() bool {
		_, err := n.m.node.KV().Get([]byte(actorPrefix + "ns/cache"))
		return err != nil
	})
	again := n.create(t, "j", 5, abi.ActorCreateRequest{Name: "cache", Namespace: "ns"})
	if id, _, err := n.m.Named("ns", "cache"); err != nil || id != again || id == first {
		t.Fatalf("Named(ns, cache) after a new claim = %d, %v; want %d", id, err, again)
	}
}

func TestManager_ClosedRefusesNewActors(t *testing.T) {
	n := newNode(t, 1)
	n.m.Close()
	_, err := n.m.Create(context.Background(), "j", guestMod.Digest, &abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0")}, &tasks.Scope{Grants: grants})
	if kindOf(err) != abi.KindCancelled {
		t.Fatalf("create after Close: %v, want cancelled", err)
	}
}
