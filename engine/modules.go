package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Modules is the node's modules: uploads and deletes through the registry (replicated in a
// cluster), and the functions tasks, actors and workflow steps resolve to, compiled once per
// digest and cached until the registry changes.
type Modules struct{ e *Engine }

// Modules is the node's module registry and the compiled modules behind it.
func (e *Engine) Modules() Modules { return Modules{e} }

// Registry returns the module registry.
func (md Modules) Registry() *plugins.Registry { return md.e.reg }

// Add checks, compiles and registers a module.
func (md Modules) Add(ctx context.Context, wasm []byte, opts plugins.AddOptions) (*plugins.Module, error) {
	m, err := md.e.reg.Add(ctx, wasm, opts)
	if err == nil {
		md.registryChanged() // a name may now resolve to this module
	} else if digest := host.Digest(wasm); !md.registered(digest) {
		md.e.rt.Forget(ctx, digest) // refused after it compiled: not kept in the compile cache
	}
	return m, err
}

// registered reports whether the registry holds the module of digest.
func (md Modules) registered(digest string) bool {
	_, err := md.e.reg.Resolve(digest)
	return err == nil
}

// registryChanged drops the resolved functions, which a change of the registry may alter.
func (md Modules) registryChanged() {
	md.e.mu.Lock()
	clear(md.e.fns)
	md.e.mu.Unlock()
}

// Delete removes what ref names (plugins.Registry.DeleteRef): a name@version, every version of
// a name, or a digest with all its names. A module goes with its last name, and only when
// nothing uses it: no live actor runs it, no running workflow or compiled workflow has a step in
// it; one in use is refused with plugins.ErrInUse, naming what uses it.
func (md Modules) Delete(ctx context.Context, ref string) error {
	var user string
	inUse := func(digest string) bool {
		user = md.moduleUser(digest)
		return user != ""
	}
	removed, err := md.e.reg.DeleteRef(ctx, ref, inUse)
	if err != nil {
		if user != "" {
			return fmt.Errorf("%w (%s)", err, user)
		}
		return err
	}
	md.e.mu.Lock()
	for _, d := range removed {
		delete(md.e.compiled, d)
	}
	clear(md.e.fns)
	md.e.mu.Unlock()
	for _, d := range removed {
		md.e.rt.Forget(ctx, d)
	}
	return nil
}

// moduleUser names something that uses the module of digest, or returns "".
func (md Modules) moduleUser(digest string) string {
	if user := md.e.actors.InUse(digest); user != "" {
		return user
	}
	return md.e.workflows.InUse(digest)
}

// module returns the compiled module of a digest, compiling it from the registry's bytes (from
// the on-disk cache after a restart) after checking the bytes still have that digest.
func (md Modules) module(ctx context.Context, digest string) (*host.Module, error) {
	md.e.mu.Lock()
	hm := md.e.compiled[digest]
	md.e.mu.Unlock()
	if hm != nil {
		return hm, nil
	}
	wasm, err := md.e.reg.BytesContext(ctx, digest) // may fetch them from another node
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("engine: module %s: stored bytes hash to %s; refusing to compile them", digest, got)
	}
	hm, err = md.e.rt.Compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("engine: compile module %s: %w", digest, err)
	}
	md.e.mu.Lock()
	md.e.compiled[digest] = hm
	md.e.mu.Unlock()
	return hm, nil
}

// function resolves a module reference and checks it has function name of the given kind.
// Resolutions are cached until the registry next changes, as resolving copies the module's
// description: half of a call's allocations before the cache.
func (md Modules) function(ctx context.Context, ref, name string, kind abi.FuncKind) (fnRef, error) {
	key := fnKey{ref, name, kind}
	v := md.e.regVersion()
	md.e.mu.Lock()
	if md.e.fnsVersion != v { // the registry changed, maybe on another node
		clear(md.e.fns)
		md.e.fnsVersion = v
	}
	f, ok := md.e.fns[key]
	md.e.mu.Unlock()
	if ok {
		return f, nil
	}
	f, err := md.resolveFunction(ctx, ref, name, kind)
	if err != nil {
		return fnRef{}, err
	}
	md.e.mu.Lock()
	if md.e.fnsVersion == v {
		md.e.fns[key] = f
	}
	md.e.mu.Unlock()
	return f, nil
}

type fnKey struct {
	ref, name string
	kind      abi.FuncKind
}

func (md Modules) resolveFunction(ctx context.Context, ref, name string, kind abi.FuncKind) (fnRef, error) {
	m, err := md.e.reg.Resolve(ref)
	if err != nil {
		return fnRef{}, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	i := m.Manifest.Index(name)
	if i < 0 {
		return fnRef{}, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("module %s has no function %q", m.Ref(), name)}
	}
	if got := m.Manifest.Functions[i].Kind; got != kind {
		return fnRef{}, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("%s of module %s is a %s, not a %s", name, m.Ref(), got, kind)}
	}
	hm, err := md.module(ctx, m.Digest)
	if err != nil {
		return fnRef{}, err
	}
	return fnRef{Module: hm, Hints: m.Manifest.Resources}, nil
}
