package host

import (
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Defaults applied by New to zero fields of Config and Config.Defaults.
const (
	DefaultMemoryPages    = 4096 // 256 MiB
	DefaultTimeout        = 30 * time.Second
	DefaultMaxOutputBytes = 1 << 20  // stdout + stderr + log bytes of one call
	DefaultMaxResultBytes = 64 << 20 // the output of one call
	DefaultMaxModuleBytes = 64 << 20
	DefaultMaxIdle        = 64
	// DefaultMaxCompiledBytes caps the compile cache: 256 MiB of modules, some 140 Go guests of
	// 1.8 MB or four modules at the 64 MiB upload cap.
	DefaultMaxCompiledBytes = 256 << 20

	// MaxMemoryPages is the most pages a wasm32 memory can have (4 GiB).
	MaxMemoryPages = 65536

	// maxIdleMemory is the most memory (linear memory and the most its tables may hold) an
	// instance may have and still be pooled.
	maxIdleMemory = 64 << 20

	// manifestTimeout bounds the instantiation and lumen_manifest call that Compile makes.
	manifestTimeout = 10 * time.Second
)

// Config configures a Runtime. It is a value: New validates it once and keeps a copy.
type Config struct {
	// DataDir holds wazero's compilation cache, in DataDir/compile-cache, so that a restarted
	// Runtime does not compile a module again. Empty: the cache lives in memory only.
	DataDir string
	// MaxConcurrentCalls caps the guest calls running at once in this Runtime (default
	// 2*GOMAXPROCS). A call waits for a slot while its context allows. A call blocked in a host
	// function that waits on the engine (object_get, wait) gives its slot back meanwhile.
	MaxConcurrentCalls int
	// Defaults fill the zero fields of every call's Limits. Its own zero fields take the
	// package defaults (DefaultMemoryPages, DefaultTimeout, ...).
	Defaults Limits
	// MaxIdleInstances caps the warm instances kept across all pools (default 64); the least
	// recently used is closed first. Negative: keep none. An instance whose memory grew past
	// 64 MiB, counting what its tables may hold, is not kept: its pages would stay resident
	// while it waits.
	MaxIdleInstances int
	// MaxModuleBytes refuses bigger modules before compiling them (default 64 MiB): compiling
	// cannot be cancelled, so its cost is capped by size.
	MaxModuleBytes int64
	// MaxCompiledBytes caps the compile cache, counted in the bytes of the modules it holds
	// (default DefaultMaxCompiledBytes; compiled code is a few times a module's size). Past it
	// the least recently compiled or called module is dropped from the cache, with its idle
	// instances; Modules still held elsewhere (a caller, a running call, an Instance) keep
	// working, and the compiled code is released once nothing holds it. The module most recently
	// compiled always stays, however big.
	MaxCompiledBytes int64
	// Services is the engine behind the object, task and actor host functions. Nil: those
	// functions return abi.ErrUnavailable.
	Services Services
	// Tensors is the engine behind the tensor_* and optim_* host functions. Nil: those
	// functions return abi.ErrUnavailable.
	Tensors Tensors
	// Models is the engine behind model_chat. Nil: model_chat returns abi.ErrUnavailable.
	Models Models
}

// Limits bound one call. A zero field takes the Runtime's default.
type Limits struct {
	// MemoryPages caps the guest's memory, in 64 KiB pages (default 4096 = 256 MiB, at most
	// 65536): its linear memory and its tables together. The most a module's tables may hold
	// (8 bytes an entry; a table the code never grows counts at its declared size, one it grows
	// at its declared maximum) is reserved out of it, and linear memory gets the rest. A module
	// whose tables and initial memory do not fit fails the call at once, and a guest that grows
	// its memory past the rest sees memory.grow fail; either way the call fails with KindLimit,
	// Limit abi.LimitMemory.
	MemoryPages uint32
	// Timeout is the call's wall-clock limit (default 30s), counted from when the call has a
	// slot. A call past it is stopped with KindLimit, Limit abi.LimitDeadline.
	Timeout time.Duration
	// MaxOutputBytes caps the bytes a call writes to stdout, stderr and the log together (default
	// 1 MiB). The call is stopped the moment it writes past it (KindLimit, abi.LimitOutput).
	MaxOutputBytes int64
	// MaxResultBytes caps the call's output and any single pending result the guest reads
	// (default 64 MiB). A bigger output fails the call with KindLimit, abi.LimitOutput.
	MaxResultBytes int64
}

// or returns l with its zero fields taken from d.
func (l Limits) or(d Limits) Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = d.MemoryPages
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = d.MaxOutputBytes
	}
	if l.MaxResultBytes == 0 {
		l.MaxResultBytes = d.MaxResultBytes
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.MemoryPages > MaxMemoryPages:
		return fmt.Errorf("memory limit of %d pages exceeds the wasm32 maximum of %d", l.MemoryPages, MaxMemoryPages)
	case l.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", l.Timeout)
	case l.MaxOutputBytes < 0:
		return fmt.Errorf("output limit %d is negative", l.MaxOutputBytes)
	case l.MaxResultBytes < 0:
		return fmt.Errorf("result limit %d is negative", l.MaxResultBytes)
	}
	return nil
}

// Grants are what a job allows its calls beyond the base capability. A call gets the
// capabilities both its module's manifest requests and its job grants.
type Grants struct {
	// Capabilities granted to the job. abi.CapBase is always granted.
	Capabilities []abi.Capability
	// Dirs are mounted into the guest when abi.CapFS is effective; the first is preopened as
	// WASI file descriptor 3.
	Dirs []DirGrant
	// Env is the guest's environment when abi.CapEnv is effective.
	Env map[string]string
}

