package raftstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Errors of a Node.
var (
	// ErrNoLeader means no leader is known now; the operation may be retried.
	ErrNoLeader = errors.New("raftstore: no leader")
	// ErrUnreachable wraps a failure to reach the leader; the operation may be retried.
	ErrUnreachable = errors.New("raftstore: leader unreachable")
	// ErrOutcomeUnknown wraps a write that was sent but whose outcome is unknown (the deadline
	// passed first). Retrying it with the same Command.ID is safe.
	ErrOutcomeUnknown = errors.New("raftstore: outcome unknown")
	// ErrMembership wraps a refused membership change.
	ErrMembership = errors.New("raftstore: membership")
	// ErrNotLeader means this node is not the leader; LeaderID names the one to ask. It is raft's
	// own value, so errors.Is matches it however it reached the caller.
	ErrNotLeader = raft.ErrNotLeader
	// ErrLeadershipLost means the leader lost its office while a write was in flight; the write
	// may or may not commit.
	ErrLeadershipLost = raft.ErrLeadershipLost
)

// NotLeader reports whether err means "not the leader (now)": ErrNotLeader, ErrLeadershipLost, a
// leadership transfer in progress, or ErrNoLeader. Packages above raftstore branch on it instead
// of on raft's errors.
func NotLeader(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, ErrNoLeader)
}

// Forwarder carries a follower's requests to the leader. The engine implements it over its
// node-to-node protocol; errors meaning "try again" wrap ErrUnreachable, ErrNotLeader or
// ErrNoLeader. leader is the leader's node id.
type Forwarder interface {
	// Apply asks the leader to apply an encoded command and returns the command's outcome.
	Apply(ctx context.Context, leader string, cmd []byte) error
	// ReadIndex asks the leader for an index that covers every write committed before the call
	// (see Node.ReadIndex).
	ReadIndex(ctx context.Context, leader string) (uint64, error)
}

// NodeConfig configures OpenNode.
type NodeConfig struct {
	// ID names the node in the cluster; it must not change across restarts.
	ID string
	// Dir holds the node's log (Dir/log), snapshots (Dir/snapshots) and state (Dir/state).
	Dir string
	// Bind is the TCP address raft listens on. Empty runs a single node on an in-memory
	// transport, reachable by no other node.
	Bind string
	// Advertise is the address other nodes reach this one at; empty means Bind.
	Advertise string
	// TLS, when set, makes raft traffic mutual TLS: it is used to listen and to dial, so it
	// needs a certificate, ClientCAs with ClientAuth set to RequireAndVerifyClientCert, and
	// RootCAs.
	TLS *tls.Config
	// Transport, when set, replaces the TCP transport (Bind and TLS are then ignored): tests
	// give in-memory transports they can cut to make partitions.
	Transport raft.Transport
	// Bootstrap forms a new cluster of this node alone when Dir holds no raft state yet.
	Bootstrap bool
	// Forwarder carries writes and reads from a follower to the leader. Nil makes a follower
	// fail them with raft.ErrNotLeader.
	Forwarder Forwarder
	// Logger receives raft's and badger's warnings. Nil discards them.
	Logger *slog.Logger

	// HeartbeatTimeout and ElectionTimeout default to 500 ms (a leader's death is noticed
	// within 0.5 to 1 s); the leader's lease is HeartbeatTimeout too.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// SnapshotThreshold (default 8192 entries), SnapshotInterval (default 60 s) and TrailingLogs
	// (default 10240 entries) tune snapshots and log compaction.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// MaxBatch caps the commands packed in one log entry (default 1024); 1 turns batching
	// off, which only a benchmark wants.
	MaxBatch int
}

// Node is one member of a replicated key-value state: raft with its log in a Store, snapshots in
// a file snapshot store and a KV state machine, plus what a cluster needs around them:
// forwarding to the leader, idempotent retries, linearizable reads and membership changes.
type Node struct {
	cfg   NodeConfig
	raft  *raft.Raft
	kv    *KV
	store *Store
	trans raft.Transport
	batch *Batcher
	addr  raft.ServerAddress

	mu          sync.Mutex
	readyTerm   uint64 // the term in which this node, as leader, has applied a barrier
	rm          removal
	stopWatch   chan struct{}
	watchDone   chan struct{}
	closeOnce   sync.Once
	closeErr    error
	transCloser io.Closer
}

