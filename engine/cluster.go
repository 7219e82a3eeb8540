package engine

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
)

// ClusterConfig says how a node takes part in the replicated control plane. The zero value runs
// a single node: a one-voter raft on an in-memory transport, the same code path as a cluster.
type ClusterConfig struct {
	// NodeID names the node; default "local". It must not change across restarts.
	NodeID string
	// RaftBind is the TCP address raft listens on; empty runs a single node reachable by none.
	// RaftAdvertise is the address other nodes dial (default RaftBind).
	RaftBind, RaftAdvertise string
	// APIURL is the URL other nodes reach this node's REST API at (for forwarded writes and
	// reads). Required with RaftBind.
	APIURL string
	// Worker joins as a non-voting member: a host that runs work and holds a copy of the
	// state but takes no part in elections.
	Worker bool
	// Join is the API URL of a member to join through. Empty bootstraps a new cluster when the
	// data directory holds none.
	Join string
	// JoinToken is the cluster's shared secret: node-to-node requests carry the node credential
	// derived from it (peer.Credential). A bootstrapping node generates one and keeps it in
	// DataDir/join-token; a joining node must be given it (and keeps it there).
	JoinToken string
	// TLS, when set, makes raft traffic mutual TLS; HTTPClient, when set, carries node-to-node
	// requests to the peer routes (give it the same certificates when the APIs serve TLS).
	TLS        *tls.Config
	HTTPClient *http.Client
	// HeartbeatTimeout and ElectionTimeout tune failure detection (default 500 ms; 100 ms for
	// a single node, which has no peer to wait for).
	HeartbeatTimeout, ElectionTimeout time.Duration
	// SnapshotThreshold and TrailingLogs tune snapshots (see raftstore.NodeConfig).
	SnapshotThreshold, TrailingLogs uint64
	// HeartbeatInterval is how often a node tells the leader its resources (default 1 s);
	// DeadAfter is how long the leader waits without one before it declares the node dead
	// (default 10 s).
	HeartbeatInterval, DeadAfter time.Duration
}

// Keys of the replicated state, by owner.
const (
	registryPrefix = "reg/"          // the module registry's keys
	memberPrefix   = "cluster/node/" // one record per node: its raft address and API URL
)

// JoinTokenFile is the file in the data directory that holds the cluster's join token.
const JoinTokenFile = "join-token"

// member is what the replicated state records of a node.
type member struct {
	ID     string `json:"id"`
	Raft   string `json:"raft"`
	API    string `json:"api"`
	Joined int64  `json:"joined_unix"`
	Worker bool   `json:"worker,omitempty"`
}

// ErrJoin wraps a refused join.
var ErrJoin = wire.Wrap(wire.KindForbidden, errors.New("engine: join refused"))

// openCluster starts the node's raft. It runs before the registry opens, which reads through it.
func (e *Engine) openCluster(ctx context.Context) error {
	cc := &e.cfg.Cluster
	if cc.NodeID == "" {
		cc.NodeID = "local"
	}
	single := cc.RaftBind == ""
	if single && cc.Join != "" {
		return errors.New("engine: joining a cluster needs a raft address")
	}
	if !single && cc.APIURL == "" {
		return errors.New("engine: a cluster node needs the URL of its API (ClusterConfig.APIURL)")
	}
	if cc.HeartbeatTimeout == 0 && single {
		cc.HeartbeatTimeout, cc.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
	}
	tokPath := filepath.Join(e.cfg.DataDir, JoinTokenFile)
	if cc.JoinToken != "" {
		if err := writeSecret(tokPath, cc.JoinToken); err != nil {
			return err
		}
	} else {
		tok, err := LoadOrCreateSecret(tokPath)
		if err != nil {
			return err
		}
		cc.JoinToken = tok
	}
	if cc.HTTPClient == nil {
		cc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	e.live.peer = peer.NewClient(cc.HTTPClient, peer.Credential(cc.JoinToken))
	raftDir := filepath.Join(e.cfg.DataDir, "raft")
	joinedMark := filepath.Join(e.cfg.DataDir, "cluster-joined")
	_, err := os.Stat(joinedMark)
	joined := err == nil
	logger := e.log
	if single {
		// A single node's elections are its own start-up: only errors are news.
		logger = slog.New(minLevel{e.log.Handler(), slog.LevelError})
	}
	node, err := raftstore.OpenNode(ctx, raftstore.NodeConfig{
		ID: cc.NodeID, Dir: raftDir, Bind: cc.RaftBind, Advertise: cc.RaftAdvertise, TLS: cc.TLS,
		Bootstrap: cc.Join == "", Forwarder: forwarder{e}, Logger: logger,
		HeartbeatTimeout: cc.HeartbeatTimeout, ElectionTimeout: cc.ElectionTimeout,
		SnapshotThreshold: cc.SnapshotThreshold, TrailingLogs: cc.TrailingLogs,
	})
	if err != nil {
		return fmt.Errorf("engine: start the control plane: %w", err)
	}
	e.node = node
	e.regVersion = node.KV().Watch(registryPrefix)
	if cc.Join != "" && !joined {
		if err := e.join(ctx); err != nil {
			node.Close()
			return err
		}
		if err := os.WriteFile(joinedMark, []byte(cc.NodeID+"\n"), 0o600); err != nil {
			node.Close()
			return err
		}
	}
	e.startLiveness()
	e.startGroups()
	// Actors do not survive a restart: drop the names this node held before it.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.dropNames(e.ctx, cc.NodeID)
	}()
	// Record (or refresh) this node's addresses once a leader can commit it.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		rec, _ := json.Marshal(member{ID: cc.NodeID, Raft: node.Address(), API: cc.APIURL, Joined: time.Now().Unix(), Worker: cc.Worker})
		e.node.Apply(e.ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(memberPrefix + cc.NodeID), Value: rec}}})
	}()
	return nil
}

