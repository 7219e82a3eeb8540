package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Keys in badger, namespaced by prefix:
//
//	meta/format                  storage format version ("1")
//	mod/<digest>/<8 hex digits>  the module's record, JSON, in chunks
//	bin/<digest>/<8 hex digits>  the module's bytes, in chunks
//	name/<name>/<version>        the digest the name and version are bound to
//
// Records and bytes are stored in chunks of chunkSize, numbered from 0, because badger refuses a
// value larger than its value log file and, in memory, one larger than its value threshold (at
// most 1 MiB): chunks keep every value small whatever MaxModuleBytes is and however big a
// manifest is. On disk every key of a module is written in one transaction and deleted in one.
const (
	formatKey     = "meta/format"
	formatVersion = "1"
	modPrefix     = "mod/"
	binPrefix     = "bin/"
	namePrefix    = "name/"

	chunkSize = 256 << 10
)

func chunkKey(prefix, digest string, i int) []byte {
	return fmt.Appendf(nil, "%s%s/%08x", prefix, digest, i)
}

func nameKey(name, version string) []byte { return []byte(namePrefix + name + "/" + version) }

func chunksOf(n int) int { return (n + chunkSize - 1) / chunkSize }

// record is what mod/<digest> holds. Names are not in it: name/ keys are the truth for those.
type record struct {
	Digest      string         `json:"digest"`
	Size        int64          `json:"size"`
	Name        string         `json:"name,omitempty"` // the first name the module was given
	Version     string         `json:"version,omitempty"`
	Description string         `json:"description,omitempty"`
	Manifest    abi.Manifest   `json:"manifest"`
	Info        abi.ModuleInfo `json:"info"`
	Created     time.Time      `json:"created"`

	recChunks int // chunks of the stored record
}

// encodeRecord returns the record's JSON and the record a reload decodes from it, which is what
// the index keeps, so the index never differs from what a restart would read.
func encodeRecord(rec *record) ([]byte, *record, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, nil, fmt.Errorf("plugins: encode record of %s: %w", rec.Digest, err)
	}
	var stored record
	if err := json.Unmarshal(data, &stored); err != nil {
		return nil, nil, fmt.Errorf("plugins: decode record of %s: %w", rec.Digest, err)
	}
	stored.recChunks = chunksOf(len(data))
	return data, &stored, nil
}

// writer is what a change to the store is made through: a transaction on disk, a write batch in
// memory.
type writer struct {
	set func(k, v []byte) error
	del func(k []byte) error
}

// putChunks writes data in chunks under prefix and digest, and deletes the chunks numbered from
// its chunk count to had (the tail of a longer earlier value).
func (w writer) putChunks(prefix, digest string, data []byte, had int) error {
	n := chunksOf(len(data))
	for i := range n {
		if err := w.set(chunkKey(prefix, digest, i), data[i*chunkSize:min((i+1)*chunkSize, len(data))]); err != nil {
			return err
		}
	}
	return w.delChunks(prefix, digest, n, had)
}

// delChunks deletes the chunks numbered from..to-1.
func (w writer) delChunks(prefix, digest string, from, to int) error {
	for i := from; i < to; i++ {
		if err := w.del(chunkKey(prefix, digest, i)); err != nil {
			return err
		}
	}
	return nil
}

// update applies fn to the store. On disk it is one synchronous transaction: a crash keeps all
// of it or none. In memory, where a transaction holds its values in full within 15% of the
// memtable, it goes through a write batch, which commits in as many transactions as it needs;
// nothing outlives the process there and the store is read only through the index, which the
// caller updates after update returns, so no reader sees a partial change either way.
func (r *Registry) update(fn func(w writer) error) error {
	if r.inMemory {
		wb := r.db.NewWriteBatch()
		defer wb.Cancel()
		if err := fn(writer{set: wb.Set, del: wb.Delete}); err != nil {
			return err
		}
		return wb.Flush()
	}
	return r.db.Update(func(txn *badger.Txn) error {
		return fn(writer{set: txn.Set, del: txn.Delete})
	})
}

