package cluster

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
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// Config says how a node takes part in the replicated control plane. The zero value runs
// a single node: a one-voter raft on an in-memory transport, the same code path as a cluster.
type Config struct {
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

// Intervals returns the heartbeat interval and the silence after which the leader declares a
// node dead, defaults applied.
func (c *Config) Intervals() (beat, dead time.Duration) {
	beat, dead = c.HeartbeatInterval, c.DeadAfter
	if beat <= 0 {
		beat = time.Second
	}
	if dead <= 0 {
		dead = 10 * time.Second
	}
	return beat, dead
}

// Deps is what the node gives its cluster membership: where it keeps its files, the lifetime
// of its background work, and the parts of the node that liveness and placement read or call.
type Deps struct {
	// Config is the node's part in the cluster; Open fills in its defaults (see Node.Config).
	Config Config
	// DataDir holds raft's state (DataDir/raft), the join token and the API token files.
	DataDir string
	// Log receives the node's warnings; nil discards them.
	Log *slog.Logger
	// Ctx ends when the node closes: the heartbeat loop and the writes it starts run under it,
	// in goroutines counted in WG.
	Ctx context.Context
	WG  *sync.WaitGroup
	// Total is what this node offers; Available what of it is free now; CanHold whether a
	// demand could ever run here. Its heartbeat reports Total and Available, and Place reads
	// Available and CanHold.
	Total     scheduler.Resources
	Available func() scheduler.Resources
	CanHold   func(scheduler.Resources) bool
	// Counters reads this node's task and object counters, for its heartbeat and its status.
	Counters func() Counters
	// EveryBeat, when set, runs after each of this node's heartbeats, on the heartbeat loop.
	EveryBeat func()
	// OnDead, when set, runs on the leader once the cluster has committed that another node is
	// dead (on the heartbeat loop): the node takes over or frees what the dead one left.
	OnDead func(node string)
}

// Counters are a node's task and object counters, kept by the node and reported by its
// heartbeat and status.
type Counters struct {
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

// Keys of the replicated state, by owner.
const (
	registryPrefix = "reg/"          // the module registry's keys
	memberPrefix   = "cluster/node/" // one record per node: its raft address and API URL
)

// JoinTokenFile is the file in the data directory that holds the cluster's join token.
const JoinTokenFile = "join-token"

// API token files in the data directory, each holding one hex token, mode 0600.
const (
	AdminTokenFile = "token"      // may read and write
	ReadTokenFile  = "token.read" // may only read
)

// APISecretFiles are the data-directory files that a joining node receives from the leader,
// so that every node of a cluster accepts the same API tokens.
var APISecretFiles = []string{AdminTokenFile, ReadTokenFile}

// Member is what the replicated state records of a node.
type Member struct {
	ID     string `json:"id"`
	Raft   string `json:"raft"`
	API    string `json:"api"`
	Joined int64  `json:"joined_unix"`
	Worker bool   `json:"worker,omitempty"`
}

// ErrJoin wraps a refused join.
var ErrJoin = wire.Wrap(wire.KindForbidden, errors.New("cluster: join refused"))

// Node is this node's membership in the cluster: its raft, its peer client, liveness and the
// placement view. Open it, Start it, and cancel Deps.Ctx, wait for Deps.WG and Close it to stop.
// It is safe for concurrent use.
type Node struct {
	cfg        Config
	deps       Deps
	log        *slog.Logger
	raft       *raftstore.Node
	peer       *peer.Client  // this node's client of the other nodes' peer routes
	regVersion func() uint64 // moves when the registry's keys change, on any node
	boot       string        // this run of the node, random
	live       liveness
	mods       *moduleBytes // the module bytes this node holds, and their fetch from others
}

// Open starts the node's raft and, the first time a node given Config.Join opens its data
// directory, joins the cluster through that member. It runs before anything reads the
// replicated state; Start begins the heartbeats.
func Open(ctx context.Context, d Deps) (*Node, error) {
	cc := d.Config
	if cc.NodeID == "" {
		cc.NodeID = "local"
	}
	single := cc.RaftBind == ""
	if single && cc.Join != "" {
		return nil, errors.New("cluster: joining a cluster needs a raft address")
	}
	if !single && cc.APIURL == "" {
		return nil, errors.New("cluster: a cluster node needs the URL of its API (Config.APIURL)")
	}
	if cc.HeartbeatTimeout == 0 && single {
		cc.HeartbeatTimeout, cc.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
	}
	tokPath := filepath.Join(d.DataDir, JoinTokenFile)
	if cc.JoinToken != "" {
		if err := writeSecret(tokPath, cc.JoinToken); err != nil {
			return nil, err
		}
	} else {
		tok, err := LoadOrCreateSecret(tokPath)
		if err != nil {
			return nil, err
		}
		cc.JoinToken = tok
	}
	if cc.HTTPClient == nil {
		cc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	n := &Node{cfg: cc, deps: d, log: log, peer: peer.NewClient(cc.HTTPClient, peer.Credential(cc.JoinToken)), boot: hex.EncodeToString(b[:])}
	n.deps.Config = cc
	n.live.seen, n.live.last = map[string]time.Time{}, map[string]wire.Heartbeat{}
	raftDir := filepath.Join(d.DataDir, "raft")
	joinedMark := filepath.Join(d.DataDir, "cluster-joined")
	_, err := os.Stat(joinedMark)
	joined := err == nil
	logger := log
	if single {
		// A single node's elections are its own start-up: only errors are news.
		logger = slog.New(minLevel{log.Handler(), slog.LevelError})
	}
	node, err := raftstore.OpenNode(ctx, raftstore.NodeConfig{
		ID: cc.NodeID, Dir: raftDir, Bind: cc.RaftBind, Advertise: cc.RaftAdvertise, TLS: cc.TLS,
		Bootstrap: cc.Join == "", Forwarder: forwarder{n}, Logger: logger,
		HeartbeatTimeout: cc.HeartbeatTimeout, ElectionTimeout: cc.ElectionTimeout,
		SnapshotThreshold: cc.SnapshotThreshold, TrailingLogs: cc.TrailingLogs,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: start the control plane: %w", err)
	}
	n.raft = node
	n.regVersion = node.KV().Watch(registryPrefix)
	if n.mods, err = openModuleBytes(n, d.DataDir); err != nil {
		node.Close()
		return nil, err
	}
	if cc.Join != "" && !joined {
		if err := n.join(ctx); err != nil {
			node.Close()
			return nil, err
		}
		if err := os.WriteFile(joinedMark, []byte(cc.NodeID+"\n"), 0o600); err != nil {
			node.Close()
			return nil, err
		}
	}
	return n, nil
}

// Start runs the node's heartbeat loop (and, while it leads, the check for dead nodes) and
// records (or refreshes) this node's addresses once a leader can commit them. Both end with
// Deps.Ctx. Call it once, after the node has wired what Deps calls back.
func (n *Node) Start() {
	n.startLiveness()
	n.deps.WG.Add(1)
	go func() {
		defer n.deps.WG.Done()
		n.watchModules(200 * time.Millisecond)
	}()
	n.deps.WG.Add(1)
	go func() {
		defer n.deps.WG.Done()
		rec, _ := json.Marshal(Member{ID: n.cfg.NodeID, Raft: n.raft.Address(), API: n.cfg.APIURL, Joined: time.Now().Unix(), Worker: n.cfg.Worker})
		n.raft.Apply(n.deps.Ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(memberPrefix + n.cfg.NodeID), Value: rec}}})
	}()
}

// Close stops the node's raft. Cancel Deps.Ctx and wait for Deps.WG first.
func (n *Node) Close() error { return n.raft.Close() }

// Config returns the node's configuration with Open's defaults filled in (its id, the join
// token, timeouts, the HTTP client).
func (n *Node) Config() Config { return n.cfg }

// Raft returns the node's raft and replicated state.
func (n *Node) Raft() *raftstore.Node { return n.raft }

// Peer returns this node's client of the other nodes' peer routes (it presents the cluster's
// node credential).
func (n *Node) Peer() *peer.Client { return n.peer }

// Boot returns this run of the node: a random id that changes at every start.
func (n *Node) Boot() string { return n.boot }

// minLevel passes on the records of at least its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

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
		return fmt.Errorf("cluster: a secret of %d characters is too short (at least 32)", len(secret))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// join asks the cluster (through Config.Join, following the leader) to add this node.
func (n *Node) join(ctx context.Context) error {
	cc := n.cfg
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	target := strings.TrimRight(cc.Join, "/")
	req := &wire.JoinRequest{ID: cc.NodeID, Raft: n.raft.Address(), API: cc.APIURL, Worker: cc.Worker}
	var last error
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		resp, err := n.peer.Join(ctx, target, req)
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
				if err := writeSecret(filepath.Join(n.deps.DataDir, name), v); err != nil {
					return fmt.Errorf("cluster: keep the cluster's %s: %w", name, err)
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
			return fmt.Errorf("cluster: join through %s: %v", cc.Join, last)
		case <-time.After(backoff):
		}
	}
}