// minLevel passes on the records of at least its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

// nodeID is this node's id in the cluster ("local" for a single node).
func (e *Engine) nodeID() string { return e.cfg.Cluster.NodeID }

// LoadOrCreateSecret reads a secret file, or creates it with 32 random bytes in hex and mode
// 0600. A file readable by others is refused.
func LoadOrCreateSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		st, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("secret file %s has mode %v; it must be 0600", path, st.Mode().Perm())
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("secret file %s holds no secret", path)
		}
		return tok, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create secret: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return tok, f.Close()
}

// writeSecret writes a secret given from outside (a join token, API tokens from the cluster)
// with mode 0600, replacing what the file held.
func writeSecret(path, secret string) error {
	if len(secret) < 32 {
		return fmt.Errorf("engine: a secret of %d characters is too short (at least 32)", len(secret))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// API token files in the data directory, each holding one hex token, mode 0600.
const (
	AdminTokenFile = "token"      // may read and write
	ReadTokenFile  = "token.read" // may only read
)

// APISecretFiles are the data-directory files that a joining node receives from the leader,
// so that every node of a cluster accepts the same API tokens.
var APISecretFiles = []string{AdminTokenFile, ReadTokenFile}

// join asks the cluster (through cfg.Join, following the leader) to add this node.
func (e *Engine) join(ctx context.Context) error {
	cc := e.cfg.Cluster
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	target := strings.TrimRight(cc.Join, "/")
	req := &wire.JoinRequest{ID: cc.NodeID, Raft: e.node.Address(), API: cc.APIURL, Worker: cc.Worker}
	var last error
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		resp, err := e.live.peer.Join(ctx, target, req)
		we, answered := peer.IsAnswer(err)
		status := 0
		if answered {
			status = we.Kind.Status()
		}
		switch {
		case err == nil:
			for name, v := range resp.Secrets {
				if filepath.Base(name) != name {
					return fmt.Errorf("%w: the leader sent a secret named %q", ErrJoin, name)
				}
				if err := writeSecret(filepath.Join(e.cfg.DataDir, name), v); err != nil {
					return fmt.Errorf("engine: keep the cluster's %s: %w", name, err)
				}
			}
			return nil
		case answered && status == http.StatusMisdirectedRequest && we.LeaderAPI != "":
			target = strings.TrimRight(we.LeaderAPI, "/")
			last = fmt.Errorf("%s is not the leader", cc.Join)
		case answered && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			return fmt.Errorf("%w by %s: %s (check --join-token; the token is in the first node's %s)", ErrJoin, target, we.Message, JoinTokenFile)
		case answered && (status == http.StatusConflict || status == http.StatusBadRequest):
			return fmt.Errorf("%w by %s: %s", ErrJoin, target, we.Message)
		case answered:
			last = fmt.Errorf("%s answered %d: %s", target, status, we.Message)
		case errors.Is(err, peer.ErrVersion):
			return fmt.Errorf("%w: %v (run the same Lumen version on every node)", ErrJoin, err)
		default:
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: join through %s: %v", cc.Join, last)
		case <-time.After(backoff):
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ClusterJoin adds a node to the cluster (on the leader) and returns the secrets it must share.
// On a follower it fails with raftstore.ErrNotLeader; LeaderAPI names where to go.
func (e *Engine) ClusterJoin(ctx context.Context, req wire.JoinRequest) (map[string]string, error) {
	if req.ID == "" || req.Raft == "" || req.API == "" {
		return nil, fmt.Errorf("%w: id, raft and api are required", raftstore.ErrMembership)
	}
	add := e.node.AddVoter
	if req.Worker {
		add = e.node.AddNonvoter
	}
	if err := add(ctx, req.ID, req.Raft); err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(member{ID: req.ID, Raft: req.Raft, API: req.API, Joined: time.Now().Unix(), Worker: req.Worker})
	if err := e.node.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(memberPrefix + req.ID), Value: rec}}}); err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	for _, name := range APISecretFiles {
		tok, err := LoadOrCreateSecret(filepath.Join(e.cfg.DataDir, name))
		if err != nil {
			return nil, fmt.Errorf("engine: read %s: %w", name, err)
		}
		secrets[name] = tok
	}
	return secrets, nil
}