// readChunks appends the n chunks under prefix and digest to out.
func readChunks(txn *badger.Txn, prefix, digest string, n int, out []byte) ([]byte, error) {
	for i := range n {
		item, err := txn.Get(chunkKey(prefix, digest, i))
		if err != nil {
			return nil, err
		}
		if err := item.Value(func(v []byte) error {
			out = append(out, v...)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// load reads every record and name into the index, and stamps a new store with its format.
func (r *Registry) load() error {
	fresh := false
	err := r.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(formatKey))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			fresh = true
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if string(v) != formatVersion {
				return fmt.Errorf("storage format %q, this build reads %q", v, formatVersion)
			}
		}
		if err := r.loadRecords(txn); err != nil {
			return err
		}
		return eachKey(txn, namePrefix, func(key string, val []byte) error {
			name, ver, ok := strings.Cut(strings.TrimPrefix(key, namePrefix), "/")
			if !ok || checkName(name) != nil {
				return fmt.Errorf("name key %q is malformed", key)
			}
			v, err := parseVersion(ver)
			if err != nil {
				return fmt.Errorf("name key %q: %w", key, err)
			}
			if r.mods[string(val)] == nil {
				return fmt.Errorf("name key %q binds %q, which is not stored", key, val)
			}
			r.bindIndex(&binding{name: name, version: ver, v: v, digest: string(val)})
			return nil
		})
	})
	if err != nil || !fresh {
		return err
	}
	return r.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(formatKey), []byte(formatVersion))
	})
}

// loadRecords reads the records: runs of mod/<digest>/<i> keys, in order from chunk 0.
func (r *Registry) loadRecords(txn *badger.Txn) error {
	var digest string
	var buf []byte
	var n int
	flush := func() error {
		if digest == "" {
			return nil
		}
		var rec record
		if err := json.Unmarshal(buf, &rec); err != nil {
			return fmt.Errorf("record of %s: %w", digest, err)
		}
		if rec.Digest != digest {
			return fmt.Errorf("record of %s holds digest %q", digest, rec.Digest)
		}
		rec.recChunks = n
		r.mods[digest] = &rec
		return nil
	}
	err := eachKey(txn, modPrefix, func(key string, val []byte) error {
		d, idx, ok := strings.Cut(strings.TrimPrefix(key, modPrefix), "/")
		i, err := strconv.ParseUint(idx, 16, 32)
		if !ok || len(idx) != 8 || err != nil || checkDigest(d) != nil {
			return fmt.Errorf("record key %q is malformed", key)
		}
		if d != digest {
			if err := flush(); err != nil {
				return err
			}
			digest, buf, n = d, buf[:0], 0
		}
		if int(i) != n {
			return fmt.Errorf("record of %s lacks chunk %d", d, n)
		}
		buf = append(buf, val...)
		n++
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// eachKey calls fn with every key under prefix and its value, in key order. val is valid only
// during the call.
func eachKey(txn *badger.Txn, prefix string, fn func(key string, val []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := string(item.Key())
		if err := item.Value(func(val []byte) error { return fn(key, bytes.Clone(val)) }); err != nil {
			return err
		}
	}
	return nil
}

// inMemoryMemTable is the memtable of the in-memory store: small, since writes there are split
// into as many transactions as they need (see update).
const inMemoryMemTable = 16 << 20

// badgerOptions returns the options a registry opens badger with: small tables and logs, so a
// registry (and a test opening many) is cheap; synchronous writes, so an Add that returned
// survives a crash; no compression (WebAssembly bytes hardly compress and need no block cache).
func badgerOptions(cfg Config) badger.Options {
	opts := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(true).
		WithLogger(quietLogger{cfg.Logger}).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumGoroutines(2).
		WithNumCompactors(2).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithMemTableSize(4 << 20).
		WithValueLogFileSize(16 << 20).
		// Full chunks go to the value log; a transaction then counts only their pointers against
		// its size limit (15% of the memtable), so one holds a module of MaxModuleBytesLimit.
		WithValueThreshold(64 << 10).
		// Writers are serialized by the registry, so badger's conflict tracking has nothing to do.
		WithDetectConflicts(false)
	if cfg.Dir == "" {
		// In memory, a value above the threshold is refused and one below it counts in full;
		// chunks (smaller than 1 MiB) always stay below it.
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true).
			WithMemTableSize(inMemoryMemTable).
			WithValueThreshold(1 << 20)
	}
	return opts
}

// quietLogger passes badger's errors and warnings to a slog.Logger and drops the rest.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) logger() *slog.Logger {
	if q.l != nil {
		return q.l
	}
	return slog.Default()
}

func (q quietLogger) Errorf(f string, a ...any) {
	q.logger().Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (q quietLogger) Warningf(f string, a ...any) {
	q.logger().Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}
