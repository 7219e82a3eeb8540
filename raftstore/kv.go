package raftstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/raft"
)

// KV is a replicated key-value state machine on badger: raft's FSM for a Node. Commands
// (EncodeCommand) are applied atomically with their conditions; reads see the state as applied
// on this node.
//
// The state persists: every ApplyBatch is one badger transaction that also records the index it
// applied up to, so a restarted node skips the entries it already holds instead of rebuilding its
// state from a snapshot (see Node). Snapshots stream every key; Restore replaces the whole state
// with one.
//
// The state's writes are not fsynced: raft's log is, and every entry the state may lack after a
// power cut is still there. A process crash loses nothing (the writes are in the kernel's page
// cache); a power cut may lose the newest transactions, applied index included, so the node
// replays them from the log. Had the cut lost the state behind the newest snapshot (whose log
// entries are compacted away), the applied index would be below the snapshot's and the node
// restores the snapshot first (NodeConfig / OpenNode).
type KV struct {
	db *badger.DB

	applied atomic.Uint64
	version atomic.Uint64 // bumped whenever the state may have changed

	mu      sync.Mutex
	advance chan struct{} // closed and replaced when applied moves

	watches atomic.Pointer[[]*watch] // copy on write

	hashMu sync.Mutex
	hashAt uint64 // the Version the cached hash was taken at (0: none)
	hash   string
	hashN  int
}

// watch counts the applied changes under one key prefix.
type watch struct {
	prefix []byte
	n      atomic.Uint64
}

// Watch returns a counter that moves whenever a command that sets or deletes a key under prefix
// is applied, or a snapshot is restored, once the change is readable. A reader caching what it
// derived from those keys reloads it when the counter moved; changes elsewhere leave it alone.
func (k *KV) Watch(prefix string) func() uint64 {
	w := &watch{prefix: []byte(prefix)}
	k.mu.Lock()
	var ws []*watch
	if old := k.watches.Load(); old != nil {
		ws = append(ws, *old...)
	}
	ws = append(ws, w)
	k.watches.Store(&ws)
	k.mu.Unlock()
	return w.n.Load
}

// touched returns the watches a command's operations change.
func (k *KV) touched(c *Command, into map[*watch]bool) {
	ws := k.watches.Load()
	if ws == nil {
		return
	}
	for _, w := range *ws {
		for _, op := range c.Ops {
			if bytes.HasPrefix(op.Key, w.prefix) {
				into[w] = true
				break
			}
		}
	}
}

func (k *KV) bumpAll() {
	if ws := k.watches.Load(); ws != nil {
		for _, w := range *ws {
			w.n.Add(1)
		}
	}
}

// Internal keys, all under internalPrefix.
var (
	appliedKey   = []byte{internalPrefix, 'a'}
	restoringKey = []byte{internalPrefix, 'r'}
	requestPre   = []byte{internalPrefix, 'q'}
)

// KVConfig configures OpenKV.
type KVConfig struct {
	// Dir is the state's folder.
	Dir string
	// Logger receives badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
}

// OpenKV opens (or creates) the state in cfg.Dir. A state left half restored by a crash is
// emptied, so that raft restores it again from its snapshot. The caller must Close it.
func OpenKV(cfg KVConfig) (*KV, error) {
	if cfg.Dir == "" {
		return nil, errors.New("raftstore: KVConfig.Dir is required")
	}
	opts := badger.DefaultOptions(filepath.Clean(cfg.Dir)).
		WithSyncWrites(false). // the raft log is the durable record; see the type's comment
		WithLogger(slogAdapter{cfg.Logger}).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithMemTableSize(32 << 20).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20).
		WithBlockCacheSize(16 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open state in %s: %w", cfg.Dir, err)
	}
	k := &KV{db: db, advance: make(chan struct{})}
	restoring := false
	err = db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(restoringKey); err == nil {
			restoring = true
		}
		item, err := txn.Get(appliedKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: applied index of %d bytes", ErrCorrupt, len(v))
			}
			k.applied.Store(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err == nil && restoring {
		k.applied.Store(0)
		err = db.DropAll()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("raftstore: load state in %s: %w", cfg.Dir, err)
	}
	return k, nil
}