// LeaderAPI returns the API URL of the leader, empty when unknown.
func (e *Engine) LeaderAPI() string {
	id, _ := e.node.Leader()
	if id == "" {
		return ""
	}
	m, err := e.member(id)
	if err != nil {
		return ""
	}
	return m.API
}

func (e *Engine) member(id string) (*member, error) {
	b, err := e.node.KV().Get([]byte(memberPrefix + id))
	if err != nil {
		return nil, fmt.Errorf("%w: no record of node %s yet", raftstore.ErrUnreachable, id)
	}
	var m member
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("engine: record of node %s: %w", id, err)
	}
	return &m, nil
}

// ClusterApply applies a command forwarded by a follower; it must run on the leader.
func (e *Engine) ClusterApply(ctx context.Context, cmd []byte) error {
	return e.node.ApplyEncoded(ctx, cmd)
}

// ClusterReadIndex returns the leader's read index (see raftstore.Node.ReadIndex).
func (e *Engine) ClusterReadIndex(ctx context.Context) (uint64, error) {
	return e.node.ReadIndex(ctx)
}

// ClusterRemove removes a node from the cluster (through the leader).
func (e *Engine) ClusterRemove(ctx context.Context, id string) error {
	if !e.node.IsLeader() {
		return fmt.Errorf("%w: ask the leader (%s)", raftstore.ErrNotLeader, e.LeaderAPI())
	}
	if err := e.node.RemoveServer(ctx, id); err != nil {
		return err
	}
	return e.node.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(memberPrefix + id)}}})
}

// NodeStatus is what a node says of itself.
type NodeStatus struct {
	raftstore.Stats
	API        string `json:"api"`
	StateHash  string `json:"state_hash"`
	StateKeys  int    `json:"state_keys"`
	Goroutines int    `json:"goroutines"`
	// TasksRun counts the tasks this node ran; PlacedOut those it placed on other nodes, and
	// Retried the placed tasks it ran again after their node failed.
	TasksRun  int64 `json:"tasks_run"`
	PlacedOut int64 `json:"placed_out"`
	Retried   int64 `json:"retried"`
	// Rebuilt counts the objects this node owns that it rebuilt from lineage after the node
	// holding them was lost; PulledBytes the bytes of objects it fetched from other nodes.
	Rebuilt     int64 `json:"rebuilt"`
	PulledBytes int64 `json:"pulled_bytes"`
}

// ClusterSelf reports this node's raft state and the hash of its replicated state.
func (e *Engine) ClusterSelf() NodeStatus {
	h, n, _ := e.node.KV().Hash()
	tc := e.tasks.Counts()
	return NodeStatus{Stats: e.node.Stats(), API: e.cfg.Cluster.APIURL, StateHash: h, StateKeys: n, Goroutines: runtime.NumGoroutine(),
		TasksRun: tc.Ran, PlacedOut: tc.PlacedOut, Retried: tc.Retried,
		Rebuilt: e.live.rebuilt.Load(), PulledBytes: e.live.pulledBytes.Load()}
}

// MemberStatus is one member as the cluster status shows it.
type MemberStatus struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	API     string `json:"api,omitempty"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitempty"`
	State   string `json:"state,omitempty"`
	Applied uint64 `json:"applied_index"`
	Lag     uint64 `json:"lag"` // entries behind the leader's commit index
	Hash    string `json:"state_hash,omitempty"`
	// Goroutines is the member's goroutine count, for leak checks.
	Goroutines int `json:"goroutines,omitempty"`
	// Worker is set for a non-voting worker; Dead when the cluster declared it dead.
	Worker bool `json:"worker,omitempty"`
	Dead   bool `json:"dead,omitempty"`
	// TasksRun, PlacedOut, Retried, Rebuilt and PulledBytes are the member's task and object
	// counters (see NodeStatus).
	TasksRun    int64 `json:"tasks_run"`
	PlacedOut   int64 `json:"placed_out"`
	Retried     int64 `json:"retried"`
	Rebuilt     int64 `json:"rebuilt"`
	PulledBytes int64 `json:"pulled_bytes"`
}

