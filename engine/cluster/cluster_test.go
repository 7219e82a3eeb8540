package cluster_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
)

// node is a cluster.Node with the parts of a node its Deps read, set by the test.
type node struct {
	*cluster.Node
	dir    string // the data directory
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	avail   scheduler.Resources // what Deps.Available reports
	canHold bool                // what Deps.CanHold reports
	dead    []string            // the nodes OnDead was called with
	beats   int                 // the calls of EveryBeat
	srv     *http.Server
}

func (n *node) setAvailable(r scheduler.Resources) {
	n.mu.Lock()
	n.avail = r
	n.mu.Unlock()
}

func (n *node) deadSeen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dead...)
}

// open opens a node on a fresh data directory with cfg. It does not Start it.
func open(t *testing.T, cfg cluster.Config) *node {
	t.Helper()
	n := &node{dir: t.TempDir(), avail: scheduler.Resources{"cpu": 4}, canHold: true}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	c, err := cluster.Open(context.Background(), cluster.Deps{Config: cfg, DataDir: n.dir, Ctx: n.ctx, WG: &n.wg,
		Total: scheduler.Resources{"cpu": 4},
		Available: func() scheduler.Resources {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.avail.Clone()
		},
		CanHold: func(scheduler.Resources) bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.canHold
		},
		Counters: func() cluster.Counters { return cluster.Counters{TasksRun: 7, PulledBytes: 3} },
		EveryBeat: func() {
			n.mu.Lock()
			n.beats++
			n.mu.Unlock()
		},
		OnDead: func(id string) {
			n.mu.Lock()
			n.dead = append(n.dead, id)
			n.mu.Unlock()
		},
	})
	if err != nil {
		n.cancel()
		t.Fatal(err)
	}
	n.Node = c
	t.Cleanup(n.stop)
	return n
}

// stop stops the node: its server, its loops, its raft. It may run twice.
func (n *node) stop() {
	if n.srv != nil {
		n.srv.Close()
	}
	n.cancel()
	n.wg.Wait()
	n.Close()
}

