package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Keys in badger, namespaced by prefix:
//
//	meta/format                  storage format version ("1")
//	mod/<digest>/<8 hex digits>  the module's record, JSON, in chunks
//	bin/<digest>/<8 hex digits>  the module's bytes, in chunks (none when its record says
//	                             "apart": they are in the registry's Blobs)
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
	// Apart says the bytes are kept in the registry's Blobs, not under bin/ in the store.
	Apart bool `json:"apart,omitempty"`

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

// Store is where a Registry keeps its keys. By default a registry opens its own badger database
// (Config.Dir); the engine gives it the cluster's replicated state instead (Config.Store), so
// that every node sees the same modules. Implementations must be safe for concurrent use.
type Store interface {
	// View calls fn with one consistent view of the keys.
	View(fn func(r StoreReader) error) error
	// Update commits the writes fn makes atomically, once every condition fn set holds; it
	// fails with an error wrapping ErrConflict when one does not.
	Update(ctx context.Context, fn func(w StoreWriter) error) error
	// Version changes whenever the keys may have changed, by this registry or by another
	// writer of the same store; the registry reloads its index when it moves.
	Version() uint64
}

// StoreReader reads a Store.
type StoreReader interface {
	// Get returns key's value; an error wrapping ErrNotFound when it is missing.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every key under prefix, in key order; key and value are fn's to keep.
	Scan(prefix []byte, fn func(key, val []byte) error) error
}

// StoreWriter collects the writes and conditions of one Update.
type StoreWriter interface {
	Set(key, val []byte)
	Delete(key []byte)
	// RequireAbsent makes the update conditional on key not existing; RequireExists on key
	// existing.
	RequireAbsent(key []byte)
	RequireExists(key []byte)
}

// putChunks writes data in chunks under prefix and digest, and deletes the chunks numbered from
// its chunk count to had (the tail of a longer earlier value).
func putChunks(w StoreWriter, prefix, digest string, data []byte, had int) {
	n := chunksOf(len(data))
	for i := range n {
		w.Set(chunkKey(prefix, digest, i), data[i*chunkSize:min((i+1)*chunkSize, len(data))])
	}
	delChunks(w, prefix, digest, n, had)
}

// delChunks deletes the chunks numbered from..to-1.
func delChunks(w StoreWriter, prefix, digest string, from, to int) {
	for i := from; i < to; i++ {
		w.Delete(chunkKey(prefix, digest, i))
	}
}