// ClusterStatus is the whole cluster as one node sees it.
type ClusterStatus struct {
	Node        string         `json:"node"`
	Leader      string         `json:"leader"`
	Term        uint64         `json:"term"`
	CommitIndex uint64         `json:"commit_index"`
	Members     []MemberStatus `json:"members"`
	// Nodes is the live nodes' resources as the leader last told this node.
	Nodes []wire.NodeView `json:"nodes"`
}

// ClusterStatus asks every member for its state (in parallel, each within half a second) and
// reports the leader, term, commit index and each member's lag.
func (e *Engine) ClusterStatus(ctx context.Context) ClusterStatus {
	self := e.ClusterSelf()
	out := ClusterStatus{Node: self.ID, Leader: self.Leader, Term: self.Term, CommitIndex: self.CommitIndex}
	ms := make([]MemberStatus, len(self.Members))
	done := make(chan struct{}, len(ms))
	for i, m := range self.Members {
		ms[i] = MemberStatus{ID: m.ID, Raft: m.Address, Voter: m.Voter, Leader: m.ID == self.Leader, Worker: !m.Voter, Dead: e.isDead(m.ID)}
		go func(ms *MemberStatus) {
			defer func() { done <- struct{}{} }()
			var ns wire.NodeStatus
			if ms.ID == self.ID {
				ns = self.wire()
			} else {
				rec, err := e.member(ms.ID)
				if err != nil {
					ms.Error = err.Error()
					return
				}
				ms.API = rec.API
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				if ns, err = e.live.peer.Self(cctx, rec.API); err != nil {
					ms.Error = fmt.Sprintf("unreachable: %v", err)
					return
				}
			}
			ms.API, ms.Reached, ms.State, ms.Applied, ms.Hash = ns.API, true, ns.State, ns.AppliedIndex, ns.StateHash
			ms.Goroutines, ms.TasksRun, ms.PlacedOut, ms.Retried = ns.Goroutines, ns.TasksRun, ns.PlacedOut, ns.Retried
			ms.Rebuilt, ms.PulledBytes = ns.Rebuilt, ns.PulledBytes
		}(&ms[i])
	}
	for range ms {
		<-done
	}
	commit := out.CommitIndex
	for _, m := range ms {
		if m.Leader && m.Reached {
			commit = max(commit, m.Applied)
		}
	}
	for i := range ms {
		if ms[i].Reached && commit > ms[i].Applied {
			ms[i].Lag = commit - ms[i].Applied
		}
	}
	out.Members = ms
	out.Nodes = e.ClusterNodes()
	return out
}

// forwarder carries a follower's writes and reads to the leader's peer routes.
type forwarder struct{ e *Engine }

func (f forwarder) leaderURL(id string) (string, error) {
	m, err := f.e.member(string(id))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(m.API, "/"), nil
}

func (f forwarder) Apply(ctx context.Context, leader string, cmd []byte) error {
	url, err := f.leaderURL(leader)
	if err != nil {
		return err
	}
	return forwardedError(f.e.live.peer.Apply(ctx, url, cmd))
}

func (f forwarder) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	url, err := f.leaderURL(leader)
	if err != nil {
		return 0, err
	}
	idx, err := f.e.live.peer.ReadIndex(ctx, url)
	if err := forwardedError(err); err != nil {
		return 0, err
	}
	return idx, nil
}

// forwardedError turns the leader's answer back into the error the leader had.
func forwardedError(err error) error {
	if err == nil {
		return nil
	}
	we, answered := peer.IsAnswer(err)
	if !answered {
		return fmt.Errorf("%w: %v", raftstore.ErrUnreachable, err)
	}
	status, msg := we.Kind.Status(), we.Message
	switch {
	case status == http.StatusMisdirectedRequest:
		return fmt.Errorf("%w: %s", raftstore.ErrNotLeader, msg)
	case status == http.StatusConflict:
		return fmt.Errorf("%w: %s", raftstore.ErrConflict, msg)
	case status == http.StatusBadRequest:
		return fmt.Errorf("%w: %s", raftstore.ErrBadCommand, msg)
	case status >= 500 || status == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: leader answered %d: %s", raftstore.ErrUnreachable, status, msg)
	}
	return fmt.Errorf("engine: leader answered %d: %s", status, msg)
}

