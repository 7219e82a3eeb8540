// Package plugins is Lumen's module registry: it checks, names, versions and persists guest
// modules by digest; it knows no workflows.
//
// A module is stored once, under the sha256 digest of its bytes, after its shape, manifest and
// capabilities have been checked. Names are bound to digests per semantic version and a bound
// version never moves. Everything is kept in badger with synchronous writes; Open reloads it.
// With Config.Blobs the bytes of new modules are kept there instead, and the store holds their
// records only (in a cluster, the raft log then carries no module bytes).
package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Errors. Every refusal wraps one of these, with the detail in its message, so an API can map
// them to statuses (docs/api.md). Other errors are the store failing.
var (
	ErrNotFound = errors.New("plugins: not found")
	ErrTooLarge = errors.New("plugins: module too large")
	ErrNotWasm  = errors.New("plugins: not a WebAssembly module")
	ErrInUse    = errors.New("plugins: module in use")
	ErrInvalid  = errors.New("plugins: invalid")
	ErrConflict = errors.New("plugins: conflict")
	ErrClosed   = errors.New("plugins: registry closed")
)

// DefaultMaxModuleBytes is the module size cap when Config.MaxModuleBytes is 0.
const DefaultMaxModuleBytes = 64 << 20

// MaxModuleBytesLimit is the largest cap a registry accepts: compiling a module cannot be
// cancelled, so its size is what bounds the time an upload costs.
const MaxModuleBytesLimit = 1 << 30

// MaxDescriptionLen bounds AddOptions.Description.
const MaxDescriptionLen = 4 << 10

// wasmHeader is the WebAssembly binary magic and version 1.
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// Inspector compiles and inspects module bytes. Inspect checks the module against the ABI
// (abi.CheckShape), compiles it, reads and validates the manifest its lumen_manifest export
// returns, and reports its exports, imports and manifest. An error means the module is refused.
// It must be safe for concurrent use; host.Runtime implements it.
type Inspector interface {
	Inspect(ctx context.Context, wasm []byte) (*abi.ModuleInfo, error)
}

// Config configures a Registry.
type Config struct {
	// Dir is where badger keeps the registry. Empty keeps it in memory, for tests.
	Dir string
	// Store, when set, is used instead of a badger database of the registry's own (Dir is then
	// ignored): the engine passes the cluster's replicated state. The registry does not close it.
	Store Store
	// Blobs, when set, keeps the bytes of the modules added from now on, and the Store their
	// records only (the engine passes the cluster's, so that the raft log carries no module
	// bytes). Modules stored before keep their bytes in the Store and are read from there.
	Blobs Blobs
	// MaxModuleBytes caps a module's size; 0 means DefaultMaxModuleBytes.
	MaxModuleBytes int64
	// Inspector checks every new module. Required.
	Inspector Inspector
	// Logger receives badger's warnings and errors; nil means slog.Default().
	Logger *slog.Logger
	// Now stamps Module.Created; nil means time.Now.
	Now func() time.Time
}

// AddOptions are what an upload adds to a module's own manifest.
type AddOptions struct {
	// Name and Version bind name@version to the module. Both or neither.
	Name, Version string
	// Resources, when set, replace the resource hints of the guest's manifest.
	Resources *abi.Resources
	// Description is free text (UTF-8, at most MaxDescriptionLen bytes).
	Description string
}

// Module is a registered module. A Module returned by the registry is the caller's: the registry
// keeps its own copy.
type Module struct {
	Digest string `json:"digest"` // "sha256:<hex>" of the bytes
	Size   int64  `json:"size"`
	// Name and Version are the binding the module was resolved by when Resolve was given a name,
	// and otherwise the first name the module was given; empty when it has none.
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Names lists every "name@version" bound to the module, by name then version.
	Names       []string `json:"names,omitempty"`
	Description string   `json:"description,omitempty"`
	// Manifest is the effective manifest: the guest's, with the capabilities and resources of
	// the upload applied. Info.Manifest is the guest's own.
	Manifest abi.Manifest   `json:"manifest"`
	Info     abi.ModuleInfo `json:"info"`
	Created  time.Time      `json:"created"`
}