// Close closes the state.
func (k *KV) Close() error { return k.db.Close() }

// Applied returns the index of the last log entry applied to the state.
func (k *KV) Applied() uint64 { return k.applied.Load() }

// Version changes (grows) whenever the state may have changed; a reader caching something
// derived from the state reloads it when Version moved.
func (k *KV) Version() uint64 { return k.version.Load() }

// WaitApplied waits until the state holds every entry up to index.
func (k *KV) WaitApplied(ctx context.Context, index uint64) error {
	return k.waitApplied(ctx, index, nil)
}

// waitApplied is WaitApplied that also gives up, with errStopped, once stop is closed.
func (k *KV) waitApplied(ctx context.Context, index uint64, stop <-chan struct{}) error {
	for {
		k.mu.Lock()
		ch := k.advance
		k.mu.Unlock()
		if k.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-stop:
			return fmt.Errorf("raftstore: waiting for index %d (applied %d): %w", index, k.applied.Load(), errStopped)
		case <-ctx.Done():
			return fmt.Errorf("raftstore: waiting for index %d (applied %d): %w", index, k.applied.Load(), ctx.Err())
		}
	}
}

func (k *KV) setApplied(index uint64) {
	k.applied.Store(index)
	k.version.Add(1)
	k.mu.Lock()
	close(k.advance)
	k.advance = make(chan struct{})
	k.mu.Unlock()
}

// Get returns the value of key, or ErrKeyNotFound.
func (k *KV) Get(key []byte) ([]byte, error) {
	var out []byte
	err := k.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrKeyNotFound
		} else if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// Reader reads one consistent view of the state.
type Reader interface {
	// Get returns key's value, or ErrKeyNotFound. The value is the caller's.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every key under prefix in key order; the key and value are fn's to keep.
	Scan(prefix []byte, fn func(key, val []byte) error) error
}

type txnReader struct{ txn *badger.Txn }

func (r txnReader) Get(key []byte) ([]byte, error) {
	item, err := r.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	} else if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (r txnReader) Scan(prefix []byte, fn func(key, val []byte) error) error {
	if len(prefix) > 0 && prefix[0] == internalPrefix {
		return errors.New("raftstore: scan of reserved keys")
	}
	it := r.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	start := prefix
	if len(start) == 0 {
		start = []byte{internalPrefix + 1}
	}
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := fn(item.KeyCopy(nil), v); err != nil {
			return err
		}
	}
	return nil
}

// View calls fn with a reader of one consistent view of the state.
func (k *KV) View(fn func(r Reader) error) error {
	return k.db.View(func(txn *badger.Txn) error { return fn(txnReader{txn}) })
}

// Hash returns a digest of every user key and value, for checking that nodes hold the same
// state, with the number of keys. It reads the whole state once per change of it: status pages
// that poll it cost nothing between writes.
func (k *KV) Hash() (string, int, error) {
	k.hashMu.Lock()
	defer k.hashMu.Unlock()
	v := k.Version()
	if v != 0 && v == k.hashAt {
		return k.hash, k.hashN, nil
	}
	h := sha256.New()
	n := 0
	err := k.View(func(r Reader) error {
		return r.Scan(nil, func(key, val []byte) error {
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(key)))
			h.Write(l[:])
			h.Write(key)
			binary.BigEndian.PutUint64(l[:], uint64(len(val)))
			h.Write(l[:])
			h.Write(val)
			n++
			return nil
		})
	})
	if err != nil {
		return "", 0, err
	}
	k.hashAt, k.hash, k.hashN = v, hex.EncodeToString(h.Sum(nil)), n
	return k.hash, n, nil
}

