package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
)

// Registry returns the module registry's store on the replicated state (its keys under
// "reg/"): reads see what this node has applied, updates commit through raft, and Version
// moves when a registry key changes, on any node.
func (n *Node) Registry() plugins.Store { return registryStore{n} }

// registryStore is the registry's plugins.Store on the replicated state, under registryPrefix.
type registryStore struct{ n *Node }

func (s registryStore) View(fn func(plugins.StoreReader) error) error {
	return s.n.raft.KV().View(func(r raftstore.Reader) error { return fn(prefixReader{r}) })
}

func (s registryStore) Version() uint64 { return s.n.regVersion() }

func (s registryStore) Update(ctx context.Context, fn func(plugins.StoreWriter) error) error {
	w := &commandWriter{}
	if err := fn(w); err != nil {
		return err
	}
	if len(w.c.Ops) == 0 {
		return nil
	}
	err := s.n.raft.Apply(ctx, &w.c)
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