// Ref returns the module's name@version, or its digest when it has no name.
func (m *Module) Ref() string {
	if m.Name != "" {
		return m.Name + "@" + m.Version
	}
	return m.Digest
}

// Registry holds the registered modules. It is safe for concurrent use. Reads (Resolve, List,
// Bytes) run alongside each other and alongside a write's disk sync. Adds inspect in parallel;
// the commits of Add, Tag and Delete run one at a time.
type Registry struct {
	db     *badger.DB // the registry's own store; nil when Config.Store was given
	st     Store
	shared bool // st is Config.Store, written by others too
	blobs  Blobs
	max    int64
	insp   Inspector
	now    func() time.Time

	wmu sync.Mutex // serializes writers; held from their checks to their index update

	mu     sync.RWMutex // guards the fields below; held by readers while they read the store
	closed bool
	seen   uint64 // the store's Version the index was loaded at
	*index
}

type binding struct {
	name, version string
	v             version
	digest        string
}

func (b *binding) String() string { return b.name + "@" + b.version }

// Open opens the registry in cfg.Dir, creating it if needed, and loads every module and name
// persisted there. The caller must Close it.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Inspector == nil {
		return nil, errors.New("plugins: Config.Inspector is required")
	}
	if cfg.MaxModuleBytes == 0 {
		cfg.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if cfg.MaxModuleBytes < 0 || cfg.MaxModuleBytes > MaxModuleBytesLimit {
		return nil, fmt.Errorf("plugins: Config.MaxModuleBytes %d outside 1..%d", cfg.MaxModuleBytes, MaxModuleBytesLimit)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &Registry{max: cfg.MaxModuleBytes, insp: cfg.Inspector, now: cfg.Now, blobs: cfg.Blobs, index: newIndex()}
	if cfg.Store != nil {
		r.st, r.shared = cfg.Store, true
	} else {
		db, err := badger.Open(badgerOptions(cfg))
		if err != nil {
			return nil, fmt.Errorf("plugins: open store %q: %w", cfg.Dir, err)
		}
		r.db, r.st = db, &badgerStore{db: db, inMemory: cfg.Dir == ""}
	}
	if err := r.stampFormat(); err != nil {
		if r.db != nil {
			r.db.Close()
		}
		return nil, fmt.Errorf("plugins: load %q: %w", cfg.Dir, err)
	}
	if err := r.reloadLocked(); err != nil {
		if r.db != nil {
			r.db.Close()
		}
		return nil, fmt.Errorf("plugins: load %q: %w", cfg.Dir, err)
	}
	return r, nil
}

// Close closes the store. Calls after Close fail with ErrClosed; Close itself may be repeated.
func (r *Registry) Close() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.db == nil {
		return nil
	}
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("plugins: close store: %w", err)
	}
	return nil
}

