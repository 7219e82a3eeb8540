// Package raftstore keeps hashicorp/raft's log and stable state in badger; it knows no workflows.
//
// It has three parts, each usable alone:
//
//   - Store: a raft.LogStore and raft.StableStore on one badger database, opened with
//     SyncWrites on, so a write raft has been told is stored survives a power cut.
//   - NewSnapshotStore: raft's own file snapshot store, kept in a snapshots folder.
//   - Batcher and FSM: plumbing that packs commands from many goroutines into one raft log
//     entry, so concurrent writers share one fsync instead of paying one each.
//
// The package imports nothing of Lumen's: commands are opaque bytes and the state they change
// belongs to the caller's StateMachine.
package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Errors returned by this package.
var (
	// ErrKeyNotFound is returned by Store.Get for a key never set. Its text is exactly
	// "not found" because raft recognises a missing key by comparing err.Error() with that text,
	// as raft.InmemStore returns it.
	ErrKeyNotFound = errors.New("not found")
	// ErrClosed is returned by a Batcher after Close.
	ErrClosed = errors.New("raftstore: closed")
	// ErrCorrupt wraps a log entry or command batch that cannot be decoded.
	ErrCorrupt = errors.New("raftstore: corrupt record")
)

// Key prefixes. Log keys are logPrefix followed by the big-endian index, so badger's byte order
// is index order. Stable byte values and stable uint64 values live apart, as in raft.InmemStore,
// where Set("k") does not change GetUint64("k").
const (
	logPrefix   = 'l'
	bytesPrefix = 's'
	uintPrefix  = 'u'
)

// Config configures Open. The zero value is invalid: Dir is required.
type Config struct {
	// Dir is the node's raft folder. The badger files live in Dir/log; NewSnapshotStore(Dir, n)
	// may share the same Dir (it uses Dir/snapshots).
	Dir string
	// Logger receives badger's warnings and errors (its info messages at debug level).
	// Nil discards them.
	Logger *slog.Logger
	// GCInterval is how often the value log is garbage-collected (values over 1 MiB live there).
	// Zero means every 5 minutes; negative turns it off.
	GCInterval time.Duration
}

// Store is a raft.LogStore and raft.StableStore on badger. All methods are safe for concurrent
// use. FirstIndex and LastIndex read a cache kept by StoreLogs and DeleteRange and loaded at Open.
type Store struct {
	db *badger.DB

	mu    sync.Mutex // serialises writers of the log, so the index cache follows the DB
	first atomic.Uint64
	last  atomic.Uint64

	stop     chan struct{}
	gcDone   chan struct{}
	closeErr error
	once     sync.Once
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens (or creates) the store in cfg.Dir. The caller must Close it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("raftstore: Config.Dir is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Dir, "log")
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true). // raft assumes a stored log survives a crash
		WithLogger(slogAdapter{cfg.Logger}).
		WithDetectConflicts(false). // one writer at a time: s.mu
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithBlockCacheSize(32 << 20).
		WithValueLogFileSize(256 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open badger in %s: %w", dir, err)
	}
	s := &Store{db: db, stop: make(chan struct{}), gcDone: make(chan struct{})}
	if err := s.loadIndexes(); err != nil {
		db.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		db.Close()
		return nil, err
	}
	interval := cfg.GCInterval
	if interval == 0 {
		interval = 5 * time.Minute
	}
	go s.gcLoop(interval)
	return s, nil
}

// Close stops the store's background work and closes badger. It is safe to call more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.gcDone
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func (s *Store) gcLoop(interval time.Duration) {
	defer close(s.gcDone)
	if interval < 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// Rewrite value-log files while at least half their space is garbage.
			for s.db.RunValueLogGC(0.5) == nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
		}
	}
}

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = logPrefix
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// loadIndexes reads the first and last log index from disk into the cache.
func (s *Store) loadIndexes() error {
	return s.db.View(func(txn *badger.Txn) error {
		first, last, err := edgeIndexes(txn)
		if err != nil {
			return err
		}
		s.first.Store(first)
		s.last.Store(last)
		return nil
	})
}

