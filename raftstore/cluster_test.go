package raftstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kv is a StateMachine: a map set by commands "key=value".
type kv struct {
	mu      sync.Mutex
	m       map[string]string
	applied int
}

func newKV() *kv { return &kv{m: map[string]string{}} }

func (s *kv) Apply(index uint64, cmd []byte) any {
	k, v, ok := bytes.Cut(cmd, []byte("="))
	if !ok {
		return fmt.Errorf("malformed command %q", cmd)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(k)] = string(v)
	s.applied++
	return index
}

func (s *kv) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(s.m)
	return kvSnapshot(b), err
}

func (s *kv) Restore(r io.ReadCloser) error {
	defer r.Close()
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	return nil
}

// hash is a digest of the whole state, equal on nodes that hold the same state.
func (s *kv) hash() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, s.m[k])
	}
	return hex.EncodeToString(h.Sum(nil)), len(keys)
}

func (s *kv) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

type kvSnapshot []byte

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (kvSnapshot) Release() {}

type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	r     *raft.Raft
	kv    *kv
	store *Store
	trans *raft.InmemTransport
}

type cluster struct {
	t     testing.TB
	nodes []*node
}

// newCluster starts n nodes, each with its own Store in its own folder, joined by in-memory
// transports, and waits for a leader.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var servers []raft.Server
	for i := 0; i < n; i++ {
		nd := &node{id: raft.ServerID(fmt.Sprintf("n%d", i)), addr: raft.ServerAddress(fmt.Sprintf("addr%d", i)), dir: t.TempDir()}
		c.nodes = append(c.nodes, nd)
		servers = append(servers, raft.Server{ID: nd.id, Address: nd.addr})
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	if err := c.nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	t.Cleanup(c.shutdown)
	c.leader(5 * time.Second)
	return c
}

// start opens nd's store (again, if it ran before) and starts its raft.
func (c *cluster) start(nd *node) {
	t := c.t
	t.Helper()
	store, err := Open(context.Background(), Config{Dir: nd.dir})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := NewSnapshotStore(nd.dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport(nd.addr)
	for _, o := range c.nodes {
		if o != nd && o.trans != nil && o.r != nil {
			trans.Connect(o.addr, o.trans)
			o.trans.Connect(nd.addr, trans)
		}
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = nd.id
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	cfg.ElectionTimeout = 150 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.MaxAppendEntries = 256
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	nd.kv = newKV()
	r, err := raft.NewRaft(cfg, NewFSM(nd.kv), store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	nd.r, nd.store, nd.trans = r, store, trans
}

// stop shuts nd's raft down and closes its store and transport.
func (c *cluster) stop(nd *node) {
	if nd.r == nil {
		return
	}
	if err := nd.r.Shutdown().Error(); err != nil {
		c.t.Errorf("shutdown %s: %v", nd.id, err)
	}
	for _, o := range c.nodes {
		if o != nd && o.trans != nil {
			o.trans.Disconnect(nd.addr)
		}
	}
	nd.trans.Close()
	if err := nd.store.Close(); err != nil {
		c.t.Errorf("close store %s: %v", nd.id, err)
	}
	nd.r = nil
}

func (c *cluster) shutdown() {
	for _, nd := range c.nodes {
		c.stop(nd)
	}
}

// leader polls until one running node is leader, or fails after d.
func (c *cluster) leader(d time.Duration) *node {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, nd := range c.nodes {
			if nd.r != nil && nd.r.State() == raft.Leader {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %v", d)
	return nil
}

// converge waits until every running node has applied the same state holding want keys and
// returns its hash; it fails the test if the nodes still differ after 10 s.
func (c *cluster) converge(want int) string {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var hashes []string
		var sizes []int
		same := true
		for _, nd := range c.nodes {
			if nd.r == nil {
				continue
			}
			h, n := nd.kv.hash()
			hashes, sizes = append(hashes, h), append(sizes, n)
			same = same && h == hashes[0] && n == want
		}
		if same {
			return hashes[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes did not converge on %d keys: sizes %v, hashes %v", want, sizes, hashes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// applyConcurrently writes keys prefix0..prefix(n-1) through b from g goroutines and returns
// the keys whose Apply succeeded.
func applyConcurrently(t testing.TB, b *Batcher, prefix string, n, g int) []string {
	t.Helper()
	var mu sync.Mutex
	var ok []string
	var wg sync.WaitGroup
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += g {
				k := fmt.Sprintf("%s%d", prefix, i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := b.Apply(ctx, []byte(k+"=v"+k))
				cancel()
				if err != nil {
					continue
				}
				if _, isIndex := res.(uint64); !isIndex {
					t.Errorf("Apply(%s) result %v (%T), want the log index", k, res, res)
				}
				mu.Lock()
				ok = append(ok, k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

func TestRaft_ThreeNodesApplyConcurrentlyAndAgree(t *testing.T) {
	c := newCluster(t, 3)
	ld := c.leader(5 * time.Second)
	b, err := NewBatcher(ld.r, BatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 2000
	if got := applyConcurrently(t, b, "k", n, 50); len(got) != n {
		t.Fatalf("%d of %d writes succeeded with a stable leader", len(got), n)
	}
	// Batching happened: far fewer log entries than commands.
	if last := ld.r.LastIndex(); last >= n {
		t.Errorf("log reached index %d for %d commands: no batching", last, n)
	} else {
		t.Logf("%d commands in %d log entries", n, last)
	}
	h := c.converge(n)
	t.Logf("all 3 nodes hold %d keys, state hash %s", n, h[:16])

	// A snapshot goes through the snapshot store.
	if err := ld.r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snaps, err := NewSnapshotStore(ld.dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := snaps.List(); err != nil || len(list) != 1 {
		t.Fatalf("snapshots after Snapshot: %v, %v", list, err)
	}
}

func TestRaft_LeaderShutdownLosesNoCommittedWrite(t *testing.T) {
	c := newCluster(t, 3)
	old := c.leader(5 * time.Second)
	b, err := NewBatcher(old.r, BatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Writes in flight while the leader goes down: the acknowledged ones must survive.
	var acked []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		acked = applyConcurrently(t, b, "a", 3000, 20)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for old.kv.appliedCount() < 500 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	killed := time.Now()
	c.stop(old)
	<-done
	b.Close()
	ld := c.leader(5 * time.Second)
	t.Logf("new leader %s after %v; %d of 3000 writes acknowledged before and during the shutdown",
		ld.id, time.Since(killed).Round(time.Millisecond), len(acked))
	if len(acked) < 500 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}

	b2, err := NewBatcher(ld.r, BatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if got := applyConcurrently(t, b2, "b", 500, 10); len(got) != 500 {
		t.Fatalf("%d of 500 writes succeeded on the new leader", len(got))
	}
	// Wait for the survivors to apply everything, then check every acknowledged write is there.
	if err := ld.r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		if nd.r == nil {
			continue
		}
		for _, k := range acked {
			deadline := time.Now().Add(5 * time.Second)
			for {
				if v, ok := nd.kv.get(k); ok {
					if v != "v"+k {
						t.Fatalf("%s: %s = %q", nd.id, k, v)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s lost acknowledged write %s", nd.id, k)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	// The old leader comes back from its own store and catches up to the same state.
	c.start(old)
	_, want := ld.kv.hash()
	h := c.converge(want)
	t.Logf("old leader rejoined from disk; all 3 nodes hold %d keys, state hash %s", want, h[:16])
}

func (s *kv) appliedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}
