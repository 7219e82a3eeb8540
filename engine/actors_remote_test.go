package engine_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// inNode is one node of an in-process cluster: an engine serving its API on loopback.
type inNode struct {
	id   string
	e    *engine.Engine
	srv  *http.Server
	tr   *http.Transport
	down bool
}

// startInNode opens a node that bootstraps a cluster (join nil) or joins through join as a
// worker, offering res, and serves its API.
func startInNode(t testing.TB, id string, join *inNode, res scheduler.Resources) *inNode {
	t.Helper()
	return startInNodeWith(t, id, join, res, nil)
}

// startInNodeWith is startInNode with the engine's configuration adjusted by adjust.
func startInNodeWith(t testing.TB, id string, join *inNode, res scheduler.Resources, adjust func(*engine.Config)) *inNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := rl.Addr().String()
	rl.Close()
	n := &inNode{id: id, tr: &http.Transport{}}
	cc := engine.ClusterConfig{NodeID: id, RaftBind: raftAddr, APIURL: "http://" + l.Addr().String(),
		HTTPClient: &http.Client{Transport: n.tr, Timeout: 30 * time.Second}, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: time.Second}
	if join != nil {
		cc.Join, cc.JoinToken, cc.Worker = join.e.Cluster().Self().API, join.joinToken(t), true
	}
	ctx := context.Background()
	cfg := engine.Config{DataDir: compileCacheDir(t), Resources: res, Cluster: cc}
	if adjust != nil {
		adjust(&cfg)
	}
	n.e, err = engine.Open(ctx, cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	s, err := api.New(n.e, api.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = &http.Server{Handler: s.Handler()}
	go n.srv.Serve(l)
	t.Cleanup(n.stop)
	return n
}

// compileCacheDir returns a fresh data directory whose compile-cache is a folder kept across
// test runs, for tests and benchmarks alike.
func compileCacheDir(tb testing.TB) string {
	dir := tb.TempDir()
	if base, err := os.UserCacheDir(); err == nil {
		cache := filepath.Join(base, "lumen-test", "compile-cache")
		if os.MkdirAll(cache, 0o700) == nil {
			if err := os.Symlink(cache, filepath.Join(dir, "compile-cache")); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return dir
}

func (n *inNode) joinToken(t testing.TB) string {
	b, err := os.ReadFile(n.e.DataDir() + "/" + engine.JoinTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// stop ends the node as a crash would for its peers: its API stops answering at once.
func (n *inNode) stop() {
	if n.down {
		return
	}
	n.down = true
	n.srv.Close()
	n.e.Close(context.Background())
	n.tr.CloseIdleConnections()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recordOf(t *testing.T, e *engine.Engine, handle int64) (engine.ActorRecord, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := e.Actors().List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Owner == e.Cluster().Self().ID && r.Handle == handle {
			return r, true
		}
	}
	return engine.ActorRecord{}, false
}

func callInt(t testing.TB, e *engine.Engine, id int64, method string, arg int) (int, error) {
	t.Helper()
	h, err := e.Actors().Call("", id, method, []byte(strconv.Itoa(arg)))
	if err != nil {
		return 0, err
	}
	out, err := e.Objects().Get(context.Background(), "", h, 60*time.Second)
	e.Objects().Release("", h)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(out))
}

// A server without the "accel" resource and two workers with it: an actor asking for accel is
// created on a worker, owned by the server, and its calls through the server run in order. The
// worker dies: the server creates the actor again on the other worker (max_restarts 1), where
// it answers from a fresh constructor. An actor there with max_restarts 0, and the first one
// with its restart spent, fail their calls saying the node they were lost with when that worker
// dies too. Killing a placed actor through its owner ends its instance, and a node holding an
// actor whose owner died kills it. The records say where each actor runs throughout.
func TestActors_PlacedElsewhereAndRestartedWhenTheirNodeDies(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	accel := scheduler.Resources{scheduler.CPU: 1, "accel": 3}
	server := startInNode(t, "s1", nil, scheduler.Resources{scheduler.CPU: 1})
	workers := map[string]*inNode{}
	for _, id := range []string{"w2", "w3"} {
		workers[id] = startInNode(t, id, server, accel)
	}
	if _, err := server.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the server sees 3 nodes", func() bool { return len(server.e.Cluster().Nodes()) == 3 })
	create := func(name string, restarts int) int64 {
		t.Helper()
		req := &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("10"), MaxRestarts: restarts, Name: name, Namespace: "t",
			Resources: abi.Resources{Custom: map[string]float64{"accel": 1}}}
		id, err := server.e.Actors().Create(ctx, "", req, allCaps)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	alive := func(id int64) engine.ActorRecord {
		t.Helper()
		var rec engine.ActorRecord
		waitFor(t, 30*time.Second, "actor "+strconv.FormatInt(id, 10)+" alive", func() bool {
			r, ok := recordOf(t, server.e, id)
			rec = r
			return ok && r.State == engine.ActorAlive
		})
		return rec
	}

	if _, err := server.e.Actors().Create(ctx, "", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1"),
		Resources: abi.Resources{Custom: map[string]float64{"none": 1}}}, allCaps); err == nil {
		t.Fatal("an actor no node can hold was created")
	}

	// An actor placed by a node that then dies is killed by the node holding it.
	owner := startInNode(t, "o4", server, scheduler.Resources{scheduler.CPU: 1})
	waitFor(t, 20*time.Second, "the owner sees the workers", func() bool { return len(owner.e.Cluster().Nodes()) == 4 })
	held := func() int { return workers["w2"].e.Stats().Actors + workers["w3"].e.Stats().Actors }
	before := held()
	orphan, err := owner.e.Actors().Create(ctx, "", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1"),
		Resources: abi.Resources{Custom: map[string]float64{"accel": 1}}}, allCaps)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := callInt(t, owner.e, orphan, "incr", 1); err != nil || v != 2 {
		t.Fatalf("the actor placed by %s: %d %v", owner.id, v, err)
	}
	if held() != before+1 {
		t.Fatalf("%d actors on the workers, want %d", held(), before+1)
	}
	owner.stop()
	waitFor(t, 30*time.Second, "the orphan is killed", func() bool { return held() == before })

	a := create("a", 1)
	// Calls queued at once run in the order they came.
	hs := make([]int64, 20)
	for i := range hs {
		if hs[i], err = server.e.Actors().Call("", a, "incr", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hs {
		out, err := server.e.Objects().Get(ctx, "", h, 60*time.Second)
		if err != nil || string(out) != strconv.Itoa(11+i) {
			t.Fatalf("call %d: %q %v", i, out, err)
		}
		server.e.Objects().Release("", h)
	}
	rec := alive(a)
	first := workers[rec.Node]
	if first == nil || rec.Remote == 0 || rec.Name != "t/a" || rec.Restarts != 0 {
		t.Fatalf("record of the placed actor: %+v", rec)
	}
	if got := first.e.Stats().Actors; got != 1 {
		t.Fatalf("%d actors on %s, want the placed one", got, first.id)
	}
	waitFor(t, 10*time.Second, "the holder frees the results fetched from it", func() bool { return first.e.Stats().Objects == 0 })
	// A kill that names another owner (a handle given again after a restart) is refused.
	// Both go through the holder's peer routes, as a node's kill does.
	pc := peer.NewClient(nil, first.e.PeerCredential())
	other := &wire.ActorKill{Owner: &wire.ActorOwner{Node: "s1", Handle: 999, Boot: rec.Boot}}
	if err := pc.KillActor(ctx, first.e.Cluster().Self().API, rec.Remote, other); err == nil || !strings.Contains(err.Error(), "not placed here") {
		t.Fatalf("a kill naming another owner: %v", err)
	}
	malformed := &wire.ActorKill{Owner: &wire.ActorOwner{Node: "s1", Handle: 1}}
	if k, _ := wire.KindOf(pc.KillActor(ctx, first.e.Cluster().Self().API, rec.Remote, malformed)); k != wire.KindBadInput {
		t.Fatalf("a malformed owner: %v", k)
	}
	if id, _, err := server.e.Actors().Named("t", "a"); err != nil || id != a {
		t.Fatalf("the name of a placed actor: %d %v", id, err)
	}
	if _, err := server.e.Actors().Create(ctx, "", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Name: "a", Namespace: "t"}, allCaps); err == nil {
		t.Fatal("the name of a placed actor was taken twice")
	}

	var second *inNode
	for id, w := range workers {
		if w != first {
			second = workers[id]
		}
	}
	// Looked up on another node, the name gives a handle there whose calls reach the actor.
	fid, fjob, err := second.e.Actors().Named("t", "a")
	if err != nil {
		t.Fatal(err)
	}
	if fjob != "default" {
		t.Fatalf("job of the looked-up actor: %q", fjob)
	}
	if v, err := callInt(t, second.e, fid, "incr", 0); err != nil || v != 30 {
		t.Fatalf("a call through the looked-up handle: %d %v", v, err)
	}
	if again, _, err := second.e.Actors().Named("t", "a"); err != nil || again != fid {
		t.Fatalf("a second lookup: %d %v, want %d", again, err, fid)
	}

	first.stop()
	waitFor(t, 30*time.Second, "the actor restarted on "+second.id, func() bool {
		r, ok := recordOf(t, server.e, a)
		return ok && r.State == engine.ActorAlive && r.Node == second.id && r.Restarts == 1
	})
	if v, err := callInt(t, server.e, a, "incr", 5); err != nil || v != 15 {
		t.Fatalf("the restarted actor answers %d, %v; want 15 (its constructor ran again)", v, err)
	}
	if v, err := callInt(t, second.e, fid, "incr", 1); err != nil || v != 16 {
		t.Fatalf("the looked-up handle after the restart: %d %v", v, err)
	}

	b := create("b", 0)
	if v, err := callInt(t, server.e, b, "incr", 2); err != nil || v != 12 {
		t.Fatalf("a second placed actor: %d %v", v, err)
	}
	if rec := alive(b); rec.Node != second.id {
		t.Fatalf("b runs on %s", rec.Node)
	}
	c := create("", 3)
	if v, err := callInt(t, server.e, c, "incr", 1); err != nil || v != 11 {
		t.Fatalf("a third placed actor: %d %v", v, err)
	}
	count := second.e.Stats().Actors
	if err := server.e.Actors().Kill("", c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed actor's instance ends", func() bool { return second.e.Stats().Actors == count-1 })
	waitFor(t, 10*time.Second, "the killed actor's record goes", func() bool { _, ok := recordOf(t, server.e, c); return !ok })

	second.stop()
	for _, x := range []struct {
		id   int64
		want string
	}{{a, "max_restarts 1"}, {b, "max_restarts 0"}} {
		var err error
		waitFor(t, 30*time.Second, "calls fail once the node is lost", func() bool {
			_, err = callInt(t, server.e, x.id, "incr", 1)
			return err != nil && strings.Contains(err.Error(), "may not restart")
		})
		var ae *abi.Error
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "lost with node "+second.id) || !strings.Contains(err.Error(), x.want) {
			t.Fatalf("call of actor %d after its node died: %v", x.id, err)
		}
	}
	waitFor(t, 10*time.Second, "the lost actors' records say DEAD", func() bool {
		r, ok := recordOf(t, server.e, b)
		return ok && r.State == engine.ActorDead && strings.Contains(r.Reason, "lost with node")
	})
	if _, _, err := server.e.Actors().Named("t", "b"); err == nil {
		t.Fatal("the name of a dead actor still answers")
	}
}

// An actor that fits on its node has a record there, which goes when it is killed.
func TestActors_LocalActorIsRecorded(t *testing.T) {
	e, _ := open(t, engine.Config{DataDir: compileCacheDir(t)})
	ctx := context.Background()
	id, err := e.Actors().Create(ctx, "j", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1")}, allCaps)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the record", func() bool {
		recs, err := e.Actors().List(ctx, "j")
		return err == nil && len(recs) == 1 && recs[0].Handle == id && recs[0].Node == "local" && recs[0].State == engine.ActorAlive && recs[0].Type == "Counter"
	})
	if recs, _ := e.Actors().List(ctx, "other"); len(recs) != 0 {
		t.Fatalf("records of another job: %+v", recs)
	}
	if err := e.Actors().Kill("j", id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the record goes", func() bool {
		recs, err := e.Actors().List(ctx, "")
		return err == nil && len(recs) == 0
	})

	// A burst: the actors killed at once leave no record (whether or not theirs was written),
	// the others one each.
	kept := map[int64]bool{}
	for i := range 30 {
		id, err := e.Actors().Create(ctx, "j", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1")}, allCaps)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			e.Actors().Kill("j", id)
		} else {
			kept[id] = true
		}
	}
	same := func() bool {
		recs, err := e.Actors().List(ctx, "j")
		if err != nil || len(recs) != len(kept) {
			return false
		}
		for _, r := range recs {
			if !kept[r.Handle] || r.State != engine.ActorAlive {
				return false
			}
		}
		return true
	}
	waitFor(t, 10*time.Second, "the records of the actors kept", same)
	time.Sleep(100 * time.Millisecond) // a few of the writer's batches later
	if !same() {
		t.Fatal("the records changed after they settled")
	}
	for id := range kept {
		e.Actors().Kill("j", id)
	}
	waitFor(t, 10*time.Second, "no record left", func() bool {
		recs, err := e.Actors().List(ctx, "")
		return err == nil && len(recs) == 0
	})
}

// BenchmarkActors_Call measures a call and the get of its result, one at a time, on an actor
// that runs on its owner beside one the owner placed on another node of an in-process cluster
// (the forward, the result's fetch and its release are HTTP requests over loopback).
func BenchmarkActors_Call(b *testing.B) {
	wasm, err := os.ReadFile(guestbuild.Go(b, "testdata/guest"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	server := startInNode(b, "s1", nil, scheduler.Resources{scheduler.CPU: 1})
	worker := startInNode(b, "w2", server, scheduler.Resources{scheduler.CPU: 1, "accel": 1})
	if _, err := server.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 20*time.Second, "the server sees 2 nodes", func() bool { return len(server.e.Cluster().Nodes()) == 2 })
	for _, bc := range []struct {
		name string
		res  abi.Resources
	}{{"local", abi.Resources{}}, {"placed", abi.Resources{Custom: map[string]float64{"accel": 1}}}} {
		b.Run(bc.name, func(b *testing.B) {
			id, err := server.e.Actors().Create(ctx, "", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("0"), Resources: bc.res}, allCaps)
			if err != nil {
				b.Fatal(err)
			}
			defer server.e.Actors().Kill("", id)
			if _, err := callInt(b, server.e, id, "incr", 1); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if v, err := callInt(b, server.e, id, "incr", 1); err != nil || v != i+2 {
					b.Fatalf("call %d: %d %v", i, v, err)
				}
			}
		})
	}
	_ = worker
}

// A guest passes an object by reference to a call of an actor placed on another node: the node
// holding the actor fetches the object from the caller's node. And a call whose result refers to
// an object the actor made stays there, the caller's get following the ref to it.
func TestActors_PlacedActorPassesRefsBothWays(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	server := startInNode(t, "s1", nil, scheduler.Resources{scheduler.CPU: 1})
	worker := startInNode(t, "w2", server, scheduler.Resources{scheduler.CPU: 1, "accel": 1})
	if _, err := server.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the server sees the worker", func() bool { return len(server.e.Cluster().Nodes()) == 2 })
	h, err := server.e.Tasks().Submit(ctx, "", &abi.TaskRequest{Module: "svc", Function: "actorref", Args: []byte("5")}, allCaps)
	if err != nil {
		t.Fatal(err)
	}
	out, err := server.e.Objects().Get(ctx, "", h, 60*time.Second)
	if err != nil || string(out) != "15" {
		t.Fatalf("actorref: %q %v", out, err)
	}
	if n := worker.e.Cluster().Self().PulledBytes; n == 0 {
		t.Errorf("the worker fetched nothing: the actor did not run there")
	}
	// And a result that refers to an object the actor made there is followed to it.
	h, err = server.e.Tasks().Submit(ctx, "", &abi.TaskRequest{Module: "svc", Function: "actorkeep", Args: []byte("42")}, allCaps)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := server.e.Objects().Get(ctx, "", h, 60*time.Second); err != nil || string(out) != "42" {
		t.Fatalf("actorkeep: %q %v", out, err)
	}
	if n := server.e.Cluster().Self().PulledBytes; n == 0 {
		t.Errorf("the server fetched nothing from the worker")
	}
}