// openLeader opens a single node and waits until it leads.
func openLeader(t *testing.T, cfg cluster.Config) *node {
	t.Helper()
	n := open(t, cfg)
	waitFor(t, 10*time.Second, "the single node leads", func() bool { return n.Raft().IsLeader() })
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoadOrCreateSecret_CreatesAPrivateSecretAndRefusesAShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	tok, err := cluster.LoadOrCreateSecret(path)
	if err != nil || len(tok) != 64 {
		t.Fatalf("created %q, %v", tok, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the secret file: %v %v", st.Mode(), err)
	}
	if again, err := cluster.LoadOrCreateSecret(path); err != nil || again != tok {
		t.Fatalf("read back %q, %v; want %q", again, err, tok)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.LoadOrCreateSecret(path); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("a secret readable by others: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := cluster.LoadOrCreateSecret(short); err == nil || !strings.Contains(err.Error(), "holds no secret") {
		t.Errorf("a short secret: %v", err)
	}
}

func TestOpen_RefusesWhatCannotFormACluster(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"join without raft", cluster.Config{Join: "http://127.0.0.1:1"}, "needs a raft address"},
		{"raft without api", cluster.Config{RaftBind: "127.0.0.1:0"}, "URL of its API"},
		{"short join token", cluster.Config{JoinToken: "short"}, "too short"},
	} {
		var wg sync.WaitGroup
		_, err := cluster.Open(context.Background(), cluster.Deps{Config: c.cfg, DataDir: t.TempDir(), Ctx: context.Background(), WG: &wg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestNode_DefaultsAndJoinToken(t *testing.T) {
	n := openLeader(t, cluster.Config{})
	cfg := n.Config()
	if cfg.NodeID != "local" || cfg.HeartbeatTimeout != 100*time.Millisecond || cfg.HTTPClient == nil || len(cfg.JoinToken) != 64 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if beat, dead := cfg.Intervals(); beat != time.Second || dead != 10*time.Second {
		t.Errorf("intervals %v %v", beat, dead)
	}
	if n.Boot() == "" || len(n.Boot()) != 16 {
		t.Errorf("boot %q", n.Boot())
	}
}

func TestNode_KVWritesThroughRaftAndChecksItsInput(t *testing.T) {
	n := openLeader(t, cluster.Config{})
	ctx := context.Background()
	if err := n.KVPut(ctx, "a", []byte("1"), "", false); err != nil {
		t.Fatal(err)
	}
	if v, err := n.KVGet(ctx, "a"); err != nil || string(v) != "1" {
		t.Fatalf("get a: %q %v", v, err)
	}
	if err := n.KVPut(ctx, "a", []byte("2"), "", true); !errors.Is(err, raftstore.ErrConflict) {
		t.Errorf("a create-only put of a taken key: %v", err)
	}
	if err := n.KVPut(ctx, "b", []byte("1"), "req-1", true); err != nil {
		t.Fatal(err)
	}
	if err := n.KVPut(ctx, "b", []byte("1"), "req-1", true); err != nil {
		t.Errorf("a retry with the same request id: %v", err)
	}
	if err := n.KVDelete(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	_, err := n.KVGet(ctx, "a")
	if k, _ := wire.KindOf(err); !errors.Is(err, cluster.ErrKVNotFound) || k != wire.KindNotFound {
		t.Errorf("get of a deleted key: %v (kind %v)", err, k)
	}
	if err := n.KVDelete(ctx, "never", ""); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	for _, key := range []string{"", strings.Repeat("k", cluster.MaxKVKeyLen+1)} {
		if err := n.KVPut(ctx, key, nil, "", false); !errors.Is(err, raftstore.ErrBadCommand) {
			t.Errorf("put of a %d-byte key: %v", len(key), err)
		}
		if _, err := n.KVGet(ctx, key); !errors.Is(err, raftstore.ErrBadCommand) {
			t.Errorf("get of a %d-byte key: %v", len(key), err)
		}
	}
	if err := n.KVPut(ctx, "big", make([]byte, cluster.MaxKVValueLen+1), "", false); !errors.Is(err, raftstore.ErrBadCommand) {
		t.Errorf("a value over the cap: %v", err)
	}
}

func TestNode_RegistryStoreKeepsItsKeysApart(t *testing.T) {
	n := openLeader(t, cluster.Config{})
	ctx := context.Background()
	s := n.Registry()
	v0 := s.Version()
	err := s.Update(ctx, func(w plugins.StoreWriter) error {
		w.RequireAbsent([]byte("m/1"))
		w.Set([]byte("m/1"), []byte("one"))
		w.Set([]byte("m/2"), []byte("two"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() == v0 {
		t.Error("the version did not move with a registry write")
	}
	v1 := s.Version()
	if err := n.KVPut(ctx, "m/3", []byte("kv"), "", false); err != nil {
		t.Fatal(err)
	}
	if s.Version() != v1 {
		t.Error("the version moved with a write outside the registry")
	}
	err = s.Update(ctx, func(w plugins.StoreWriter) error {
		w.RequireAbsent([]byte("m/1"))
		w.Set([]byte("m/1"), []byte("again"))
		return nil
	})
	if !errors.Is(err, plugins.ErrConflict) {
		t.Errorf("a conditional update that fails: %v", err)
	}
	var keys []string
	s.View(func(r plugins.StoreReader) error {
		if v, err := r.Get([]byte("m/1")); err != nil || string(v) != "one" {
			t.Errorf("get m/1: %q %v", v, err)
		}
		if _, err := r.Get([]byte("m/3")); !errors.Is(err, plugins.ErrNotFound) {
			t.Errorf("a key of the KV store read through the registry: %v", err)
		}
		return r.Scan([]byte("m/"), func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if strings.Join(keys, ",") != "m/1,m/2" {
		t.Errorf("scan: %v", keys)
	}
	if err := s.Update(ctx, func(plugins.StoreWriter) error { return nil }); err != nil {
		t.Errorf("an empty update: %v", err)
	}
}

// heartbeat sends node id's heartbeat to the leader n, after adding id to the configuration as
// a worker (the leader answers only its members' heartbeats).
func heartbeat(t *testing.T, n *node, id string, total, avail scheduler.Resources) []wire.NodeView {
	t.Helper()
	if id != n.Config().NodeID {
		if err := n.Raft().AddNonvoter(context.Background(), id, "mem-"+id); err != nil {
			t.Fatal(err)
		}
	}
	view, err := n.Heartbeat(context.Background(), wire.Heartbeat{ID: id, API: "http://" + id, Total: total, Available: avail})
	if err != nil {
		t.Fatal(err)
	}
	return view
}

func TestPlace_HereFirstThenSpreadsAndCountsUntilTheNextHeartbeat(t *testing.T) {
	n := openLeader(t, cluster.Config{NodeID: "self"})
	cpu := func(c float64) scheduler.Resources { return scheduler.Resources{"cpu": c} }
	if n.Peers() {
		t.Fatal("peers before any heartbeat")
	}
	heartbeat(t, n, "self", cpu(4), cpu(0))
	if n.Peers() {
		t.Fatal("a view of this node alone has peers")
	}
	heartbeat(t, n, "w1", cpu(4), cpu(2))
	view := heartbeat(t, n, "w2", cpu(4), cpu(1))
	if len(view) != 3 || view[0].ID != "self" || view[1].ID != "w1" || view[2].ID != "w2" || !n.Peers() {
		t.Fatalf("view %+v, peers %v", view, n.Peers())
	}
	if got := n.Nodes(); len(got) != 3 {
		t.Fatalf("nodes %+v", got)
	}
	// Room here: here.
	if got := n.Place(cpu(1), nil); got != "" {
		t.Fatalf("with room here it placed on %q", got)
	}
	// No room here: the freest node, then the next, each counted until its next heartbeat.
	n.setAvailable(cpu(0))
	var got []string
	for range 4 {
		got = append(got, n.Place(cpu(1), nil))
	}
	if strings.Join(got, ",") != "w1,w1,w2," {
		t.Fatalf("a burst of 4 was placed on %q, want w1, w1, w2, then here", got)
	}
	// The next heartbeat on the leader gives the view the nodes' own word again.
	heartbeat(t, n, "w2", cpu(4), cpu(3))
	if got := n.Place(cpu(1), nil); got != "w2" {
		t.Errorf("after w2's heartbeat: %q", got)
	}
	if got := n.Place(cpu(1), map[string]bool{"w2": true}); got != "w1" {
		t.Errorf("with w2 excluded: %q", got)
	}
	// A demand no node can ever hold is not placed.
	if got := n.Place(cpu(8), nil); got != "" {
		t.Errorf("a demand of 8 cpus: %q", got)
	}
	// Excluding this node places even when it has room.
	n.setAvailable(cpu(4))
	if got := n.Place(cpu(1), map[string]bool{"self": true}); got != "w2" {
		t.Errorf("with this node excluded: %q", got)
	}
	// Placement groups count their bundles the same way (this node's are not counted).
	n.CountPlaced([]string{"w2", "self"}, []scheduler.Resources{cpu(1), cpu(4)})
	for _, v := range n.Nodes() {
		if v.ID == "w2" && v.Available["cpu"] != 0 {
			t.Errorf("w2 after two placements and a bundle of 1: %v", v.Available)
		}
		if v.ID == "self" && v.Available["cpu"] != 0 {
			t.Errorf("this node's bundle was counted: %v", v.Available)
		}
	}
}

func TestPlace_SkipsDeadAndSilentNodes(t *testing.T) {
	n := openLeader(t, cluster.Config{NodeID: "self", HeartbeatInterval: 20 * time.Millisecond})
	ctx := context.Background()
	cpu := func(c float64) scheduler.Resources { return scheduler.Resources{"cpu": c} }
	n.setAvailable(cpu(0))
	heartbeat(t, n, "w1", cpu(100), cpu(100))
	if got := n.Place(cpu(1), nil); got != "w1" {
		t.Fatalf("placed on %q", got)
	}
	// Declared dead (as the leader's monitor does): no longer placed on, and it says so.
	err := n.Raft().Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(cluster.DeadPrefix + "w1"), Value: []byte("now")}}})
	if err != nil {
		t.Fatal(err)
	}
	if !n.IsDead("w1") || n.IsDead("w2") {
		t.Fatal("IsDead does not read the decision")
	}
	view := heartbeat(t, n, "w2", cpu(1), cpu(0))
	if !view[0].Dead || view[0].ID != "w1" {
		t.Fatalf("view %+v", view)
	}
	if got := n.Place(cpu(1), nil); got != "" {
		t.Errorf("placed on %q, a dead node", got)
	}
	// A dead node that heartbeats again is alive.
	heartbeat(t, n, "w1", cpu(100), cpu(100))
	if n.IsDead("w1") {
		t.Fatal("a heartbeat did not revive w1")
	}
	if got := n.Place(cpu(1), nil); got != "w1" {
		t.Errorf("placed on %q after w1 came back", got)
	}
	// A view older than three heartbeats is not trusted.
	waitFor(t, 5*time.Second, "the view goes stale", func() bool { return n.Place(cpu(1), nil) == "" })
}

func TestPlaceOrQueue_QueuesWhereItCanEverFit(t *testing.T) {
	n := openLeader(t, cluster.Config{NodeID: "self"})
	gpu := func(c float64) scheduler.Resources { return scheduler.Resources{"gpu": c} }
	n.setAvailable(gpu(0))
	heartbeat(t, n, "small", gpu(1), gpu(0))
	heartbeat(t, n, "big1", gpu(4), gpu(-1))
	heartbeat(t, n, "big2", gpu(4), gpu(0))
	// This node could hold it some day: it waits here.
	if got := n.PlaceOrQueue(gpu(2), nil); got != "" {
		t.Fatalf("a demand this node can hold went to %q", got)
	}
	// It never could: the node with the most room that can ever hold it, in turns.
	n.mu.Lock()
	n.canHold = false
	n.mu.Unlock()
	var got []string
	for range 3 {
		got = append(got, n.PlaceOrQueue(gpu(2), nil))
	}
	if strings.Join(got, ",") != "big2,big1,big2" {
		t.Errorf("queued on %v, want big2, big1, big2", got)
	}
	if got := n.PlaceOrQueue(gpu(8), nil); got != "" {
		t.Errorf("a demand no node can hold went to %q", got)
	}
	if got := n.PlaceOrQueue(gpu(2), map[string]bool{"big1": true, "big2": true}); got != "" {
		t.Errorf("with the big nodes excluded: %q", got)
	}
	// Room somewhere now: placed there, not queued.
	heartbeat(t, n, "small", gpu(1), gpu(1))
	if got := n.PlaceOrQueue(gpu(1), nil); got != "small" {
		t.Errorf("a demand that fits on small now: %q", got)
	}
}

// clusterPeer serves the cluster's half of the peer routes (join, forwarded writes and reads,
// status, heartbeats); the task and object half is another package's.
type clusterPeer struct{ n *cluster.Node }

var errNotHere = wire.New(wire.KindUnavailable, "this test node runs no tasks")

func (p clusterPeer) SubmitPlaced(context.Context, *wire.PlacedTask) (wire.Submitted, error) {
	return wire.Submitted{}, errNotHere
}
func (p clusterPeer) CancelTask(context.Context, string, int64) error { return errNotHere }
func (p clusterPeer) ObjectMeta(context.Context, string, int64, time.Duration) (wire.ObjectMeta, error) {
	return wire.ObjectMeta{}, errNotHere
}
func (p clusterPeer) ObjectValue(context.Context, string, int64, time.Duration) (wire.ObjectValue, error) {
	return wire.ObjectValue{}, errNotHere
}
func (p clusterPeer) ReleaseObject(context.Context, string, int64) error { return errNotHere }
func (p clusterPeer) CreateActor(context.Context, *wire.PlacedActor) (wire.CreatedActor, error) {
	return wire.CreatedActor{}, errNotHere
}
func (p clusterPeer) CallActor(context.Context, int64, *wire.ActorCall) (wire.Submitted, error) {
	return wire.Submitted{}, errNotHere
}
func (p clusterPeer) KillActor(context.Context, int64, *wire.ActorKill) error { return errNotHere }
func (p clusterPeer) Join(ctx context.Context, j *wire.JoinRequest) (wire.JoinResponse, error) {
	secrets, err := p.n.Join(ctx, *j)
	return wire.JoinResponse{Secrets: secrets}, err
}
func (p clusterPeer) Apply(ctx context.Context, cmd []byte) error { return p.n.Apply(ctx, cmd) }
func (p clusterPeer) ReadIndex(ctx context.Context) (uint64, error) {
	return p.n.ReadIndex(ctx)
}
func (p clusterPeer) Self(context.Context) wire.NodeStatus { return p.n.Self().Wire() }
func (p clusterPeer) Heartbeat(ctx context.Context, hb *wire.Heartbeat) ([]wire.NodeView, error) {
	view, err := p.n.Heartbeat(ctx, *hb)
	if err != nil {
		return nil, errors.Join(raftstore.ErrNotLeader, err)
	}
	return view, nil
}

func (p clusterPeer) ModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	return p.n.HeldModuleBytes(ctx, digest)
}
func (p clusterPeer) KeepModuleBytes(ctx context.Context, digest string, wasm []byte) error {
	return p.n.KeepModuleBytes(ctx, digest, wasm)
}

// classify gives raft's errors their kinds, as the API's one error mapping does.
func classify(err error) *wire.Error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, raftstore.ErrNotLeader):
		return &wire.Error{Kind: wire.KindNotLeader, Message: err.Error()}
	case errors.Is(err, raftstore.ErrConflict):
		return &wire.Error{Kind: wire.KindConflict, Message: err.Error()}
	case errors.Is(err, raftstore.ErrBadCommand), errors.Is(err, raftstore.ErrMembership):
		return &wire.Error{Kind: wire.KindBadInput, Message: err.Error()}
	}
	return &wire.Error{Kind: wire.KindInternal, Message: err.Error()}
}

// serving opens a node on TCP whose peer routes are served at its API URL; join, when set, is
// the node it joins through (as a worker).
func serving(t *testing.T, id string, join *node) *node {
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
	// DeadAfter is 60 heartbeats: a test machine loaded by other tests (and the race detector)
	// can delay a live node's heartbeats by more than a second, and a slow node is not a dead one.
	cfg := cluster.Config{NodeID: id, RaftBind: raftAddr, APIURL: "http://" + l.Addr().String(),
		HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 3 * time.Second}
	if join != nil {
		cfg.Join, cfg.JoinToken, cfg.Worker = join.Config().APIURL, join.Config().JoinToken, true
	}
	n := open(t, cfg)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	peer.Mount(r, clusterPeer{n.Node}, peer.Config{Credential: peer.Credential(n.Config().JoinToken), Classify: classify})
	n.srv = &http.Server{Handler: r}
	go n.srv.Serve(l)
	return n
}

// twoNodes starts a leader a and a worker b that joined through it.
func twoNodes(t *testing.T) (a, b *node) {
	t.Helper()
	a = serving(t, "a", nil)
	waitFor(t, 10*time.Second, "a leads", func() bool { return a.Raft().IsLeader() })
	a.Start()
	b = serving(t, "b", a)
	b.Start()
	return a, b
}

func TestCluster_JoinForwardHeartbeatAndDeclareDead(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()

	// The worker received the cluster's join token and API secrets with its join.
	for _, f := range append([]string{cluster.JoinTokenFile}, cluster.APISecretFiles...) {
		want, err := os.ReadFile(filepath.Join(a.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(b.dir, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("b's %s: %q %v, want the leader's", f, got, err)
		}
	}
	// Both members are recorded, on both nodes; the follower knows where the leader is.
	waitFor(t, 10*time.Second, "b knows the leader's API", func() bool { return b.LeaderAPI() == a.Config().APIURL })
	waitFor(t, 10*time.Second, "b has its own record", func() bool { _, err := b.Member("b"); return err == nil })
	if m, err := b.Member("b"); err != nil || !m.Worker || m.API != b.Config().APIURL || m.Raft != b.Raft().Address() {
		t.Fatalf("b's record: %+v %v", m, err)
	}
	if _, err := a.Member("nobody"); !errors.Is(err, raftstore.ErrUnreachable) {
		t.Errorf("the record of no node: %v", err)
	}
	// The follower's writes and linearizable reads go through the leader.
	if err := b.KVPut(ctx, "from-b", []byte("v"), "", false); err != nil {
		t.Fatal(err)
	}
	if v, err := a.KVGet(ctx, "from-b"); err != nil || string(v) != "v" {
		t.Fatalf("the leader reads %q %v", v, err)
	}
	if v, err := b.KVGet(ctx, "from-b"); err != nil || string(v) != "v" {
		t.Fatalf("the follower reads %q %v", v, err)
	}
	if err := b.KVPut(ctx, "from-b", []byte("w"), "", true); !errors.Is(err, raftstore.ErrConflict) {
		t.Errorf("a forwarded conflict: %v", err)
	}
	// A follower refuses a heartbeat and a removal.
	if _, err := b.Heartbeat(ctx, wire.Heartbeat{ID: "x"}); err == nil {
		t.Error("a follower took a heartbeat")
	}
	if err := b.Remove(ctx, "a"); !errors.Is(err, raftstore.ErrNotLeader) || !strings.Contains(err.Error(), a.Config().APIURL) {
		t.Errorf("a removal on a follower: %v", err)
	}
	// Heartbeats: each node sees the other, with its resources.
	waitFor(t, 10*time.Second, "both nodes see each other", func() bool {
		return len(a.Nodes()) == 2 && len(b.Nodes()) == 2 && a.Peers() && b.Peers()
	})
	b.mu.Lock()
	beats := b.beats
	b.mu.Unlock()
	if beats == 0 {
		t.Error("EveryBeat never ran")
	}
	a.setAvailable(scheduler.Resources{"cpu": 0})
	if got := a.Place(scheduler.Resources{"cpu": 1}, nil); got != "b" {
		t.Errorf("a, full, placed on %q", got)
	}
	// The status reaches every member.
	st := a.Status(ctx)
	if st.Leader != "a" || len(st.Members) != 2 || len(st.Nodes) != 2 {
		t.Fatalf("status %+v", st)
	}
	for _, m := range st.Members {
		if !m.Reached || m.TasksRun != 7 || m.PulledBytes != 3 || m.Worker != (m.ID == "b") || m.Dead {
			t.Errorf("member %+v", m)
		}
	}
	if len(a.deadSeen()) != 0 {
		t.Fatalf("declared dead while alive: %v", a.deadSeen())
	}

	// b stops: the leader declares it dead after DeadAfter, and acts on it once.
	b.stop()
	waitFor(t, 10*time.Second, "a declares b dead", func() bool { return a.IsDead("b") && len(a.deadSeen()) > 0 })
	if got := a.deadSeen(); len(got) != 1 || got[0] != "b" {
		t.Errorf("OnDead ran for %v", got)
	}
	waitFor(t, 5*time.Second, "a no longer sees a live peer", func() bool { return !a.Peers() })
	if got := a.Place(scheduler.Resources{"cpu": 1}, nil); got != "" {
		t.Errorf("placed on %q, a dead node", got)
	}
	st = a.Status(ctx)
	for _, m := range st.Members {
		if m.ID == "b" && (!m.Dead || m.Reached || m.Error == "") {
			t.Errorf("b in the status: %+v", m)
		}
	}
}

// A node removed from the cluster learns it (from its configuration or from the leader's answer
// to its heartbeat), says so in its status, and answers writes and linearizable reads at once
// with ErrRemoved instead of waiting for a log that no longer reaches it. The leader answers the
// heartbeat of a node it does not list with ErrRemoved.
func TestCluster_RemovedNodeRefusesWritesAtOnce(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "both nodes see each other", func() bool { return len(a.Nodes()) == 2 && a.Peers() })
	if _, err := a.Heartbeat(ctx, wire.Heartbeat{ID: "stranger"}); !errors.Is(err, cluster.ErrRemoved) {
		t.Fatalf("the heartbeat of a node not in the configuration: %v", err)
	}
	if k, _ := wire.KindOf(cluster.ErrRemoved); k != wire.KindRemoved || k.Status() != http.StatusGone {
		t.Fatalf("ErrRemoved is of kind %q (%d)", k, k.Status())
	}
	if st := b.Status(ctx); st.Removed {
		t.Fatalf("b says it was removed before it was: %+v", st)
	}
	if err := a.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b knows it was removed", func() bool { return b.Status(ctx).Removed })
	if st := b.Status(ctx); st.RemovedHow == "" {
		t.Errorf("b does not say how it learned its removal: %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err := b.KVPut(wctx, "after-removal", []byte("v"), "", false)
	if !errors.Is(err, raftstore.ErrRemoved) || time.Since(start) > time.Second {
		t.Fatalf("a write on the removed node: %v after %v", err, time.Since(start))
	}
	if _, err := b.KVGet(wctx, "after-removal"); !errors.Is(err, raftstore.ErrRemoved) {
		t.Fatalf("a linearizable read on the removed node: %v", err)
	}
	if _, err := a.KVGet(ctx, "after-removal"); err == nil {
		t.Fatal("the cluster holds the write the removed node refused")
	}
	// The leader forgets it: no longer in its view, never declared dead.
	waitFor(t, 5*time.Second, "a forgets b", func() bool { return len(a.Nodes()) == 1 && !a.Peers() })
	if a.IsDead("b") || len(a.deadSeen()) != 0 {
		t.Errorf("the removed node was declared dead: %v", a.deadSeen())
	}
}
