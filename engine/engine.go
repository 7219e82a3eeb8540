// Package engine is Lumen's control plane. On one node it wires the module registry to the
// sandboxed host and runs calls of registered modules; it owns the data directory's layout.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
)

// Config configures an Engine. Zero fields take the defaults of the host and the registry.
type Config struct {
	// DataDir holds the registry, the compilation cache and the API tokens.
	DataDir string
	// MaxModuleBytes caps an uploaded module (default 64 MiB).
	MaxModuleBytes int64
	// Limits are the default limits of a call.
	Limits host.Limits
	// MaxConcurrentCalls caps the guest calls running at once.
	MaxConcurrentCalls int
}

// Engine is one node's control plane. It is safe for concurrent use.
type Engine struct {
	cfg Config
	rt  *host.Runtime
	reg *plugins.Registry

	mu       sync.Mutex
	compiled map[string]*host.Module // by digest
}

// Open creates the data directory if needed, opens the registry and starts the host runtime.
// Close releases them.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("engine: a data directory is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("engine: create data directory: %w", err)
	}
	rt, err := host.New(ctx, host.Config{
		DataDir:            cfg.DataDir,
		MaxConcurrentCalls: cfg.MaxConcurrentCalls,
		Defaults:           cfg.Limits,
		MaxModuleBytes:     cfg.MaxModuleBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: start host: %w", err)
	}
	reg, err := plugins.Open(ctx, plugins.Config{
		Dir:            filepath.Join(cfg.DataDir, "registry"),
		MaxModuleBytes: cfg.MaxModuleBytes,
		Inspector:      rt,
	})
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("engine: open registry: %w", err)
	}
	return &Engine{cfg: cfg, rt: rt, reg: reg, compiled: map[string]*host.Module{}}, nil
}

// Close stops the runtime and closes the registry.
func (e *Engine) Close(ctx context.Context) error {
	return errors.Join(e.reg.Close(), e.rt.Close(ctx))
}

// DataDir returns the engine's data directory.
func (e *Engine) DataDir() string { return e.cfg.DataDir }

// Registry returns the module registry.
func (e *Engine) Registry() *plugins.Registry { return e.reg }

// AddModule checks, compiles and registers a module.
func (e *Engine) AddModule(ctx context.Context, wasm []byte, opts plugins.AddOptions) (*plugins.Module, error) {
	return e.reg.Add(ctx, wasm, opts)
}

// DeleteModule removes a module the engine holds no instance of.
func (e *Engine) DeleteModule(ctx context.Context, ref string) error {
	m, err := e.reg.Resolve(ref)
	if err != nil {
		return err
	}
	if err := e.reg.Delete(ctx, m.Digest, func(string) bool { return false }); err != nil {
		return err
	}
	e.mu.Lock()
	delete(e.compiled, m.Digest)
	e.mu.Unlock()
	return nil
}

// CallRequest is one synchronous call of a registered module's function.
type CallRequest struct {
	Module   string // digest, name@version or name
	Function string
	Input    []byte
	Job      string // instances are pooled per job; empty means "default"
	Grants   host.Grants
	Limits   host.Limits
}

// Call runs one function of a registered module and returns its result. The result's log is
// returned with a failed call too, alongside the error.
func (e *Engine) Call(ctx context.Context, req CallRequest) (*host.Result, error) {
	m, err := e.reg.Resolve(req.Module)
	if err != nil {
		return nil, err
	}
	hm, err := e.module(ctx, m.Digest)
	if err != nil {
		return nil, err
	}
	job := req.Job
	if job == "" {
		job = "default"
	}
	return e.rt.Call(ctx, host.CallRequest{
		Module: hm, Function: req.Function, Input: req.Input,
		Job: job, Grants: req.Grants, Limits: req.Limits,
	})
}

// module returns the compiled module of a digest, compiling it from the registry's bytes (from
// the on-disk cache after a restart) after checking the bytes still have that digest.
func (e *Engine) module(ctx context.Context, digest string) (*host.Module, error) {
	e.mu.Lock()
	hm := e.compiled[digest]
	e.mu.Unlock()
	if hm != nil {
		return hm, nil
	}
	wasm, err := e.reg.Bytes(digest)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("engine: module %s: stored bytes hash to %s; refusing to compile them", digest, got)
	}
	hm, err = e.rt.Compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("engine: compile module %s: %w", digest, err)
	}
	e.mu.Lock()
	e.compiled[digest] = hm
	e.mu.Unlock()
	return hm, nil
}