// Join adds a node to the cluster (on the leader) and returns the secrets it must share.
// On a follower it fails with raftstore.ErrNotLeader; LeaderAPI names where to go.
func (n *Node) Join(ctx context.Context, req wire.JoinRequest) (map[string]string, error) {
	if req.ID == "" || req.Raft == "" || req.API == "" {
		return nil, fmt.Errorf("%w: id, raft and api are required", raftstore.ErrMembership)
	}
	add := n.raft.AddVoter
	if req.Worker {
		add = n.raft.AddNonvoter
	}
	if err := add(ctx, req.ID, req.Raft); err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(Member{ID: req.ID, Raft: req.Raft, API: req.API, Joined: time.Now().Unix(), Worker: req.Worker})
	if err := n.raft.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: []byte(memberPrefix + req.ID), Value: rec}}}); err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	for _, name := range APISecretFiles {
		tok, err := LoadOrCreateSecret(filepath.Join(n.deps.DataDir, name))
		if err != nil {
			return nil, fmt.Errorf("cluster: read %s: %w", name, err)
		}
		secrets[name] = tok
	}
	return secrets, nil
}

// LeaderAPI returns the API URL of the leader, empty when unknown.
func (n *Node) LeaderAPI() string {
	id, _ := n.raft.Leader()
	if id == "" {
		return ""
	}
	m, err := n.Member(id)
	if err != nil {
		return ""
	}
	return m.API
}

