package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// nodeSet runs real Nodes over TCP on loopback. Its Forwarder calls the leader's Node directly,
// which is what the engine's forwarder does over HTTP.
type nodeSet struct {
	t     *testing.T
	base  string
	mu    sync.Mutex
	nodes map[string]*Node
	dirs  map[string]string
	addrs map[string]string
}

func newNodeSet(t *testing.T) *nodeSet {
	s := &nodeSet{t: t, base: t.TempDir(), nodes: map[string]*Node{}, dirs: map[string]string{}, addrs: map[string]string{}}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, n := range s.nodes {
			n.Close()
		}
	})
	return s
}

func (s *nodeSet) node(id string) *Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[id]
}

func (s *nodeSet) Apply(ctx context.Context, leader string, cmd []byte) error {
	n := s.node(leader)
	if n == nil {
		return fmt.Errorf("%w: %s is down", ErrUnreachable, leader)
	}
	return n.ApplyEncoded(ctx, cmd)
}

func (s *nodeSet) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	n := s.node(leader)
	if n == nil {
		return 0, fmt.Errorf("%w: %s is down", ErrUnreachable, leader)
	}
	return n.ReadIndex(ctx)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start starts (or restarts) node id; the first node bootstraps.
func (s *nodeSet) start(id string, bootstrap bool, tune func(*NodeConfig)) *Node {
	s.t.Helper()
	s.mu.Lock()
	if s.dirs[id] == "" {
		s.dirs[id] = filepath.Join(s.base, id)
		s.addrs[id] = freeAddr(s.t)
	}
	cfg := NodeConfig{ID: id, Dir: s.dirs[id], Bind: s.addrs[id], Bootstrap: bootstrap, Forwarder: s,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, Logger: testLogger()}
	s.mu.Unlock()
	if tune != nil {
		tune(&cfg)
	}
	n, err := OpenNode(context.Background(), cfg)
	if err != nil {
		s.t.Fatalf("open %s: %v", id, err)
	}
	s.mu.Lock()
	s.nodes[id] = n
	s.mu.Unlock()
	return n
}

func (s *nodeSet) stop(id string) {
	s.mu.Lock()
	n := s.nodes[id]
	delete(s.nodes, id)
	s.mu.Unlock()
	if err := n.Close(); err != nil {
		s.t.Errorf("close %s: %v", id, err)
	}
}

func (s *nodeSet) leader(d time.Duration) *Node {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, n := range s.nodes {
			if n.IsLeader() {
				s.mu.Unlock()
				return n
			}
		}
		s.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatal("no leader")
	return nil
}

