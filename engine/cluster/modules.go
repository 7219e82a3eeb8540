package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
)

// Module bytes are kept off the raft log: the log carries a module's digest and record (the
// registry's keys), and its bytes live in files on the nodes that hold them (DataDir/ModulesDir).
// The node that takes an upload keeps the bytes on its disk and gives a copy to one other node
// before the record commits; every other node fetches them by digest from a node that holds them
// (over the peer routes, checking their sha256) when a call first needs them, and ahead of that
// once it applies the record. A node keeps what it fetched across restarts and drops its copy when
// it applies the module's delete.

// ModulesDir is the folder of the data directory that holds this node's module bytes.
const ModulesDir = "modules"

// ErrModuleUnavailable wraps a module whose bytes no reachable node holds: the call that needs
// them fails (503) until a node that holds them is back, or the module is pushed again.
var ErrModuleUnavailable = wire.Wrap(wire.KindUnavailable, errors.New("module bytes unavailable"))

// ErrNoCopy wraps an upload refused because no other node of the cluster took a copy of its
// bytes: acknowledged, they would rest on one disk.
var ErrNoCopy = wire.Wrap(wire.KindUnavailable, errors.New("module bytes not copied"))

// Timeouts of one peer's answer: a fetch or a copy of size bytes gets base plus 1 s per
// perMiBs MiB, so a stalled node does not hold the caller for the HTTP client's whole timeout.
const (
	moduleTimeoutBase   = 5 * time.Second
	moduleTimeoutPerSec = 8 << 20 // bytes a second at the least
	moduleFetchTimeout  = 2 * time.Minute
	// modulePrefetchRetry is how often a node tries again to fetch bytes it could not find.
	modulePrefetchRetry = 5 * time.Second
	// moduleDropGrace keeps a copy put less than this ago when its record is deleted: it is a
	// new upload of the same bytes racing the delete.
	moduleDropGrace = time.Minute
)

// moduleBytes is the node's store of module bytes: its own folder, and the other nodes.
type moduleBytes struct {
	n     *Node
	local *plugins.DirBlobs

	mu       sync.Mutex
	fetching map[string]*fetchCall // one fetch per digest at a time
}

type fetchCall struct {
	done chan struct{}
	b    []byte
	err  error
}

func openModuleBytes(n *Node, dataDir string) (*moduleBytes, error) {
	d, err := plugins.OpenDirBlobs(filepath.Join(dataDir, ModulesDir))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &moduleBytes{n: n, local: d, fetching: map[string]*fetchCall{}}, nil
}

// ModuleBytes is the registry's plugins.Blobs on this node: Put keeps an upload's bytes here and
// on one other node (when the cluster has another), Get reads them here or fetches them from a
// node that holds them, Drop removes this node's copy. It is safe for concurrent use.
func (n *Node) ModuleBytes() plugins.Blobs { return n.mods }

// Put implements plugins.Blobs.
func (m *moduleBytes) Put(ctx context.Context, digest string, wasm []byte) error {
	others := m.n.otherNodes()
	if len(others) == 0 {
		return m.local.Put(ctx, digest, wasm) // a single node: its disk is all there is
	}
	// This node's write and the copy on another node run at once: each syncs its disk.
	localErr := make(chan error, 1)
	go func() { localErr <- m.local.Put(ctx, digest, wasm) }()
	if err := m.copyToOne(ctx, others, digest, wasm); err != nil {
		<-localErr
		return err
	}
	return <-localErr
}