// DirGrant mounts a host directory into the guest. A guest cannot reach outside HostPath, through
// ".." or symbolic links, whether the grant is writable or not.
type DirGrant struct {
	HostPath  string // a directory on the host
	GuestPath string // where the guest sees it: an absolute path such as "/data"
	Writable  bool   // read-only unless set
}

// capSet is a set of capabilities, one bit each.
type capSet uint16

const (
	bitBase capSet = 1 << iota
	bitObjects
	bitTasks
	bitActors
	bitClock
	bitRandom
	bitFS
	bitEnv
	bitTensors
	bitModel
	bitData
)

var capBits = map[abi.Capability]capSet{
	abi.CapBase:    bitBase,
	abi.CapObjects: bitObjects,
	abi.CapTasks:   bitTasks,
	abi.CapActors:  bitActors,
	abi.CapClock:   bitClock,
	abi.CapRandom:  bitRandom,
	abi.CapFS:      bitFS,
	abi.CapEnv:     bitEnv,
	abi.CapTensors: bitTensors,
	abi.CapModel:   bitModel,
	abi.CapData:    bitData,
}

// capKeys holds one string per capSet so that pool keys need no allocation.
var capKeys = func() (k [2 * bitData]string) {
	for i := range k {
		k[i] = string([]byte{byte(i), byte(i >> 8)})
	}
	return k
}()

func (s capSet) has(c capSet) bool { return s&c != 0 }

// names lists the capabilities in s in abi.Capabilities order.
func (s capSet) names() []string {
	var out []string
	for _, c := range abi.Capabilities {
		if s.has(capBits[c]) {
			out = append(out, string(c))
		}
	}
	return out
}

func capsOf(cs []abi.Capability) (capSet, error) {
	var s capSet
	for _, c := range cs {
		b, ok := capBits[c]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", c)
		}
		s |= b
	}
	return s, nil
}

// grantsKey encodes what of g shapes an instance with capabilities caps: the capabilities, and
// the directories and environment when they are effective. Instances are pooled by it.
func grantsKey(caps capSet, g *Grants) string {
	if !caps.has(bitFS) && !caps.has(bitEnv) {
		return capKeys[caps]
	}
	var b strings.Builder
	b.WriteString(capKeys[caps])
	if caps.has(bitFS) {
		for _, d := range g.Dirs {
			fmt.Fprintf(&b, "d%d:%s%d:%s%t", len(d.HostPath), d.HostPath, len(d.GuestPath), d.GuestPath, d.Writable)
		}
	}
	if caps.has(bitEnv) {
		for _, k := range sortedEnv(g.Env) {
			v := g.Env[k]
			fmt.Fprintf(&b, "e%d:%s%d:%s", len(k), k, len(v), v)
		}
	}
	return b.String()
}

func sortedEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validateGrants checks the parts of g that caps makes effective.
func validateGrants(caps capSet, g *Grants) error {
	if caps.has(bitFS) {
		seen := map[string]bool{}
		for i, d := range g.Dirs {
			if d.HostPath == "" {
				return fmt.Errorf("dirs[%d]: empty host path", i)
			}
			if !path.IsAbs(d.GuestPath) || path.Clean(d.GuestPath) != d.GuestPath {
				return fmt.Errorf("dirs[%d]: guest path %q is not a clean absolute path", i, d.GuestPath)
			}
			if seen[d.GuestPath] {
				return fmt.Errorf("dirs[%d]: guest path %q is mounted twice", i, d.GuestPath)
			}
			seen[d.GuestPath] = true
		}
	}
	if caps.has(bitEnv) {
		for k, v := range g.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
				return fmt.Errorf("env: %q=%q is not a valid variable", k, v)
			}
		}
	}
	return nil
}

// withDefaults validates cfg and fills its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxConcurrentCalls < 0 {
		return cfg, fmt.Errorf("host: MaxConcurrentCalls %d is negative", cfg.MaxConcurrentCalls)
	}
	if cfg.MaxConcurrentCalls == 0 {
		cfg.MaxConcurrentCalls = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.MaxIdleInstances == 0 {
		cfg.MaxIdleInstances = DefaultMaxIdle
	}
	if cfg.MaxIdleInstances < 0 {
		cfg.MaxIdleInstances = 0
	}
	if cfg.MaxModuleBytes < 0 {
		return cfg, fmt.Errorf("host: MaxModuleBytes %d is negative", cfg.MaxModuleBytes)
	}
	if cfg.MaxModuleBytes == 0 {
		cfg.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if cfg.MaxCompiledBytes < 0 {
		return cfg, fmt.Errorf("host: MaxCompiledBytes %d is negative", cfg.MaxCompiledBytes)
	}
	if cfg.MaxCompiledBytes == 0 {
		cfg.MaxCompiledBytes = DefaultMaxCompiledBytes
	}
	if err := cfg.Defaults.validate(); err != nil {
		return cfg, fmt.Errorf("host: Defaults: %w", err)
	}
	cfg.Defaults = cfg.Defaults.or(Limits{
		MemoryPages:    DefaultMemoryPages,
		Timeout:        DefaultTimeout,
		MaxOutputBytes: DefaultMaxOutputBytes,
		MaxResultBytes: DefaultMaxResultBytes,
	})
	return cfg, nil
}