// OpenNode opens the node's stores and starts raft. The caller must Close it.
func OpenNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.ID == "" || cfg.Dir == "" {
		return nil, errors.New("raftstore: NodeConfig.ID and Dir are required")
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 500 * time.Millisecond
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = 500 * time.Millisecond
	}
	n := &Node{cfg: cfg, stopWatch: make(chan struct{}), watchDone: make(chan struct{}), rm: removal{removed: make(chan struct{})}}
	ok := false
	defer func() {
		if !ok {
			n.closeParts()
		}
	}()
	var err error
	if n.store, err = Open(ctx, Config{Dir: cfg.Dir, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	if n.kv, err = OpenKV(KVConfig{Dir: filepath.Join(cfg.Dir, "state"), Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	snaps, err := NewSnapshotStore(cfg.Dir, 2)
	if err != nil {
		return nil, err
	}
	if err := n.openTransport(); err != nil {
		return nil, err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	rc.MaxAppendEntries = 256
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	rc.SnapshotInterval = 60 * time.Second
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.Logger = hclogger(cfg.Logger)
	// The state persists with its applied index: raft need not restore the newest snapshot on
	// start unless the state is behind it (new, emptied after a crash in Restore, or lost).
	rc.NoSnapshotRestoreOnStart = true
	if list, err := snaps.List(); err != nil {
		return nil, fmt.Errorf("raftstore: list snapshots: %w", err)
	} else if len(list) > 0 && list[0].Index > n.kv.Applied() {
		rc.NoSnapshotRestoreOnStart = false
	}

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(n.store, n.store, snaps)
		if err != nil {
			return nil, fmt.Errorf("raftstore: read raft state: %w", err)
		}
		if !has {
			boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.addr, Suffrage: raft.Voter}}}
			if err := raft.BootstrapCluster(rc, n.store, n.store, snaps, n.trans, boot); err != nil {
				return nil, fmt.Errorf("raftstore: bootstrap: %w", err)
			}
		}
	}
	if n.raft, err = raft.NewRaft(rc, n.kv, n.store, n.store, snaps, n.trans); err != nil {
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	if n.batch, err = NewBatcher(n.raft, BatcherConfig{EnqueueTimeout: 5 * time.Second, MaxCommands: cfg.MaxBatch}); err != nil {
		return nil, err
	}
	go n.watchLeadership()
	ok = true
	return n, nil
}

func (n *Node) openTransport() error {
	if t := n.cfg.Transport; t != nil {
		n.addr, n.trans = t.LocalAddr(), t
		if c, ok := t.(io.Closer); ok {
			n.transCloser = c
		}
		return nil
	}
	if n.cfg.Bind == "" {
		addr, t := raft.NewInmemTransport(raft.ServerAddress("inmem:" + n.cfg.ID))
		n.addr, n.trans, n.transCloser = addr, t, t
		return nil
	}
	adv := n.cfg.Advertise
	if adv == "" {
		adv = n.cfg.Bind
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return fmt.Errorf("raftstore: advertise address %q: %w", adv, err)
	}
	if advAddr.IP == nil || advAddr.IP.IsUnspecified() {
		return fmt.Errorf("raftstore: advertise address %q is not one other nodes can dial", adv)
	}
	var t *raft.NetworkTransport
	if n.cfg.TLS != nil {
		ln, err := tls.Listen("tcp", n.cfg.Bind, n.cfg.TLS)
		if err != nil {
			return fmt.Errorf("raftstore: listen on %s: %w", n.cfg.Bind, err)
		}
		t = raft.NewNetworkTransport(&tlsStream{Listener: ln, adv: advAddr, cfg: n.cfg.TLS}, 3, 10*time.Second, io.Discard)
	} else {
		t, err = raft.NewTCPTransport(n.cfg.Bind, advAddr, 3, 10*time.Second, io.Discard)
		if err != nil {
			return fmt.Errorf("raftstore: listen on %s: %w", n.cfg.Bind, err)
		}
	}
	n.addr, n.trans = raft.ServerAddress(advAddr.String()), t
	// Close also the pooled outgoing connections, so that peers' handlers of them end.
	n.transCloser = closerFunc(func() error { t.CloseStreams(); return t.Close() })
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// tlsStream is a raft.StreamLayer over mutual TLS.
type tlsStream struct {
	net.Listener
	adv net.Addr
	cfg *tls.Config
}

func (s *tlsStream) Addr() net.Addr { return s.adv }

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(addr), s.cfg)
}