// Apply applies one log entry (raft.FSM).
func (k *KV) Apply(l *raft.Log) any { return k.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in one transaction (raft.BatchingFSM). The
// result of an entry is a []any, one per command of the entry's batch (nil for a command
// applied, else its error), or an error for an entry that could not be decoded. Entries at or below the applied
// index are skipped: they are replayed after a restart and already in the state.
func (k *KV) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	last := k.applied.Load()
	touched := map[*watch]bool{}
	apply := func(logs []*raft.Log, out []any) error {
		clear(touched)
		err := k.db.Update(func(txn *badger.Txn) error {
			top := last
			for i, l := range logs {
				if l.Index <= last {
					continue
				}
				top = l.Index
				if l.Type != raft.LogCommand {
					continue
				}
				r, err := k.applyEntry(txn, l.Data, touched)
				if err != nil {
					return err
				}
				out[i] = r
			}
			if top == last {
				return nil
			}
			return txn.Set(appliedKey, binary.BigEndian.AppendUint64(nil, top))
		})
		if err == nil {
			for w := range touched {
				w.n.Add(1)
			}
		}
		return err
	}
	err := apply(logs, out)
	if errors.Is(err, badger.ErrTxnTooBig) && len(logs) > 1 {
		// Too much for one transaction: one entry per transaction. An entry too big alone
		// fails deterministically below, the same on every node.
		for i := range logs {
			if err = apply(logs[i:i+1], out[i:i+1]); err != nil {
				break
			}
			if logs[i].Index > last {
				last = logs[i].Index
			}
		}
	}
	if err != nil {
		// The state could not be written: this node cannot go on safely.
		panic(fmt.Sprintf("raftstore: apply entries %d..%d: %v", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	if top := logs[len(logs)-1].Index; top > k.applied.Load() {
		k.setApplied(top)
	}
	return out
}

// applyEntry applies the commands of one entry within txn.
func (k *KV) applyEntry(txn *badger.Txn, data []byte, touched map[*watch]bool) (any, error) {
	cmds, err := DecodeBatch(data)
	if err != nil {
		return err, nil
	}
	res := make([]any, len(cmds))
	for i, raw := range cmds {
		c, err := DecodeCommand(raw)
		if err != nil {
			res[i] = err
			continue
		}
		outcome, err := applyCommand(txn, c)
		if err != nil {
			return nil, err
		}
		if outcome != nil {
			res[i] = outcome
		} else {
			k.touched(c, touched)
		}
	}
	return res, nil
}

// applyCommand applies c within txn. The first result is the command's outcome; the second a
// failure of the store, which stops the node.
func applyCommand(txn *badger.Txn, c *Command) (error, error) {
	var reqKey []byte
	if c.ID != "" {
		reqKey = append(bytes.Clone(requestPre), c.ID...)
		item, err := txn.Get(reqKey)
		if err == nil {
			var outcome []byte
			if outcome, err = item.ValueCopy(nil); err != nil {
				return nil, err
			}
			if len(outcome) > 0 {
				return fmt.Errorf("%w (request %s, applied before)", ErrConflict, c.ID), nil
			}
			return nil, nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, err
		}
	}
	outcome := checkConds(txn, c.Conds)
	if outcome == nil {
		for _, op := range c.Ops {
			var err error
			if op.Kind == OpSet {
				err = txn.Set(bytes.Clone(op.Key), bytes.Clone(op.Value))
			} else {
				err = txn.Delete(bytes.Clone(op.Key))
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if reqKey != nil {
		mark := []byte{}
		if outcome != nil {
			mark = []byte{1}
		}
		if err := txn.Set(reqKey, mark); err != nil {
			return nil, err
		}
	}
	return outcome, nil
}

func checkConds(txn *badger.Txn, conds []Cond) error {
	for _, cd := range conds {
		item, err := txn.Get(cd.Key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if !cd.Absent {
				return fmt.Errorf("%w: %q is missing", ErrConflict, cd.Key)
			}
		case err != nil:
			return err
		case cd.Absent:
			return fmt.Errorf("%w: %q exists", ErrConflict, cd.Key)
		case cd.Exists:
		default:
			same := false
			if err := item.Value(func(v []byte) error { same = bytes.Equal(v, cd.Value); return nil }); err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("%w: %q holds another value", ErrConflict, cd.Key)
			}
		}
	}
	return nil
}

// Snapshot format: "LKV1", then records of uvarint(len key) key uvarint(len val) val, every key
// of the state including the internal ones, then a zero uvarint and the CRC-32C (Castagnoli) of
// everything before it, big-endian.
var snapMagic = []byte("LKV1")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the state as of now (raft.FSM); Persist streams it while applies go on.
func (k *KV) Snapshot() (raft.FSMSnapshot, error) {
	return &stateSnapshot{txn: k.db.NewTransaction(false)}, nil
}

type stateSnapshot struct{ txn *badger.Txn }

func (s *stateSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *stateSnapshot) write(w io.Writer) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	bw.Write(snapMagic)
	it := s.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	var num [binary.MaxVarintLen64]byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		bw.Write(num[:binary.PutUvarint(num[:], uint64(len(key)))])
		bw.Write(key)
		if err := item.Value(func(v []byte) error {
			bw.Write(num[:binary.PutUvarint(num[:], uint64(len(v)))])
			_, err := bw.Write(v)
			return err
		}); err != nil {
			return err
		}
	}
	bw.Write([]byte{0})
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	return err
}

func (s *stateSnapshot) Release() { s.txn.Discard() }

// maxSnapValue bounds a value read from a snapshot.
const maxSnapValue = 1 << 30

// Restore replaces the state with a snapshot (raft.FSM). A marker key makes a crash in the
// middle visible to the next OpenKV, which empties the state so raft restores it again.
func (k *KV) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := k.db.DropAll(); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	if err := k.db.Update(func(txn *badger.Txn) error { return txn.Set(restoringKey, nil) }); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	br := &crcReader{r: bufio.NewReaderSize(rc, 256<<10)}
	wb := k.db.NewWriteBatch()
	defer wb.Cancel()
	applied := uint64(0)
	err := func() error {
		magic := make([]byte, len(snapMagic))
		if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapMagic) {
			return fmt.Errorf("%w: not a state snapshot", ErrCorrupt)
		}
		for {
			key, err := readField(br, MaxKeyLen+MaxIDLen+8)
			if err != nil {
				return err
			}
			if len(key) == 0 {
				break
			}
			val, err := readField(br, maxSnapValue)
			if err != nil {
				return err
			}
			if bytes.Equal(key, appliedKey) && len(val) == 8 {
				applied = binary.BigEndian.Uint64(val)
			}
			if bytes.Equal(key, restoringKey) {
				continue
			}
			if err := wb.Set(key, val); err != nil {
				return err
			}
		}
		want := br.sum
		var sum [4]byte
		if _, err := io.ReadFull(br.r, sum[:]); err != nil {
			return fmt.Errorf("%w: snapshot checksum: %v", ErrCorrupt, err)
		}
		if binary.BigEndian.Uint32(sum[:]) != want {
			return fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
		}
		if err := wb.Flush(); err != nil {
			return err
		}
		return k.db.Update(func(txn *badger.Txn) error { return txn.Delete(restoringKey) })
	}()
	if err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	k.applied.Store(0)
	k.setApplied(applied)
	k.bumpAll()
	return nil
}

// crcReader reads from r and keeps the CRC-32C of the bytes read so far.
type crcReader struct {
	r   *bufio.Reader
	sum uint32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.sum = crc32.Update(c.sum, castagnoli, []byte{b})
	}
	return b, err
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum = crc32.Update(c.sum, castagnoli, p[:n])
	return n, err
}

// readField reads a uvarint length (at most max) and that many bytes.
func readField(r *crcReader, max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot truncated: %v", ErrCorrupt, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: snapshot field of %d bytes", ErrCorrupt, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: snapshot truncated: %v", ErrCorrupt, err)
	}
	return b, nil
}