// copyToOne gives the first of others that takes it a copy of wasm.
func (m *moduleBytes) copyToOne(ctx context.Context, others []nodeAPI, digest string, wasm []byte) error {
	var tries []string
	for _, o := range others {
		cctx, cancel := context.WithTimeout(ctx, moduleTimeout(int64(len(wasm))))
		err := m.n.peer.KeepModuleBytes(cctx, o.api, digest, wasm)
		cancel()
		if err == nil {
			return nil
		}
		tries = append(tries, fmt.Sprintf("%s: %v", o.id, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: no other node took a copy of %s, so the upload is refused rather than left on this node alone (%s)", ErrNoCopy, digest, strings.Join(tries, "; "))
}

// Get implements plugins.Blobs: this node's copy, else one fetched from another node (checked
// against the digest, then kept here).
func (m *moduleBytes) Get(ctx context.Context, digest string) ([]byte, error) {
	if b, err := m.local.Get(ctx, digest); err == nil {
		return b, nil
	} else if !errors.Is(err, plugins.ErrNotFound) {
		return nil, err
	}
	c := m.fetch(digest)
	select {
	case <-c.done:
		return c.b, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Drop implements plugins.Blobs.
func (m *moduleBytes) Drop(digest string) error { return m.local.Drop(digest) }

// fetch starts (or joins) the fetch of digest from the other nodes. It runs under the node's
// lifetime, not a caller's, since callers share it.
func (m *moduleBytes) fetch(digest string) *fetchCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.fetching[digest]; c != nil {
		return c
	}
	c := &fetchCall{done: make(chan struct{})}
	m.fetching[digest] = c
	m.n.deps.WG.Add(1)
	go func() {
		defer m.n.deps.WG.Done()
		ctx, cancel := context.WithTimeout(m.n.deps.Ctx, moduleFetchTimeout)
		defer cancel()
		c.b, c.err = m.fetchFrom(ctx, m.n.otherNodes(), digest)
		if c.err == nil {
			if err := m.local.Put(ctx, digest, c.b); err != nil {
				m.n.log.Warn("cluster: keep fetched module bytes", "module", digest, "err", err)
			}
		}
		m.mu.Lock()
		delete(m.fetching, digest)
		m.mu.Unlock()
		close(c.done)
	}()
	return c
}

// fetchFrom asks each node in turn for digest's bytes and returns the first answer that hashes to
// the digest; bytes that do not are refused (the peer client checks them) and the next node is
// asked.
func (m *moduleBytes) fetchFrom(ctx context.Context, nodes []nodeAPI, digest string) ([]byte, error) {
	var tries []string
	for _, o := range nodes {
		cctx, cancel := context.WithTimeout(ctx, moduleTimeout(plugins.MaxModuleBytesLimit/8))
		b, err := m.n.peer.ModuleBytes(cctx, o.api, digest, plugins.MaxModuleBytesLimit)
		cancel()
		if err == nil {
			return b, nil
		}
		tries = append(tries, fmt.Sprintf("%s: %v", o.id, err))
		if ctx.Err() != nil {
			break
		}
	}
	asked := "no other node is known"
	if len(tries) > 0 {
		asked = "asked " + strings.Join(tries, "; ")
	}
	return nil, fmt.Errorf("%w: no reachable node holds %s (%s)", ErrModuleUnavailable, digest, asked)
}

func moduleTimeout(size int64) time.Duration {
	return moduleTimeoutBase + time.Duration(size/moduleTimeoutPerSec)*time.Second
}

// HeldModuleBytes returns the bytes of module digest that this node holds, for a peer that
// fetches them; a *wire.Error of kind wire.KindNotFound when it holds none. It never asks
// another node.
func (n *Node) HeldModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	b, err := n.mods.local.Get(ctx, digest)
	if errors.Is(err, plugins.ErrNotFound) {
		return nil, wire.Errorf(wire.KindNotFound, "module %s is not on node %s", digest, n.cfg.NodeID)
	}
	return b, err
}

// KeepModuleBytes keeps a copy of module digest's bytes that another node sent. The peer routes
// have checked them against the digest (peer.Handler), and whoever reads them checks again.
func (n *Node) KeepModuleBytes(ctx context.Context, digest string, wasm []byte) error {
	return n.mods.local.Put(ctx, digest, wasm)
}

// nodeAPI is another node's id and API URL.
type nodeAPI struct{ id, api string }

// otherNodes returns the cluster's other members with an API URL: the live ones first (in the
// leader's last view, not declared dead), each group in a random order to spread the load.
func (n *Node) otherNodes() []nodeAPI {
	members, err := n.raft.Members()
	if err != nil {
		return nil
	}
	live := map[string]bool{}
	for _, v := range n.Nodes() {
		if !v.Dead {
			live[v.ID] = true
		}
	}
	var first, rest []nodeAPI
	for _, mb := range members {
		if mb.ID == n.cfg.NodeID {
			continue
		}
		rec, err := n.Member(mb.ID)
		if err != nil || rec.API == "" {
			continue
		}
		o := nodeAPI{mb.ID, strings.TrimRight(rec.API, "/")}
		if live[mb.ID] && !n.IsDead(mb.ID) {
			first = append(first, o)
		} else {
			rest = append(rest, o)
		}
	}
	rand.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(first, rest...)
}

// apartModules lists the registered modules whose bytes are kept off the log, with their sizes.
func (n *Node) apartModules() (map[string]int64, error) {
	var out map[string]int64
	err := n.raft.KV().View(func(r raftstore.Reader) (err error) {
		out, err = plugins.ApartDigests(prefixReader{r})
		return err
	})
	return out, err
}

// watchModules fetches the bytes of modules this node has applied but does not hold, ahead of
// the first call that needs them, and drops the copies of modules whose delete it applied. It
// looks when the registry's keys move, and again every modulePrefetchRetry while some bytes
// could not be found. It runs until Deps.Ctx ends.
func (n *Node) watchModules(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var seen uint64
	var known map[string]int64 // nil until the first look
	var retryAt time.Time
	for {
		select {
		case <-n.deps.Ctx.Done():
			return
		case <-tick.C:
		}
		v := n.regVersion()
		if known != nil && v == seen && (retryAt.IsZero() || time.Now().Before(retryAt)) {
			continue
		}
		seen = v
		cur, err := n.apartModules()
		if err != nil {
			n.log.Warn("cluster: list the modules to fetch", "err", err)
			continue
		}
		for d := range known {
			if _, ok := cur[d]; !ok && time.Since(n.mods.local.PutSince(d)) > moduleDropGrace {
				n.mods.local.Drop(d)
			}
		}
		known, retryAt = cur, time.Time{}
		for d := range cur {
			if n.mods.local.Has(d) {
				continue
			}
			c := n.mods.fetch(d)
			select {
			case <-c.done:
			case <-n.deps.Ctx.Done():
				return
			}
			if c.err != nil {
				retryAt = time.Now().Add(modulePrefetchRetry)
			}
		}
	}
}