// hclogger passes raft's warnings and errors to l.
func hclogger(l *slog.Logger) hclog.Logger {
	if l == nil {
		return hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	}
	return hclog.New(&hclog.LoggerOptions{Output: slogWriter{l}, Level: hclog.Warn, DisableTime: true})
}

// slogWriter logs each line written to it as a warning.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("raft: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// watchLeadership applies a barrier whenever this node becomes leader, so that reads it serves
// see every entry committed by earlier leaders.
func (n *Node) watchLeadership() {
	defer close(n.watchDone)
	ch := n.raft.LeaderCh()
	for {
		select {
		case <-n.stopWatch:
			return
		case lead := <-ch:
			if lead {
				n.barrier()
			}
		}
	}
}

func (n *Node) barrier() {
	term := n.term()
	if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
		return
	}
	n.mu.Lock()
	if term > n.readyTerm {
		n.readyTerm = term
	}
	n.mu.Unlock()
}

// Term returns the raft term this node is in.
func (n *Node) Term() uint64 { return n.term() }

func (n *Node) term() uint64 {
	t, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	return t
}

// Close stops raft (without leaving the cluster; see Leave) and closes the stores.
func (n *Node) Close() error {
	n.mu.Lock()
	n.rm.closing = true
	n.mu.Unlock()
	n.closeOnce.Do(func() { n.closeErr = n.closeParts() })
	return n.closeErr
}

func (n *Node) closeParts() error {
	var errs []error
	if n.batch != nil {
		errs = append(errs, n.batch.Close())
	}
	if n.raft != nil {
		close(n.stopWatch)
		<-n.watchDone
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transCloser != nil {
		errs = append(errs, n.transCloser.Close())
	}
	if n.kv != nil {
		errs = append(errs, n.kv.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// ID returns the node's id; Address its raft address.
func (n *Node) ID() string { return n.cfg.ID }

// Address returns the raft address other nodes reach this one at.
func (n *Node) Address() string { return string(n.addr) }

// KV returns the node's state; read it after Linearize for linearizable reads.
func (n *Node) KV() *KV { return n.kv }

// IsLeader says whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's id and raft address, empty when none is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// NewRequestID returns a random id for Command.ID.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Apply commits c and waits until this node's state holds it. It returns the command's
// outcome: nil, an error wrapping ErrConflict, or another error. A follower forwards the
// command to the leader; while there is no leader, or the leader changes, it retries with the
// same request id (one is chosen if c.ID is empty), so a command is applied at most once. When
// ctx ends while the outcome is unknown, the error wraps ErrOutcomeUnknown.
func (n *Node) Apply(ctx context.Context, c *Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.ID == "" {
		c.ID = NewRequestID()
	}
	if err := n.removedErr(); err != nil {
		return err
	}
	cmd := EncodeCommand(c)
	sent := false
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		err := n.applyOnce(ctx, cmd, &sent)
		if !retryable(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-n.rm.removed:
			t.Stop()
			if sent {
				return fmt.Errorf("%w; request %s may have been applied by the cluster before (last: %v)", n.removedErr(), c.ID, err)
			}
			return n.removedErr()
		case <-ctx.Done():
			t.Stop()
			if sent {
				return fmt.Errorf("%w: request %s: %v", ErrOutcomeUnknown, c.ID, err)
			}
			return fmt.Errorf("raftstore: apply: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (n *Node) applyOnce(ctx context.Context, cmd []byte, sent *bool) error {
	if n.IsLeader() {
		*sent = true
		res, err := n.batch.Apply(ctx, cmd)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
			}
			return err
		}
		if e, ok := res.(error); ok {
			return e
		}
		return nil
	}
	leader, _ := n.Leader()
	if leader == "" {
		return ErrNoLeader
	}
	if n.cfg.Forwarder == nil {
		return raft.ErrNotLeader
	}
	*sent = true
	if err := n.cfg.Forwarder.Apply(ctx, string(leader), cmd); err != nil {
		return err
	}
	// The leader applied it; make this node's state hold it before answering, so the caller
	// reads its own write here.
	if err := n.Linearize(ctx); err != nil {
		if errors.Is(err, ErrRemoved) {
			return fmt.Errorf("%w; the cluster's leader applied the write, but this node cannot show it", err)
		}
		return err
	}
	return nil
}

// ApplyEncoded applies a command forwarded by a follower. It must run on the leader; it fails
// with raft.ErrNotLeader elsewhere (the follower then retries).
func (n *Node) ApplyEncoded(ctx context.Context, cmd []byte) error {
	if _, err := DecodeCommand(cmd); err != nil {
		return err
	}
	if !n.IsLeader() {
		return raft.ErrNotLeader
	}
	res, err := n.batch.Apply(ctx, cmd)
	if err != nil {
		return err
	}
	if e, ok := res.(error); ok {
		return e
	}
	return nil
}

func retryable(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrEnqueueTimeout) ||
		errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnreachable)
}

// ReadIndex returns, on the leader, an index that covers every write committed before the call:
// that of the last command at or below the commit index, once the node has confirmed with a
// quorum that it is still the leader and has applied a barrier in its term. It fails with
// raft.ErrNotLeader elsewhere.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, raft.ErrNotLeader
	}
	n.mu.Lock()
	ready := n.readyTerm == n.term()
	n.mu.Unlock()
	if !ready {
		n.barrier()
		n.mu.Lock()
		ready = n.readyTerm == n.term()
		n.mu.Unlock()
		if !ready {
			return 0, raft.ErrLeadershipLost
		}
	}
	idx := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, err
	}
	return n.readTarget(idx), ctx.Err()
}