// registryStore is the registry's plugins.Store on the replicated state, under registryPrefix.
type registryStore struct{ e *Engine }

func (s registryStore) View(fn func(plugins.StoreReader) error) error {
	return s.e.node.KV().View(func(r raftstore.Reader) error { return fn(prefixReader{r}) })
}

func (s registryStore) Version() uint64 { return s.e.regVersion() }

func (s registryStore) Update(ctx context.Context, fn func(plugins.StoreWriter) error) error {
	w := &commandWriter{}
	if err := fn(w); err != nil {
		return err
	}
	if len(w.c.Ops) == 0 {
		return nil
	}
	err := s.e.node.Apply(ctx, &w.c)
	if errors.Is(err, raftstore.ErrConflict) {
		return fmt.Errorf("%w: %v", plugins.ErrConflict, err)
	}
	return err
}

type prefixReader struct{ r raftstore.Reader }

func (p prefixReader) Get(key []byte) ([]byte, error) {
	v, err := p.r.Get(append([]byte(registryPrefix), key...))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: key %q", plugins.ErrNotFound, key)
	}
	return v, err
}

func (p prefixReader) Scan(prefix []byte, fn func(key, val []byte) error) error {
	return p.r.Scan(append([]byte(registryPrefix), prefix...), func(k, v []byte) error {
		return fn(k[len(registryPrefix):], v)
	})
}

// commandWriter collects a registry update as one command.
type commandWriter struct{ c raftstore.Command }

func regKey(k []byte) []byte { return append([]byte(registryPrefix), k...) }

func (w *commandWriter) Set(k, v []byte) {
	w.c.Ops = append(w.c.Ops, raftstore.Op{Kind: raftstore.OpSet, Key: regKey(k), Value: v})
}
func (w *commandWriter) Delete(k []byte) {
	w.c.Ops = append(w.c.Ops, raftstore.Op{Kind: raftstore.OpDelete, Key: regKey(k)})
}
func (w *commandWriter) RequireAbsent(k []byte) {
	w.c.Conds = append(w.c.Conds, raftstore.Cond{Key: regKey(k), Absent: true})
}
func (w *commandWriter) RequireExists(k []byte) {
	w.c.Conds = append(w.c.Conds, raftstore.Cond{Key: regKey(k), Exists: true})
}

// The small internal key-value store of the control plane (Ray's internal KV): keys under
// kvPrefix of the replicated state, for configuration and coordination. Writes go through raft;
// reads are linearizable.
const (
	kvPrefix      = "kv/"
	MaxKVKeyLen   = 512
	MaxKVValueLen = 1 << 20
)

// ErrKVNotFound is returned by KVGet for a missing key.
var ErrKVNotFound = wire.Wrap(wire.KindNotFound, errors.New("engine: no such key"))

func checkKVKey(key string) error {
	if key == "" || len(key) > MaxKVKeyLen {
		return fmt.Errorf("%w: a key has 1 to %d bytes", raftstore.ErrBadCommand, MaxKVKeyLen)
	}
	return nil
}

// KVPut sets key to val. requestID, when set, makes the write idempotent: a retry with the same
// id after an unknown outcome is applied once. ifAbsent makes it create-only (ErrConflict when
// the key exists).
func (e *Engine) KVPut(ctx context.Context, key string, val []byte, requestID string, ifAbsent bool) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if len(val) > MaxKVValueLen {
		return fmt.Errorf("%w: a value has at most %d bytes", raftstore.ErrBadCommand, MaxKVValueLen)
	}
	c := &raftstore.Command{ID: requestID, Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(kvPrefix + key), Value: val}}}
	if ifAbsent {
		c.Conds = []raftstore.Cond{{Key: []byte(kvPrefix + key), Absent: true}}
	}
	return e.node.Apply(ctx, c)
}

// KVDelete deletes key (a missing key is not an error).
func (e *Engine) KVDelete(ctx context.Context, key, requestID string) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	return e.node.Apply(ctx, &raftstore.Command{ID: requestID, Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(kvPrefix + key)}}})
}

// KVGet reads key linearizably: it sees every write that completed before the call, on any node.
func (e *Engine) KVGet(ctx context.Context, key string) ([]byte, error) {
	if err := checkKVKey(key); err != nil {
		return nil, err
	}
	if err := e.node.Linearize(ctx); err != nil {
		return nil, err
	}
	v, err := e.node.KV().Get([]byte(kvPrefix + key))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrKVNotFound, key)
	}
	return v, err
}