// Add checks and registers a module. In order: the size cap, the WebAssembly header, the
// options, then (for bytes not yet registered) the Inspector, the ABI shape and the manifest, and
// the capability check of the effective manifest against the module's lumen imports. The bytes,
// the record and the name are then written in one synchronous transaction: a refused or failed
// Add leaves nothing behind.
//
// Adding bytes already registered returns the stored module without inspecting it again, after
// binding opts.Name@opts.Version to it if given. Its other options must then agree with what is
// stored (capabilities already requested, the same resources and description) or be left empty:
// a module's manifest does not change after it is registered.
//
// The caller must not modify wasm during the call; Add does not keep it.
func (r *Registry) Add(ctx context.Context, wasm []byte, opts AddOptions) (*Module, error) {
	if int64(len(wasm)) > r.max {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", ErrTooLarge, len(wasm), r.max)
	}
	if err := checkHeader(wasm); err != nil {
		return nil, err
	}
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	digest := DigestPrefix + hex.EncodeToString(sum[:])

	if err := r.fresh(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	closed, existing := r.closed, r.mods[digest] != nil
	r.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if existing {
		m, err := r.readd(digest, opts)
		if err == nil {
			// Its bytes may be held nowhere now (every holder lost): keep them again.
			if err := r.keepAgain(ctx, digest, wasm); err != nil {
				return nil, err
			}
		}
		if !errors.Is(err, errGone) {
			return m, err
		}
		// Deleted meanwhile: register it anew.
	}

	rec, err := r.inspect(ctx, digest, wasm, opts)
	if err != nil {
		return nil, err
	}

	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	if r.mods[digest] != nil { // a concurrent Add of the same bytes won
		return r.readdLocked(digest, opts)
	}
	rec.Apart = r.blobs != nil
	var b *binding
	if opts.Name != "" {
		if b, err = r.checkBindingLocked(digest, opts.Name, opts.Version); err != nil {
			return nil, err
		}
		rec.Name, rec.Version = opts.Name, opts.Version
	}
	data, stored, err := encodeRecord(rec)
	if err != nil {
		return nil, err
	}
	if rec.Apart {
		// The bytes are kept before the record that names them commits: a node that applies
		// the record can always find them somewhere.
		if err := r.blobs.Put(ctx, digest, wasm); err != nil {
			return nil, fmt.Errorf("plugins: keep module %s: %w", digest, err)
		}
	}
	write := func(w StoreWriter) error {
		w.Set([]byte(formatKey), []byte(formatVersion))
		w.RequireAbsent(chunkKey(modPrefix, digest, 0))
		if !rec.Apart {
			putChunks(w, binPrefix, digest, wasm, 0)
		}
		putChunks(w, modPrefix, digest, data, 0)
		if b != nil {
			w.RequireAbsent(nameKey(b.name, b.version))
			w.Set(nameKey(b.name, b.version), []byte(digest))
		}
		return nil
	}
	before := r.st.Version()
	if err := r.st.Update(ctx, write); err != nil {
		if errors.Is(err, ErrConflict) && rec.Apart {
			// Refused for certain: drop the copy unless the module is registered after all.
			defer func() {
				r.mu.RLock()
				registered := r.mods[digest] != nil
				r.mu.RUnlock()
				if !registered {
					r.blobs.Drop(digest)
				}
			}()
		}
		if errors.Is(err, ErrConflict) && r.shared {
			// Another node registered the bytes or bound the name first: decide again on
			// what the store holds now.
			if err := r.reloadWrite(); err != nil {
				return nil, err
			}
			if r.mods[digest] != nil {
				return r.readdLocked(digest, opts)
			}
			if b != nil {
				if _, err := r.checkBindingLocked(digest, b.name, b.version); err != nil {
					return nil, err
				}
			}
			return nil, fmt.Errorf("plugins: store module %s: %w", digest, err)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return nil, fmt.Errorf("%w: module %s (%d bytes) and its record (%d bytes) do not fit one transaction of this store", ErrTooLarge, digest, len(wasm), len(data))
		}
		return nil, fmt.Errorf("plugins: store module %s: %w", digest, err)
	}
	r.committed(before, func(ix *index) {
		ix.mods[digest] = stored
		if b != nil {
			ix.bind(b)
		}
	})
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.moduleLocked(stored, nil), nil
}

// checkHeader checks the WebAssembly magic and binary version 1.
func checkHeader(wasm []byte) error {
	n := min(len(wasm), len(wasmHeader))
	switch {
	case len(wasm) == 0:
		return fmt.Errorf("%w: it is empty", ErrNotWasm)
	case !bytes.Equal(wasm[:min(n, 4)], wasmHeader[:min(n, 4)]):
		return fmt.Errorf("%w: it starts with %q, not \"\\x00asm\"", ErrNotWasm, wasm[:min(n, 4)])
	case n > 4 && !bytes.Equal(wasm[4:n], wasmHeader[4:n]):
		return fmt.Errorf("%w: binary format version %q, want version 1 (%q)", ErrNotWasm, wasm[4:n], wasmHeader[4:])
	case n < len(wasmHeader):
		return fmt.Errorf("%w: truncated: %d bytes, a module has at least %d", ErrNotWasm, len(wasm), len(wasmHeader))
	}
	return nil
}

// checkOptions validates what an upload adds, before any inspection.
func checkOptions(opts AddOptions) error {
	switch {
	case opts.Name == "" && opts.Version != "":
		return fmt.Errorf("%w: version %q without a name", ErrInvalid, clip(opts.Version))
	case opts.Name != "" && opts.Version == "":
		return fmt.Errorf("%w: name %q without a version", ErrInvalid, clip(opts.Name))
	case opts.Name != "":
		if err := checkName(opts.Name); err != nil {
			return err
		}
		if _, err := parseVersion(opts.Version); err != nil {
			return err
		}
	}
	if opts.Resources != nil {
		if err := opts.Resources.Validate(); err != nil {
			return fmt.Errorf("%w: resources: %w", ErrInvalid, err)
		}
	}
	if len(opts.Description) > MaxDescriptionLen || !utf8.ValidString(opts.Description) {
		return fmt.Errorf("%w: description must be UTF-8 of at most %d bytes", ErrInvalid, MaxDescriptionLen)
	}
	return nil
}

// inspect runs the Inspector and builds the record of a new module: the guest's manifest checked
// again here (the registry's guarantees do not rest on the Inspector), the upload's options
// applied, and the capability check.
func (r *Registry) inspect(ctx context.Context, digest string, wasm []byte, opts AddOptions) (*record, error) {
	info, err := r.insp.Inspect(ctx, wasm)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugins: inspect module %s: %w", digest, err)
		}
		if strings.Contains(err.Error(), digest) { // already says which module
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil, fmt.Errorf("%w: module %s: %w", ErrInvalid, digest, err)
	}
	if info == nil {
		return nil, fmt.Errorf("plugins: inspect module %s: the inspector returned nothing", digest)
	}
	if err := abi.CheckShape(info); err != nil {
		return nil, fmt.Errorf("%w: module %s: %w", ErrInvalid, digest, err)
	}
	if info.Manifest == nil {
		return nil, fmt.Errorf("%w: module %s has no manifest", ErrInvalid, digest)
	}
	if err := info.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: module %s: %w", ErrInvalid, digest, err)
	}
	eff := cloneManifest(*info.Manifest)
	if opts.Resources != nil {
		eff.Resources = cloneResources(*opts.Resources)
	}
	if err := eff.Validate(); err != nil {
		return nil, fmt.Errorf("%w: module %s: effective %w", ErrInvalid, digest, err)
	}
	if err := abi.CheckCapabilities(info, &eff); err != nil {
		return nil, fmt.Errorf("%w: module %s: %w (request them in the guest's manifest)", ErrInvalid, digest, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &record{
		Digest:      digest,
		Size:        int64(len(wasm)),
		Description: opts.Description,
		Manifest:    eff,
		Info:        cloneInfo(*info),
		Created:     r.now().UTC().Round(0),
	}, nil
}

// keepAgain puts the bytes of a registered module whose bytes are kept in Blobs again.
func (r *Registry) keepAgain(ctx context.Context, digest string, wasm []byte) error {
	r.mu.RLock()
	rec := r.mods[digest]
	r.mu.RUnlock()
	if rec == nil || !rec.Apart {
		return nil
	}
	if err := r.blobs.Put(ctx, digest, wasm); err != nil {
		return fmt.Errorf("plugins: keep module %s: %w", digest, err)
	}
	return nil
}

// errGone is readd's answer when the module was deleted since Add looked.
var errGone = errors.New("plugins: module deleted meanwhile")

// readd handles an Add of bytes already registered.
func (r *Registry) readd(digest string, opts AddOptions) (*Module, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	if r.mods[digest] == nil {
		return nil, errGone
	}
	return r.readdLocked(digest, opts)
}

func (r *Registry) readdLocked(digest string, opts AddOptions) (*Module, error) {
	rec := r.mods[digest]
	if opts.Resources != nil && !sameResources(*opts.Resources, rec.Manifest.Resources) {
		return nil, fmt.Errorf("%w: module %s is already registered with other resources; a registered manifest does not change", ErrConflict, digest)
	}
	if opts.Description != "" && opts.Description != rec.Description {
		return nil, fmt.Errorf("%w: module %s is already registered with another description", ErrConflict, digest)
	}
	if opts.Name != "" {
		if err := r.bindLocked(digest, opts.Name, opts.Version); err != nil {
			return nil, err
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.moduleLocked(r.mods[digest], nil), nil
}

// Tag binds name@version to the module with the given digest. Binding the same again does
// nothing; a name@version bound to another digest is refused with ErrConflict.
func (r *Registry) Tag(digest, name, version string) error {
	if err := checkDigest(digest); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := parseVersion(version); err != nil {
		return err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if err := r.fresh(); err != nil {
		return err
	}
	if r.mods[digest] == nil {
		return fmt.Errorf("%w: module %s", ErrNotFound, digest)
	}
	return r.bindLocked(digest, name, version)
}

// checkBindingLocked returns the binding to make, nil when it exists already, or ErrConflict.
// The caller holds wmu.
func (r *Registry) checkBindingLocked(digest, name, ver string) (*binding, error) {
	for _, b := range r.names[name] {
		if b.version != ver {
			continue
		}
		if b.digest == digest {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s@%s is already bound to %s; a version never moves, publish a new one", ErrConflict, name, ver, b.digest)
	}
	v, err := parseVersion(ver)
	if err != nil {
		return nil, err
	}
	return &binding{name: name, version: ver, v: v, digest: digest}, nil
}

// bindLocked persists and indexes a binding of an existing module, making it the module's first
// name if it had none. The caller holds wmu.
func (r *Registry) bindLocked(digest, name, ver string) error {
	b, err := r.checkBindingLocked(digest, name, ver)
	if err != nil || b == nil {
		return err
	}
	rec := r.mods[digest]
	var named *record
	var data []byte
	if rec.Name == "" {
		c := *rec
		c.Name, c.Version = name, ver
		if data, named, err = encodeRecord(&c); err != nil {
			return err
		}
	}
	before := r.st.Version()
	err = r.st.Update(context.Background(), func(w StoreWriter) error {
		w.RequireExists(chunkKey(modPrefix, digest, 0))
		if named != nil {
			putChunks(w, modPrefix, digest, data, rec.recChunks)
		}
		w.RequireAbsent(nameKey(name, ver))
		w.Set(nameKey(name, ver), []byte(digest))
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) && r.shared {
			if rerr := r.reloadWrite(); rerr != nil {
				return rerr
			}
			if r.mods[digest] == nil {
				return fmt.Errorf("%w: module %s was deleted", ErrNotFound, digest)
			}
			if _, cerr := r.checkBindingLocked(digest, name, ver); cerr != nil {
				return cerr
			}
		}
		return fmt.Errorf("plugins: bind %s@%s to %s: %w", name, ver, digest, err)
	}
	r.committed(before, func(ix *index) {
		if named != nil {
			ix.mods[digest] = named
		}
		ix.bind(b)
	})
	return nil
}

// committed applies a write this registry has just made to its index, instead of reloading the
// whole store, so that a write costs O(1) in the modules and names registered (a bind used to
// reload and re-sort everything: 1,000 binds to one module took seconds to minutes). With its
// own store the registry is the only writer, so the index is then as fresh as the store. A
// shared store may have taken other nodes' writes meanwhile (raft applies a batch of commands and
// moves Version once for all of them), so there the index stays marked stale and the next
// caller reloads it. The caller holds wmu, and had made the index fresh at before.
func (r *Registry) committed(before uint64, apply func(ix *index)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	apply(r.index)
	if !r.shared && r.seen == before {
		r.seen = r.st.Version()
	}
}

// stampFormat writes the storage format into the registry's own store when it is new, after
// checking a stored one. A shared store is stamped by the first write instead, since a node
// opening it may have no quorum yet.
func (r *Registry) stampFormat() error {
	if r.shared {
		return nil
	}
	var have []byte
	err := r.st.View(func(rd StoreReader) (err error) {
		have, err = rd.Get([]byte(formatKey))
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return r.st.Update(context.Background(), func(w StoreWriter) error {
			w.Set([]byte(formatKey), []byte(formatVersion))
			return nil
		})
	case err != nil:
		return err
	case string(have) != formatVersion:
		return fmt.Errorf("storage format %q, this build reads %q", have, formatVersion)
	}
	return nil
}

// reloadLocked loads the index from the store. The caller holds mu for writing (or owns r).
func (r *Registry) reloadLocked() error {
	v := r.st.Version() // before reading: a write racing the load makes the next reader reload
	var ix *index
	err := r.st.View(func(rd StoreReader) (err error) {
		ix, err = loadIndex(rd, r.shared)
		return err
	})
	if err != nil {
		return err
	}
	r.index, r.seen = ix, v
	return nil
}

// reloadWrite reloads the index after a write. The caller holds wmu.
func (r *Registry) reloadWrite() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reloadLocked(); err != nil {
		return fmt.Errorf("plugins: reload: %w", err)
	}
	return nil
}

// fresh reloads the index when the store changed since it was loaded (another node's write, in
// a shared store). It takes mu for writing only then; readers call it before taking mu.
func (r *Registry) fresh() error {
	r.mu.RLock()
	stale := !r.closed && r.seen != r.st.Version()
	r.mu.RUnlock()
	if !stale {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.seen == r.st.Version() {
		return nil
	}
	if err := r.reloadLocked(); err != nil {
		return fmt.Errorf("plugins: reload: %w", err)
	}
	return nil
}

func lessBinding(a, b *binding) bool {
	if a.name != b.name {
		return a.name < b.name
	}
	return a.v.compare(b.v) < 0
}

// Resolve finds a module by reference: "sha256:<hex>", "name@1.2.0", or "name" for the name's
// highest release (its highest pre-release when it has no release). Errors wrap ErrInvalid for a
// malformed reference and ErrNotFound for an unknown one.
func (r *Registry) Resolve(ref string) (*Module, error) {
	p, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	if p.Digest != "" {
		rec := r.mods[p.Digest]
		if rec == nil {
			return nil, fmt.Errorf("%w: module %s", ErrNotFound, p.Digest)
		}
		return r.moduleLocked(rec, nil), nil
	}
	bs := r.names[p.Name]
	var found *binding
	if p.Version != "" {
		for _, b := range bs {
			if b.version == p.Version {
				found = b
				break
			}
		}
	} else if len(bs) > 0 {
		found = bs[len(bs)-1]
		for i := len(bs) - 1; i >= 0; i-- {
			if bs[i].v.pre == nil {
				found = bs[i]
				break
			}
		}
	}
	if found == nil {
		if len(bs) == 0 {
			return nil, fmt.Errorf("%w: no module is named %q", ErrNotFound, p.Name)
		}
		return nil, fmt.Errorf("%w: module %s (it has versions %s)", ErrNotFound, p, versionList(bs))
	}
	return r.moduleLocked(r.mods[found.digest], found), nil
}

func versionList(bs []*binding) string {
	vs := make([]string, len(bs))
	for i, b := range bs {
		vs[i] = b.version
	}
	return strings.Join(vs, ", ")
}

// Bytes returns a copy of the module's bytes, checked against its digest (BytesContext without
// a deadline).
func (r *Registry) Bytes(digest string) ([]byte, error) {
	return r.BytesContext(context.Background(), digest)
}

// BytesContext returns a copy of the module's bytes, checked against its digest. Bytes kept in
// Blobs may be fetched from elsewhere (another node) under ctx.
func (r *Registry) BytesContext(ctx context.Context, digest string) ([]byte, error) {
	if err := checkDigest(digest); err != nil {
		return nil, err
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return nil, ErrClosed
	}
	rec := r.mods[digest]
	r.mu.RUnlock()
	if rec == nil {
		return nil, fmt.Errorf("%w: module %s", ErrNotFound, digest)
	}
	if rec.Apart {
		return r.apartBytes(ctx, rec)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	var out []byte
	err := r.st.View(func(rd StoreReader) (err error) {
		out, err = readChunks(rd, binPrefix, digest, chunksOf(int(rec.Size)), make([]byte, 0, rec.Size))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		// Delete commits before it updates the index: the module is gone.
		return nil, fmt.Errorf("%w: module %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("plugins: read module %s: %w", digest, err)
	}
	if sum := sha256.Sum256(out); int64(len(out)) != rec.Size || DigestPrefix+hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("plugins: stored bytes of module %s do not match its digest (%d bytes, want %d): the store is corrupt", digest, len(out), rec.Size)
	}
	return out, nil
}

// apartBytes returns the bytes of a module kept in Blobs, checked against its record.
func (r *Registry) apartBytes(ctx context.Context, rec *record) ([]byte, error) {
	if r.blobs == nil {
		return nil, fmt.Errorf("plugins: the bytes of module %s are kept apart from the store, and this registry has no Blobs", rec.Digest)
	}
	out, err := r.blobs.Get(ctx, rec.Digest)
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != rec.Size {
		return nil, fmt.Errorf("plugins: kept bytes of module %s are %d bytes, its record says %d: refusing them", rec.Digest, len(out), rec.Size)
	}
	if err := CheckDigest(rec.Digest, out); err != nil {
		return nil, fmt.Errorf("plugins: kept bytes of module %s do not match its digest, refusing them: %w", rec.Digest, err)
	}
	return out, nil
}

// List returns every module: named ones by first name and version, then unnamed ones by digest.
// After Close it returns nil. When the store cannot be read it lists what it last read.
func (r *Registry) List() []*Module {
	r.fresh()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil
	}
	out := make([]*Module, 0, len(r.mods))
	for _, rec := range r.mods {
		out = append(out, r.moduleLocked(rec, nil))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case (a.Name == "") != (b.Name == ""):
			return a.Name != ""
		case a.Name != b.Name:
			return a.Name < b.Name
		case a.Version != b.Version:
			return compareVersions(a.Version, b.Version) < 0
		}
		return a.Digest < b.Digest
	})
	return out
}

// Delete removes a module, its bytes and every name bound to it, whoever bound them, in one
// transaction; DeleteRef removes a single name. It refuses
// with ErrInUse when inUse (which may be nil) reports the digest in use. inUse runs while no
// other Add, Tag or Delete can commit, so nothing new is registered between its answer and the
// delete; it must not call Add, Tag or Delete.
func (r *Registry) Delete(ctx context.Context, digest string, inUse func(digest string) bool) error {
	if err := checkDigest(digest); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if err := r.fresh(); err != nil {
		return err
	}
	rec := r.mods[digest]
	if rec == nil {
		return fmt.Errorf("%w: module %s", ErrNotFound, digest)
	}
	if inUse != nil && inUse(digest) {
		return fmt.Errorf("%w: module %s is in use", ErrInUse, digest)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tags := r.tags[digest]
	before := r.st.Version()
	err := r.st.Update(ctx, func(w StoreWriter) error {
		w.RequireExists(chunkKey(modPrefix, digest, 0))
		delChunks(w, modPrefix, digest, 0, rec.recChunks)
		if !rec.Apart {
			delChunks(w, binPrefix, digest, 0, chunksOf(int(rec.Size)))
		}
		for _, b := range tags {
			w.Delete(nameKey(b.name, b.version))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			r.reloadWrite()
			return fmt.Errorf("%w: module %s", ErrNotFound, digest)
		}
		return fmt.Errorf("plugins: delete module %s: %w", digest, err)
	}
	r.committed(before, func(ix *index) { ix.drop(digest) })
	if rec.Apart && r.blobs != nil {
		r.blobs.Drop(digest) // this node's copy; other holders drop theirs as they apply it
	}
	return nil
}

// DeleteRef removes what ref names, and only that:
//
//   - "sha256:<hex>": the module, its bytes and every name bound to it, as Delete;
//   - "name@version": that one binding;
//   - "name": every version of that name.
//
// A module's bytes go with the last name bound to them; a module that keeps another name (another
// uploader's, say) stays, under that name. Each module that would go is first checked with inUse
// (which may be nil), as Delete does, and the whole removal is refused with ErrInUse when one is
// in use; a binding alone is removed whether its module is in use or not, since the module stays.
// Names and modules go in one transaction. DeleteRef returns the digests of the modules removed.
func (r *Registry) DeleteRef(ctx context.Context, ref string, inUse func(digest string) bool) ([]string, error) {
	p, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if p.Digest != "" {
		if err := r.Delete(ctx, p.Digest, inUse); err != nil {
			return nil, err
		}
		return []string{p.Digest}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	var gone []*binding
	for _, b := range r.names[p.Name] {
		if p.Version == "" || b.version == p.Version {
			gone = append(gone, b)
		}
	}
	if len(gone) == 0 {
		if bs := r.names[p.Name]; len(bs) > 0 {
			return nil, fmt.Errorf("%w: module %s (it has versions %s)", ErrNotFound, p, versionList(bs))
		}
		return nil, fmt.Errorf("%w: no module is named %q", ErrNotFound, p.Name)
	}
	unbound := map[string]int{} // digest -> its bindings that go
	for _, b := range gone {
		unbound[b.digest]++
	}
	var removed []string // the modules left with no name
	for d, n := range unbound {
		if n == len(r.tags[d]) {
			removed = append(removed, d)
		}
	}
	sort.Strings(removed)
	for _, d := range removed {
		if inUse != nil && inUse(d) {
			return nil, fmt.Errorf("%w: module %s is in use; removing %s would remove it", ErrInUse, d, ref)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	before := r.st.Version()
	err = r.st.Update(ctx, func(w StoreWriter) error {
		for _, b := range gone {
			w.RequireExists(nameKey(b.name, b.version))
			w.Delete(nameKey(b.name, b.version))
		}
		for _, d := range removed {
			rec := r.mods[d]
			w.RequireExists(chunkKey(modPrefix, d, 0))
			delChunks(w, modPrefix, d, 0, rec.recChunks)
			if !rec.Apart {
				delChunks(w, binPrefix, d, 0, chunksOf(int(rec.Size)))
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			r.reloadWrite()
			return nil, fmt.Errorf("%w: %s changed while it was being deleted; try again", ErrConflict, ref)
		}
		return nil, fmt.Errorf("plugins: delete %s: %w", ref, err)
	}
	apart := map[string]bool{}
	for _, d := range removed {
		apart[d] = r.mods[d].Apart
	}
	r.committed(before, func(ix *index) {
		for _, b := range gone {
			ix.unbind(b)
		}
		for _, d := range removed {
			ix.drop(d)
		}
	})
	for d, a := range apart {
		if a && r.blobs != nil {
			r.blobs.Drop(d)
		}
	}
	return removed, nil
}

// moduleLocked builds the caller's copy of a record, named by via when it is set. The caller
// holds mu.
func (r *Registry) moduleLocked(rec *record, via *binding) *Module {
	m := &Module{
		Digest:      rec.Digest,
		Size:        rec.Size,
		Name:        rec.Name,
		Version:     rec.Version,
		Description: rec.Description,
		Manifest:    cloneManifest(rec.Manifest),
		Info:        cloneInfo(rec.Info),
		Created:     rec.Created,
	}
	bound := false
	for _, b := range r.tags[rec.Digest] {
		m.Names = append(m.Names, b.String())
		bound = bound || b.name == rec.Name && b.version == rec.Version
	}
	switch {
	case via != nil:
		m.Name, m.Version = via.name, via.version
	case !bound && len(r.tags[rec.Digest]) > 0: // its first name was deleted
		first := r.tags[rec.Digest][0]
		m.Name, m.Version = first.name, first.version
	case !bound:
		m.Name, m.Version = "", ""
	}
	return m
}

func cloneManifest(m abi.Manifest) abi.Manifest {
	m.Functions = slices.Clone(m.Functions)
	m.Capabilities = slices.Clone(m.Capabilities)
	m.Resources = cloneResources(m.Resources)
	return m
}

func cloneResources(r abi.Resources) abi.Resources {
	r.Custom = maps.Clone(r.Custom)
	return r
}

func cloneSig(s abi.Signature) abi.Signature {
	return abi.Signature{Params: slices.Clone(s.Params), Results: slices.Clone(s.Results)}
}

func cloneInfo(mi abi.ModuleInfo) abi.ModuleInfo {
	if mi.Exports != nil {
		ex := make([]abi.Export, len(mi.Exports))
		for i, e := range mi.Exports {
			ex[i] = abi.Export{Name: e.Name, Sig: cloneSig(e.Sig)}
		}
		mi.Exports = ex
	}
	if mi.Imports != nil {
		im := make([]abi.Import, len(mi.Imports))
		for i, e := range mi.Imports {
			im[i] = abi.Import{Module: e.Module, Name: e.Name, Sig: cloneSig(e.Sig)}
		}
		mi.Imports = im
	}
	if mi.Manifest != nil {
		m := cloneManifest(*mi.Manifest)
		mi.Manifest = &m
	}
	return mi
}

func sameResources(a, b abi.Resources) bool {
	return a.CPU == b.CPU && a.MemoryBytes == b.MemoryBytes && a.GPU == b.GPU && maps.Equal(a.Custom, b.Custom)
}
