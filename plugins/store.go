package plugins

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Keys in badger, namespaced by prefix:
//
//	meta/format                  storage format version ("1")
//	mod/<digest>                 the module's record, JSON
//	bin/<digest>/<8 hex digits>  the module's bytes, in chunks of chunkSize, in order
//	name/<name>/<version>        the digest the name and version are bound to
//
// A module's bytes are chunked because badger refuses a value larger than its value log file and,
// in memory, one larger than its value threshold (at most 1 MiB); chunks keep both small whatever
// MaxModuleBytes is. Every key of a module is written in one transaction (but see Registry.write
// for the in-memory store) and deleted in one.
const (
	formatKey     = "meta/format"
	formatVersion = "1"
	modPrefix     = "mod/"
	binPrefix     = "bin/"
	namePrefix    = "name/"

	chunkSize = 256 << 10
)

func modKey(digest string) []byte { return []byte(modPrefix + digest) }

func binKey(digest string, i int) []byte {
	return fmt.Appendf(nil, "%s%s/%08x", binPrefix, digest, i)
}

func nameKey(name, version string) []byte { return []byte(namePrefix + name + "/" + version) }

// record is what mod/<digest> holds. Names are not in it: name/ keys are the truth for those.
type record struct {
	Digest      string         `json:"digest"`
	Size        int64          `json:"size"`
	Chunks      int            `json:"chunks"`
	Name        string         `json:"name,omitempty"` // the first name the module was given
	Version     string         `json:"version,omitempty"`
	Description string         `json:"description,omitempty"`
	Manifest    abi.Manifest   `json:"manifest"`
	Info        abi.ModuleInfo `json:"info"`
	Created     time.Time      `json:"created"`
}

// inMemoryMemTable is the memtable of the in-memory store. There a value is held in full by its
// transaction, which may hold at most 15% of the memtable: module bytes are written in as many
// transactions as they need (see Registry.write), and only a record must fit one.
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
		// Chunks (256 KiB) and large records go to the value log; a transaction then counts
		// only their pointers against its size limit.
		WithValueThreshold(64 << 10).
		// Writers are serialized by the registry, so badger's conflict tracking has nothing to do.
		WithDetectConflicts(false)
	if cfg.Dir == "" {
		// In memory, a value above the threshold is refused and one below it counts in full, so
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