// edgeIndexes returns the smallest and largest stored log index, or zeros when there are none.
func edgeIndexes(txn *badger.Txn) (first, last uint64, err error) {
	prefix := []byte{logPrefix}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	it.Rewind()
	if it.Valid() {
		if first, err = indexOf(it.Item().Key()); err != nil {
			it.Close()
			return 0, 0, err
		}
	}
	it.Close()
	if first == 0 {
		return 0, 0, nil
	}
	opts.Reverse = true
	it = txn.NewIterator(opts)
	defer it.Close()
	it.Seek([]byte{logPrefix, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if it.Valid() {
		if last, err = indexOf(it.Item().Key()); err != nil {
			return 0, 0, err
		}
	}
	return first, last, nil
}

func indexOf(key []byte) (uint64, error) {
	if len(key) != 9 || key[0] != logPrefix {
		return 0, fmt.Errorf("%w: log key %x", ErrCorrupt, key)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// FirstIndex returns the first stored log index, 0 if there are none.
func (s *Store) FirstIndex() (uint64, error) { return s.first.Load(), nil }

// LastIndex returns the last stored log index, 0 if there are none.
func (s *Store) LastIndex() (uint64, error) { return s.last.Load(), nil }

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return raft.ErrLogNotFound
		}
		if err != nil {
			return fmt.Errorf("raftstore: get log %d: %w", index, err)
		}
		return item.Value(func(v []byte) error {
			l, err := DecodeLog(v)
			if err != nil {
				return fmt.Errorf("log %d: %w", index, err)
			}
			if l.Index != index {
				return fmt.Errorf("%w: log key %d holds index %d", ErrCorrupt, index, l.Index)
			}
			*log = l
			return nil
		})
	})
}

// StoreLog stores one entry.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores the entries in one badger transaction, hence one fsync. Only when the batch is
// larger than badger's transaction limit is it split, each part committed in order; if a later
// part fails, the earlier parts stay stored and FirstIndex/LastIndex include them.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	lo, hi := uint64(0), uint64(0) // range written in txn, not yet committed
	commit := func() error {
		if err := txn.Commit(); err != nil {
			return fmt.Errorf("raftstore: store logs %d-%d: %w", lo, hi, err)
		}
		s.widen(lo, hi)
		lo, hi = 0, 0
		return nil
	}
	for _, l := range logs {
		key, val := logKey(l.Index), EncodeLog(l)
		err := txn.Set(key, val)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = txn.Set(key, val)
		}
		if err != nil {
			return fmt.Errorf("raftstore: store log %d: %w", l.Index, err)
		}
		if lo == 0 || l.Index < lo {
			lo = l.Index
		}
		if l.Index > hi {
			hi = l.Index
		}
	}
	return commit()
}

// widen extends the cached index range to cover [lo, hi]. s.mu must be held.
func (s *Store) widen(lo, hi uint64) {
	if lo == 0 && hi == 0 {
		return
	}
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
}

// DeleteRange deletes the entries with indexes in [min, max], inclusive.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Delete while iterating a read snapshot; the WriteBatch splits the deletes across
	// transactions as badger's size limit demands.
	wb := s.db.NewWriteBatch()
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{logPrefix}
		it := txn.NewIterator(opts)
		defer it.Close()
		end := logKey(max)
		for it.Seek(logKey(min)); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if bytes.Compare(k, end) > 0 {
				break
			}
			if err := wb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err != nil {
		_ = s.loadIndexes() // part of the range may be gone: resync the cache with the DB
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", min, max, err)
	}
	first, last := s.first.Load(), s.last.Load()
	if min > first && max < last {
		return nil // a hole in the middle: the edges stay
	}
	return s.loadIndexes()
}

// Set stores val under key. A nil val deletes the key, as raft.InmemStore treats it as absent.
func (s *Store) Set(key, val []byte) error {
	k := append([]byte{bytesPrefix}, key...)
	err := s.db.Update(func(txn *badger.Txn) error {
		if val == nil {
			return txn.Delete(k)
		}
		return txn.Set(k, val)
	})
	if err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	return nil
}

// Get returns the value stored under key, or ErrKeyNotFound (text "not found").
// The caller owns the returned slice.
func (s *Store) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append([]byte{bytesPrefix}, key...))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		if out == nil {
			out = []byte{}
		}
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: get %q: %w", key, err)
	}
	return out, nil
}

// SetUint64 stores val under key, apart from the byte values of Set.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], val)
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{uintPrefix}, key...), v[:])
	})
	if err != nil {
		return fmt.Errorf("raftstore: set uint64 %q: %w", key, err)
	}
	return nil
}

// GetUint64 returns the value stored under key by SetUint64, or 0 and no error if there is none
// (as raft.InmemStore does).
func (s *Store) GetUint64(key []byte) (uint64, error) {
	var out uint64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append([]byte{uintPrefix}, key...))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: uint64 %q has %d bytes", ErrCorrupt, key, len(v))
			}
			out = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("raftstore: get uint64 %q: %w", key, err)
	}
	return out, nil
}

// slogAdapter sends badger's log lines to a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args ...any) {
	if a.l == nil || !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "badger")
}

func (a slogAdapter) Errorf(f string, args ...any)   { a.log(slog.LevelError, f, args...) }
func (a slogAdapter) Warningf(f string, args ...any) { a.log(slog.LevelWarn, f, args...) }
func (a slogAdapter) Infof(f string, args ...any)    { a.log(slog.LevelDebug, f, args...) }
func (a slogAdapter) Debugf(f string, args ...any)   { a.log(slog.LevelDebug-4, f, args...) }
