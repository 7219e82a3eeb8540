package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/raftstore"
)

// state is the engine's part of the replicated control-plane state: workflows and their step
// checkpoints. A write returns once a quorum holds it (so it survives a crash and a failover)
// and this node has applied it; reads see what this node has applied. It is safe for
// concurrent use.
type state struct {
	node *raftstore.Node
	ctx  context.Context // the engine's: writes give up when it closes
}

// errNoKey is returned by get for a missing key.
var errNoKey = errors.New("engine: no such key")

// put writes key → val.
func (s *state) put(key string, val []byte) error {
	return s.putMany(map[string][]byte{key: val})
}

// putMany writes every pair in one command: all or none are applied.
func (s *state) putMany(kv map[string][]byte) error { return s.putManyIf(kv) }

// putManyIf is putMany applied only when every condition holds (else an error wrapping
// raftstore.ErrConflict).
func (s *state) putManyIf(kv map[string][]byte, conds ...raftstore.Cond) error {
	c := &raftstore.Command{Conds: conds}
	for k, v := range kv {
		c.Ops = append(c.Ops, raftstore.Op{Kind: raftstore.OpSet, Key: []byte(k), Value: v})
	}
	if err := s.node.Apply(s.ctx, c); err != nil {
		return fmt.Errorf("engine: commit state: %w", err)
	}
	return nil
}

// get reads key; errNoKey when it is missing.
func (s *state) get(key string) ([]byte, error) {
	v, err := s.node.KV().Get([]byte(key))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, errNoKey
	}
	return v, err
}

// every runs f every d, in a goroutine the engine waits for, until the engine closes.
func (e *Engine) every(d time.Duration, f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-e.ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}

// scan calls fn for every key with prefix, in key order, with a value fn may keep.
func (s *state) scan(prefix string, fn func(key string, val []byte) error) error {
	return s.node.KV().View(func(r raftstore.Reader) error {
		return r.Scan([]byte(prefix), func(k, v []byte) error { return fn(string(k), v) })
	})
}