// VerifyLeader confirms that this node leads, now, in term: a quorum answered it in that term
// and it has applied every entry committed before the call (a barrier of its term, then the
// read index), so what it reads of the state is current. A leader deposed while it was paused or
// cut off fails here (and steps down) instead of acting on what it knew before. A decision
// taken on the strength of the leader's own observations (a node declared dead) calls it first
// and then writes with ApplyAsLeader in the same term.
func (n *Node) VerifyLeader(ctx context.Context, term uint64) error {
	idx, err := n.ReadIndex(ctx)
	if err != nil {
		return err
	}
	if t := n.term(); t != term {
		return fmt.Errorf("%w: term %d, not %d", raft.ErrLeadershipLost, t, term)
	}
	return n.WaitApplied(ctx, idx)
}

// ApplyAsLeader applies c as Apply does, but only on this node while it leads in term: it never
// forwards, and fails with raft.ErrNotLeader (or ErrLeadershipLost) elsewhere. An entry this
// node appends commits only while its term lasts, so a deposed leader's decision never reaches
// the state.
func (n *Node) ApplyAsLeader(ctx context.Context, term uint64, c *Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.ID == "" {
		c.ID = NewRequestID()
	}
	if !n.IsLeader() {
		return raft.ErrNotLeader
	}
	if t := n.term(); t != term {
		return fmt.Errorf("%w: term %d, not %d", raft.ErrLeadershipLost, t, term)
	}
	res, err := n.batch.Apply(ctx, EncodeCommand(c))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
		return err
	}
	if e, ok := res.(error); ok {
		return e
	}
	return nil
}

// Linearize waits until this node's state holds every write committed before the call, so a read
// that follows it is linearizable. A follower asks the leader for its read index.
//
// On a node removed from the cluster it fails at once with ErrRemoved (see CheckRemoved).
func (n *Node) Linearize(ctx context.Context) error {
	if err := n.removedErr(); err != nil {
		return err
	}
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.ReadIndex(ctx)
		} else if leader, _ := n.Leader(); leader == "" {
			err = ErrNoLeader
		} else if n.cfg.Forwarder == nil {
			err = raft.ErrNotLeader
		} else {
			idx, err = n.cfg.Forwarder.ReadIndex(ctx, string(leader))
		}
		if err == nil {
			return n.WaitApplied(ctx, idx)
		}
		if !retryable(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-n.rm.removed:
			t.Stop()
			return n.removedErr()
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("raftstore: linearize: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// WaitApplied waits until this node's state holds the log's commands up to index. It fails with
// ErrRemoved once the node learns it was removed from the cluster: no more commands reach it.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	err := n.kv.waitApplied(ctx, index, n.rm.removed)
	if errors.Is(err, errStopped) {
		return n.removedErr()
	}
	return err
}

// readTarget turns a commit index into the index of the last command at or below it. Entries
// that carry no command (an election's no-op, a barrier, a configuration) never reach the state,
// whose applied index therefore stops at the command before them; waiting for the commit index
// itself would wait for the next write. (raft's own applied index counts them, but it moves when
// entries are handed to the state machine, before they are applied: no use for reads.)
func (n *Node) readTarget(idx uint64) uint64 {
	applied := n.kv.Applied()
	for i := idx; i > applied; i-- {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return i
		}
	}
	return min(applied, idx)
}