// readChunks appends the n chunks under prefix and digest to out.
func readChunks(r StoreReader, prefix, digest string, n int, out []byte) ([]byte, error) {
	for i := range n {
		v, err := r.Get(chunkKey(prefix, digest, i))
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}

// badgerStore is the Store of a registry's own badger database.
type badgerStore struct {
	db       *badger.DB
	inMemory bool
	version  atomic.Uint64
}

// batchWriter records an Update's writes and conditions.
type batchWriter struct {
	sets    [][2][]byte
	dels    [][]byte
	absent  [][]byte
	exists  [][]byte
	setKeys [][]byte
}

func (w *batchWriter) Set(k, v []byte)        { w.sets = append(w.sets, [2][]byte{k, v}) }
func (w *batchWriter) Delete(k []byte)        { w.dels = append(w.dels, k) }
func (w *batchWriter) RequireAbsent(k []byte) { w.absent = append(w.absent, k) }
func (w *batchWriter) RequireExists(k []byte) { w.exists = append(w.exists, k) }

type txnReader struct{ txn *badger.Txn }

func (r txnReader) Get(key []byte) ([]byte, error) {
	item, err := r.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: key %q", ErrNotFound, key)
	} else if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (r txnReader) Scan(prefix []byte, fn func(key, val []byte) error) error {
	it := r.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
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

func (s *badgerStore) View(fn func(r StoreReader) error) error {
	return s.db.View(func(txn *badger.Txn) error { return fn(txnReader{txn}) })
}

func (s *badgerStore) Version() uint64 { return s.version.Load() }

// Update applies the writes. On disk it is one synchronous transaction: a crash keeps all of it
// or none. In memory, where a transaction holds its values in full within 15% of the memtable,
// it goes through a write batch, which commits in as many transactions as it needs, and a failed
// batch is undone; nothing outlives the process there. The registry's writers are serialised,
// so the conditions checked before the batch still hold when it commits.
func (s *badgerStore) Update(ctx context.Context, fn func(w StoreWriter) error) error {
	w := &batchWriter{}
	if err := fn(w); err != nil {
		return err
	}
	defer s.version.Add(1)
	check := func(txn *badger.Txn) error {
		for _, k := range w.absent {
			if _, err := txn.Get(k); err == nil {
				return fmt.Errorf("%w: %q exists", ErrConflict, k)
			}
		}
		for _, k := range w.exists {
			if _, err := txn.Get(k); err != nil {
				return fmt.Errorf("%w: %q is missing", ErrConflict, k)
			}
		}
		return nil
	}
	if s.inMemory {
		if err := s.db.View(check); err != nil {
			return err
		}
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		err := func() error {
			for _, kv := range w.sets {
				if err := wb.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			for _, k := range w.dels {
				if err := wb.Delete(k); err != nil {
					return err
				}
			}
			return wb.Flush()
		}()
		if err != nil { // a write batch may have committed part of it
			undo := s.db.NewWriteBatch()
			defer undo.Cancel()
			for _, kv := range w.sets {
				undo.Delete(kv[0])
			}
			undo.Flush()
		}
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if err := check(txn); err != nil {
			return err
		}
		for _, kv := range w.sets {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		for _, k := range w.dels {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// index is what a registry keeps in memory of its store.
type index struct {
	mods  map[string]*record    // by digest
	names map[string][]*binding // by name, sorted by version ascending
	tags  map[string][]*binding // by digest, sorted by name then version
}

func newIndex() *index {
	return &index{mods: map[string]*record{}, names: map[string][]*binding{}, tags: map[string][]*binding{}}
}

// loadIndex reads every record and name of the store. A name bound to a module that is not
// stored is an error in a registry's own store; in a shared one it is skipped, since a Delete on
// one node and a Tag on another may both commit.
func loadIndex(st StoreReader, shared bool) (*index, error) {
	ix := newIndex()
	v, err := st.Get([]byte(formatKey))
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, err
	case string(v) != formatVersion:
		return nil, fmt.Errorf("storage format %q, this build reads %q", v, formatVersion)
	}
	if err := loadRecords(st, ix); err != nil {
		return nil, err
	}
	err = st.Scan([]byte(namePrefix), func(k, val []byte) error {
		key := string(k)
		name, ver, ok := strings.Cut(strings.TrimPrefix(key, namePrefix), "/")
		if !ok || checkName(name) != nil {
			return fmt.Errorf("name key %q is malformed", key)
		}
		v, err := parseVersion(ver)
		if err != nil {
			return fmt.Errorf("name key %q: %w", key, err)
		}
		if ix.mods[string(val)] == nil {
			if shared {
				return nil
			}
			return fmt.Errorf("name key %q binds %q, which is not stored", key, val)
		}
		b := &binding{name: name, version: ver, v: v, digest: string(val)}
		ix.names[name] = append(ix.names[name], b)
		ix.tags[b.digest] = append(ix.tags[b.digest], b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Sorted once each, not on every insert: a digest with k names used to cost O(k^2 log k).
	for _, bs := range ix.names {
		sort.Slice(bs, func(i, j int) bool { return bs[i].v.compare(bs[j].v) < 0 })
	}
	for _, bs := range ix.tags {
		sort.Slice(bs, func(i, j int) bool { return lessBinding(bs[i], bs[j]) })
	}
	return ix, nil
}

// bind adds a binding to the index, in order: O(log k) to find its place among the k bindings of
// its name and of its digest, and one copy to make room.
func (ix *index) bind(b *binding) {
	ix.names[b.name] = insertSorted(ix.names[b.name], b, func(x, y *binding) bool { return x.v.compare(y.v) < 0 })
	ix.tags[b.digest] = insertSorted(ix.tags[b.digest], b, lessBinding)
}

// unbind removes a binding from the index.
func (ix *index) unbind(b *binding) {
	ix.names[b.name] = slices.DeleteFunc(ix.names[b.name], func(x *binding) bool { return x == b })
	if len(ix.names[b.name]) == 0 {
		delete(ix.names, b.name)
	}
	ix.tags[b.digest] = slices.DeleteFunc(ix.tags[b.digest], func(x *binding) bool { return x == b })
	if len(ix.tags[b.digest]) == 0 {
		delete(ix.tags, b.digest)
	}
}

// drop removes a module and its bindings from the index.
func (ix *index) drop(digest string) {
	for _, b := range slices.Clone(ix.tags[digest]) {
		ix.unbind(b)
	}
	delete(ix.mods, digest)
}

func insertSorted(bs []*binding, b *binding, less func(x, y *binding) bool) []*binding {
	i := sort.Search(len(bs), func(i int) bool { return less(b, bs[i]) })
	return slices.Insert(bs, i, b)
}

// loadRecords reads the records: runs of mod/<digest>/<i> keys, in order from chunk 0.
func loadRecords(st StoreReader, ix *index) error {
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
		ix.mods[digest] = &rec
		return nil
	}
	err := st.Scan([]byte(modPrefix), func(k, val []byte) error {
		key := string(k)
		d, idx, ok := strings.Cut(strings.TrimPrefix(key, modPrefix), "/")
		i, err := strconv.ParseUint(idx, 16, 32)
		if !ok || len(idx) != 8 || err != nil || checkDigest(d) != nil {
			return fmt.Errorf("record key %q is malformed", key)
		}
		if d != digest {
			if err := flush(); err != nil {
				return err
			}
			digest, buf, n = d, nil, 0
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
