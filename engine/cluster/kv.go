package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// The small internal key-value store of the control plane (Ray's internal KV): keys under
// kvPrefix of the replicated state, for configuration and coordination. Writes go through raft;
// reads are linearizable.
const (
	kvPrefix      = "kv/"
	MaxKVKeyLen   = 512
	MaxKVValueLen = 1 << 20
)

// ErrKVNotFound is returned by KVGet for a missing key.
var ErrKVNotFound = wire.Wrap(wire.KindNotFound, errors.New("cluster: no such key"))

func checkKVKey(key string) error {
	if key == "" || len(key) > MaxKVKeyLen {
		return fmt.Errorf("%w: a key has 1 to %d bytes", raftstore.ErrBadCommand, MaxKVKeyLen)
	}
	return nil
}

// KVPut sets key to val. requestID, when set, makes the write idempotent: a retry with the same
// id after an unknown outcome is applied once. ifAbsent makes it create-only (ErrConflict when
// the key exists).
func (n *Node) KVPut(ctx context.Context, key string, val []byte, requestID string, ifAbsent bool) error {
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
	return n.raft.Apply(ctx, c)
}

// KVDelete deletes key (a missing key is not an error).
func (n *Node) KVDelete(ctx context.Context, key, requestID string) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	return n.raft.Apply(ctx, &raftstore.Command{ID: requestID, Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: []byte(kvPrefix + key)}}})
}

// KVGet reads key linearizably: it sees every write that completed before the call, on any node.
func (n *Node) KVGet(ctx context.Context, key string) ([]byte, error) {
	if err := checkKVKey(key); err != nil {
		return nil, err
	}
	if err := n.raft.Linearize(ctx); err != nil {
		return nil, err
	}
	v, err := n.raft.KV().Get([]byte(kvPrefix + key))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrKVNotFound, key)
	}
	return v, err
}