// cluster3 starts n1 (bootstrapping) and joins n2 and n3.
func (s *nodeSet) cluster3(tune func(*NodeConfig)) {
	s.t.Helper()
	s.start("n1", true, tune)
	for _, id := range []string{"n2", "n3"} {
		n := s.start(id, false, tune)
		// Adding a voter can cost the leader its lease while the new node starts: ask whoever
		// leads next.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := s.leader(5*time.Second).AddVoter(context.Background(), id, n.Address())
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("add %s: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// converge waits until every running node holds the same state and returns its hash.
func (s *nodeSet) converge() (string, int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last map[string]string
	for time.Now().Before(deadline) {
		last = map[string]string{}
		seen := map[string]bool{}
		var h string
		var keys int
		s.mu.Lock()
		for id, n := range s.nodes {
			hh, k, err := n.KV().Hash()
			if err != nil {
				s.t.Fatal(err)
			}
			last[id] = fmt.Sprintf("%s… (%d keys, applied %d)", hh[:12], k, n.KV().Applied())
			seen[hh] = true
			h, keys = hh, k
		}
		s.mu.Unlock()
		if len(seen) == 1 {
			return h, keys
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("nodes did not converge: %v", last)
	return "", 0
}

func set(k, v string) *Command {
	return &Command{Ops: []Op{{Kind: OpSet, Key: []byte(k), Value: []byte(v)}}}
}

func TestNode_ThreeNodesWritesFromAnyNodeConditionsAndReads(t *testing.T) {
	s := newNodeSet(t)
	s.cluster3(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for _, id := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := s.node(id).Apply(ctx, set(fmt.Sprintf("k/%s/%03d", id, i), id)); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// A follower reads its own write, and a linearizable read sees the leader's.
	f := s.node("n3")
	if f.IsLeader() {
		f = s.node("n2")
	}
	if err := s.leader(time.Second).Apply(ctx, set("fresh", "1")); err != nil {
		t.Fatal(err)
	}
	if err := f.Linearize(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := f.KV().Get([]byte("fresh")); err != nil || string(v) != "1" {
		t.Fatalf("follower read after Linearize = %q, %v", v, err)
	}

	// Conditions: create-if-absent once, compare-and-set.
	create := &Command{Conds: []Cond{{Key: []byte("lock"), Absent: true}}, Ops: []Op{{Kind: OpSet, Key: []byte("lock"), Value: []byte("a")}}}
	if err := f.Apply(ctx, create); err != nil {
		t.Fatal(err)
	}
	again := &Command{Conds: []Cond{{Key: []byte("lock"), Absent: true}}, Ops: []Op{{Kind: OpSet, Key: []byte("lock"), Value: []byte("b")}}}
	if err := f.Apply(ctx, again); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	cas := &Command{Conds: []Cond{{Key: []byte("lock"), Value: []byte("a")}}, Ops: []Op{{Kind: OpDelete, Key: []byte("lock")}}}
	if err := s.node("n1").Apply(ctx, cas); err != nil {
		t.Fatal(err)
	}
	// Reapplying a command with the same id is a no-op with the first outcome.
	dup := set("counter", "x")
	dup.ID = "req-1"
	if err := f.Apply(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, set("counter", "y")); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.KV().Get([]byte("counter")); string(v) != "y" {
		t.Fatalf("replayed request changed the state: counter = %q", v)
	}

	_, keys := s.converge()
	if keys != 150+1+1 {
		t.Fatalf("%d keys, want 152", keys)
	}
}

func TestNode_LeaderKilledNoCommittedWriteLostAndRestartSkipsApplied(t *testing.T) {
	s := newNodeSet(t)
	s.cluster3(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, id := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := s.node(id)
				if n == nil {
					return
				}
				k := fmt.Sprintf("w/%s/%05d", id, i)
				wctx, c := context.WithTimeout(ctx, 3*time.Second)
				err := n.Apply(wctx, set(k, "v"))
				c()
				if err == nil {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	old := s.leader(time.Second)
	oldID := old.ID()
	killed := time.Now()
	s.stop(oldID)
	nl := s.leader(5 * time.Second)
	failover := time.Since(killed)
	t.Logf("new leader %s after %v", nl.ID(), failover)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	// The old leader comes back with its state on disk and catches up.
	s.start(oldID, false, nil)
	h, keys := s.converge()
	t.Logf("state %s… with %d keys, %d writes acknowledged", h[:12], keys, len(acked))
	for _, id := range []string{"n1", "n2", "n3"} {
		for k := range acked {
			if _, err := s.node(id).KV().Get([]byte(k)); err != nil {
				t.Fatalf("%s lost acknowledged write %s: %v", id, k, err)
			}
		}
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
}

func TestNode_FarBehindNodeCatchesUpFromSnapshot(t *testing.T) {
	s := newNodeSet(t)
	tune := func(c *NodeConfig) {
		c.SnapshotThreshold = 64
		c.TrailingLogs = 16
		c.SnapshotInterval = 50 * time.Millisecond
	}
	s.cluster3(tune)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.converge()
	away := "n3"
	if s.node(away).IsLeader() {
		away = "n2"
	}
	s.stop(away)
	l := s.leader(5 * time.Second)
	for i := range 400 {
		if err := l.Apply(ctx, set(fmt.Sprintf("s/%04d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// One more entry after the snapshot, so the catch-up needs snapshot and log.
	if err := l.Apply(ctx, set("after", "v")); err != nil {
		t.Fatal(err)
	}
	s.start(away, false, tune)
	_, keys := s.converge()
	if keys != 401 {
		t.Fatalf("%d keys after catch-up, want 401", keys)
	}
	// And restarting it again, from its own persisted state, changes nothing.
	s.stop(away)
	s.start(away, false, tune)
	if _, k := s.converge(); k != 401 {
		t.Fatalf("%d keys after restart, want 401", k)
	}
}

func TestNode_MembershipRefusals(t *testing.T) {
	s := newNodeSet(t)
	n1 := s.start("n1", true, nil)
	s.leader(5 * time.Second)
	ctx := context.Background()
	if err := n1.RemoveServer(ctx, "n1"); !errors.Is(err, ErrMembership) {
		t.Fatalf("removing the last voter: %v", err)
	}
	n2 := s.start("n2", false, nil)
	if err := n1.AddVoter(ctx, "n2", n2.Address()); err != nil {
		t.Fatal(err)
	}
	if err := n1.AddVoter(ctx, "n2", n2.Address()); err != nil {
		t.Fatalf("rejoin at the same address: %v", err)
	}
	if err := n1.AddVoter(ctx, "n2", "127.0.0.1:1"); !errors.Is(err, ErrMembership) {
		t.Fatalf("duplicate id: %v", err)
	}
	if err := n1.AddVoter(ctx, "n9", n2.Address()); !errors.Is(err, ErrMembership) {
		t.Fatalf("duplicate address: %v", err)
	}
	if err := n1.RemoveServer(ctx, "nope"); !errors.Is(err, ErrMembership) {
		t.Fatalf("unknown node: %v", err)
	}
	if err := n1.RemoveServer(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if m, _ := n1.Members(); len(m) != 1 {
		t.Fatalf("members after removal: %v", m)
	}
	if err := n1.Apply(ctx, &Command{Ops: []Op{{Kind: OpSet, Key: []byte{0, 'a'}, Value: []byte("x")}}}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("reserved key: %v", err)
	}
	if err := n1.ApplyEncoded(ctx, []byte{9, 9, 9}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("malformed command: %v", err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeCommand(set("a", "b")))
	f.Add(EncodeCommand(&Command{ID: "x", Conds: []Cond{{Key: []byte("k"), Absent: true}}, Ops: []Op{{Kind: OpDelete, Key: []byte("k")}}}))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		again, err := DecodeCommand(EncodeCommand(c))
		if err != nil {
			t.Fatalf("re-encoded command refused: %v", err)
		}
		if again.ID != c.ID || len(again.Ops) != len(c.Ops) || len(again.Conds) != len(c.Conds) {
			t.Fatal("round trip changed the command")
		}
	})
}

func testLogger() *slog.Logger {
	if os.Getenv("LUMEN_RAFT_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// A leader cut off from both followers (its in-memory transport disconnected) stops
// acknowledging writes, the majority elects a new leader and commits, and once the partition
// heals every node holds the same state, the writes refused on the minority side included
// nowhere.
func TestNode_PartitionedLeaderStopsAcceptingWritesAndHealedNodesConverge(t *testing.T) {
	s := newNodeSet(t)
	trans := map[string]*raft.InmemTransport{}
	for _, id := range []string{"n1", "n2", "n3"} {
		_, tr := raft.NewInmemTransport(raft.ServerAddress("mem-" + id))
		trans[id] = tr
	}
	for a, ta := range trans {
		for b, tb := range trans {
			if a != b {
				ta.Connect(tb.LocalAddr(), tb)
			}
		}
	}
	tune := func(id string) func(*NodeConfig) {
		return func(c *NodeConfig) { c.Transport = trans[id]; c.Bind = "" }
	}
	s.start("n1", true, tune("n1"))
	for _, id := range []string{"n2", "n3"} {
		n := s.start(id, false, tune(id))
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := s.leader(5*time.Second).AddVoter(context.Background(), id, n.Address())
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("add %s: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx := context.Background()
	old := s.leader(5 * time.Second)
	if err := old.Apply(ctx, set("before", "1")); err != nil {
		t.Fatal(err)
	}
	s.converge()

	// Cut the leader off.
	oldT := trans[old.ID()]
	oldT.DisconnectAll()
	for id, tr := range trans {
		if id != old.ID() {
			tr.Disconnect(oldT.LocalAddr())
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := old.Apply(wctx, set("minority", "x"))
	cancel()
	if err == nil {
		t.Fatal("the cut-off leader acknowledged a write")
	}
	var nl *Node
	deadline := time.Now().Add(10 * time.Second)
	for nl == nil && time.Now().Before(deadline) {
		for _, id := range []string{"n1", "n2", "n3"} {
			if n := s.node(id); n != old && n.IsLeader() {
				nl = n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if nl == nil {
		t.Fatal("the majority elected no leader")
	}
	if err := nl.Apply(ctx, set("majority", "y")); err != nil {
		t.Fatal(err)
	}
	if old.IsLeader() {
		t.Fatal("the cut-off node still believes it leads")
	}

	// Heal.
	for a, ta := range trans {
		for b, tb := range trans {
			if a != b {
				ta.Connect(tb.LocalAddr(), tb)
			}
		}
	}
	s.converge()
	if _, err := old.KV().Get([]byte("majority")); err != nil {
		t.Fatalf("healed node lacks the majority's write: %v", err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if _, err := s.node(id).KV().Get([]byte("minority")); err == nil {
			t.Fatalf("%s holds the write the cut-off leader refused", id)
		}
	}
}

// Reads right after an election, before any new write, do not wait for a write that never comes:
// the new leader's no-op entry reaches raft's applied index but not the state.
func TestNode_LinearizeAfterElectionWithoutWrites(t *testing.T) {
	s := newNodeSet(t)
	s.cluster3(nil)
	s.converge()
	old := s.leader(5 * time.Second)
	s.stop(old.ID())
	nl := s.leader(10 * time.Second)
	for _, id := range []string{"n1", "n2", "n3"} {
		n := s.node(id)
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := n.Linearize(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s (leader %s): linearize with no write since the election: %v", id, nl.ID(), err)
		}
	}
}

// A worker can be removed from a cluster of one voter. A removed node that holds its removal
// in its configuration knows it (CheckRemoved), and its writes and linearizable reads fail at
// once with ErrRemoved; a leader's VerifyLeader holds only in its term, and ApplyAsLeader never
// forwards.
func TestNode_RemovedNodeFailsFastAndLeaderOnlyApplies(t *testing.T) {
	s := newNodeSet(t)
	n1 := s.start("n1", true, nil)
	s.leader(5 * time.Second)
	ctx := context.Background()
	w := s.start("w", false, nil)
	if err := n1.AddNonvoter(ctx, "w", w.Address()); err != nil {
		t.Fatal(err)
	}
	if err := n1.Apply(ctx, set("a", "1")); err != nil {
		t.Fatal(err)
	}
	s.converge()
	if w.CheckRemoved() || n1.CheckRemoved() {
		t.Fatal("a member thinks it was removed")
	}
	term := n1.Term()
	if err := n1.VerifyLeader(ctx, term); err != nil {
		t.Fatalf("the leader does not verify: %v", err)
	}
	if err := n1.VerifyLeader(ctx, term+1); err == nil {
		t.Fatal("the leader verified in a term it is not in")
	}
	if err := w.ApplyAsLeader(ctx, term, set("b", "2")); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("ApplyAsLeader on a follower: %v", err)
	}
	if err := n1.ApplyAsLeader(ctx, term+1, set("b", "2")); !NotLeader(err) {
		t.Fatalf("ApplyAsLeader in another term: %v", err)
	}
	if err := n1.ApplyAsLeader(ctx, term, set("b", "2")); err != nil {
		t.Fatal(err)
	}
	if err := n1.RemoveServer(ctx, "w"); err != nil {
		t.Fatalf("removing a worker from a cluster of one voter: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !w.CheckRemoved() {
		if time.Now().After(deadline) {
			t.Fatal("the removed node never saw its removal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if gone, why := w.Removed(); !gone || why == "" {
		t.Fatalf("Removed() = %v, %q", gone, why)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.Apply(wctx, set("c", "3")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("a write on the removed node: %v", err)
	}
	if err := w.Linearize(wctx); !errors.Is(err, ErrRemoved) {
		t.Fatalf("a read on the removed node: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the removed node took %v to refuse", d)
	}
	// A wait already under way is woken: a node marked removed by the leader's word.
	n2 := s.start("n2", false, nil)
	if err := n1.AddNonvoter(ctx, "n2", n2.Address()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n2.WaitApplied(ctx, 1<<40) }()
	time.Sleep(50 * time.Millisecond)
	if !n2.MarkRemoved("the leader says so") || n2.MarkRemoved("again") {
		t.Fatal("MarkRemoved did not record the first time only")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), "the leader says so") {
			t.Fatalf("the wait ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a wait on a removed node hung")
	}
}
