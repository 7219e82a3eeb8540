package raftstore

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// NewSnapshotStore returns raft's own file snapshot store, which keeps the newest retain
// snapshots in dir/snapshots (so it may share a Store's Config.Dir). It is a thin wrapper over
// raft.NewFileSnapshotStore: snapshots are written to a temporary folder, fsynced, checksummed
// (CRC-64) and renamed into place, which raft's store already does well. Its log lines are
// discarded; failures reach the caller as errors.
func NewSnapshotStore(dir string, retain int) (raft.SnapshotStore, error) {
	s, err := raft.NewFileSnapshotStore(dir, retain, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("raftstore: snapshot store in %s: %w", dir, err)
	}
	return s, nil
}