// applied is the index this node has handed to its state machine, for status: it counts the
// entries without a command, so a quiet cluster shows no lag.
func (n *Node) applied() uint64 { return max(n.kv.Applied(), n.raft.AppliedIndex()) }

// Member is one server of the cluster's configuration.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// Members returns the cluster's configuration as this node knows it.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// AddVoter adds a node to the cluster. It runs on the leader. Adding a node already a member at
// the same address succeeds (a node rejoining after a restart); an id already used at another
// address, or an address used by another id, is refused.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.addServer(ctx, id, addr, true)
}

// AddNonvoter adds a node that receives the log but does not vote (a worker): it holds the
// whole state without weighing on elections or commits. The same checks as AddVoter apply.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	return n.addServer(ctx, id, addr, false)
}

func (n *Node) addServer(ctx context.Context, id, addr string, voter bool) error {
	if id == "" || addr == "" {
		return fmt.Errorf("%w: node id and address are required", ErrMembership)
	}
	if !n.IsLeader() {
		return raft.ErrNotLeader
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		switch {
		case m.ID == id && m.Address == addr && m.Voter == voter:
			return nil
		case m.ID == id:
			return fmt.Errorf("%w: node id %q is already a member at %s; remove it first or choose another id", ErrMembership, id, m.Address)
		case m.Address == addr:
			return fmt.Errorf("%w: address %s already belongs to node %q", ErrMembership, addr, m.ID)
		}
	}
	if voter {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)).Error()
	}
	return n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)).Error()
}

// RemoveServer removes a node (alive or dead) from the cluster. It runs on the leader and
// refuses to remove the last voter.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return raft.ErrNotLeader
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	found, voter, voters := false, false, 0
	for _, m := range members {
		if m.Voter {
			voters++
		}
		if m.ID == id {
			found, voter = true, m.Voter
		}
	}
	if !found {
		return fmt.Errorf("%w: node %q is not a member", ErrMembership, id)
	}
	if voter && voters <= 1 {
		return fmt.Errorf("%w: node %q is the last voter; removing it would leave no cluster", ErrMembership, id)
	}
	return n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)).Error()
}

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}

// Stats is what a node says about itself.
type Stats struct {
	ID           string   `json:"id"`
	Address      string   `json:"address"`
	State        string   `json:"state"`
	Leader       string   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	LastLogIndex uint64   `json:"last_log_index"`
	Members      []Member `json:"members"`
}

// Stats reports the node's raft state.
func (n *Node) Stats() Stats {
	s := n.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(s[k], 10, 64); return v }
	leader, _ := n.Leader()
	members, _ := n.Members()
	return Stats{
		ID: n.cfg.ID, Address: string(n.addr), State: n.raft.State().String(), Leader: leader,
		Term: num("term"), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.applied(),
		LastLogIndex: num("last_log_index"), Members: members,
	}
}

// Snapshot takes a snapshot now and compacts the log behind it.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Records reads, linearizably, the JSON records under prefix that keep selects (nil: all), in
// key order: a read that sees every write completed before the call, on any node. A record that
// does not decode is an error naming its key.
func Records[T any](ctx context.Context, n *Node, prefix string, keep func(*T) bool) ([]T, error) {
	if err := n.Linearize(ctx); err != nil {
		return nil, err
	}
	out := []T{}
	err := n.KV().View(func(r Reader) error {
		return r.Scan([]byte(prefix), func(k, v []byte) error {
			var rec T
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("raftstore: record %s: %w", k, err)
			}
			if keep == nil || keep(&rec) {
				out = append(out, rec)
			}
			return nil
		})
	})
	return out, err
}
