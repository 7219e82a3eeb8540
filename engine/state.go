package engine

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// state is the engine's durable key-value state on one node: workflows and their step
// checkpoints. Every write is synchronous: a write that returned survives a crash. It is safe
// for concurrent use.
type state struct{ db *badger.DB }

// errNoKey is returned by get for a missing key.
var errNoKey = errors.New("engine: no such key")

func openState(dir string) (*state, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{}).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithNumGoroutines(2).
		WithNumCompactors(2).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(64 << 10)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("engine: open state in %s: %w", dir, err)
	}
	return &state{db: db}, nil
}

func (s *state) close() error { return s.db.Close() }

// put writes key → val durably.
func (s *state) put(key string, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}

// putMany writes every pair in one transaction: all or none survive a crash.
func (s *state) putMany(kv map[string][]byte) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// get reads key; errNoKey when it is missing.
func (s *state) get(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return errNoKey
		} else if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// scan calls fn for every key with prefix, in key order, with a value fn may keep.
func (s *state) scan(prefix string, fn func(key string, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(string(it.Item().Key()), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// badgerLogger passes badger's errors and warnings to slog and drops the rest.
type badgerLogger struct{}

func (badgerLogger) Errorf(f string, a ...any)   { slog.Error("badger: " + fmt.Sprintf(f, a...)) }
func (badgerLogger) Warningf(f string, a ...any) { slog.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (badgerLogger) Infof(string, ...any)        {}
func (badgerLogger) Debugf(string, ...any)       {}