// Member returns the record of node id; an error wrapping raftstore.ErrUnreachable while there
// is none (the node has not joined, or its record has not reached this node yet).
func (n *Node) Member(id string) (*Member, error) {
	b, err := n.raft.KV().Get([]byte(memberPrefix + id))
	if err != nil {
		return nil, fmt.Errorf("%w: no record of node %s yet", raftstore.ErrUnreachable, id)
	}
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cluster: record of node %s: %w", id, err)
	}
	return &m, nil
}

// Apply applies a command forwarded by a follower; it must run on the leader.
func (n *Node) Apply(ctx context.Context, cmd []byte) error {
	return n.raft.ApplyEncoded(ctx, cmd)
}

// ReadIndex returns the leader's read index (see raftstore.Node.ReadIndex).
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	return n.raft.ReadIndex(ctx)
}

// Remove removes a node from the cluster (through the leader).
func (n *Node) Remove(ctx context.Context, id string) error {
	if !n.raft.IsLeader() {
		return fmt.Errorf("%w: ask the leader (%s)", raftstore.ErrNotLeader, n.LeaderAPI())
	}
	if err := n.raft.RemoveServer(ctx, id); err != nil {
		return err
	}
	return n.raft.Apply(ctx, &raftstore.Command{Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(memberPrefix + id)}}})
}

// forwarder carries a follower's writes and reads to the leader's peer routes.
type forwarder struct{ n *Node }

func (f forwarder) leaderURL(id string) (string, error) {
	m, err := f.n.Member(id)
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
	return forwardedError(f.n.peer.Apply(ctx, url, cmd))
}

func (f forwarder) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	url, err := f.leaderURL(leader)
	if err != nil {
		return 0, err
	}
	idx, err := f.n.peer.ReadIndex(ctx, url)
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
	return fmt.Errorf("cluster: leader answered %d: %s", status, msg)
}
