package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The well-behaved testdata guests, which must compile.
var goodGuests = []string{"good", "hostile", "sys", "nested", "hostcall", "bad/big_memory", "bad/bad_alloc"}

func TestTestdata_WasmCompiles(t *testing.T) {
	r := newTestRuntime(t, Config{})
	for _, name := range goodGuests {
		m := mustCompile(t, r, name)
		if m.Info.Manifest == nil || len(m.Info.Manifest.Functions) == 0 {
			t.Errorf("%s: no manifest functions", name)
		}
	}
}

// TestTestdata_WasmMatchesWat checks each committed .wasm is what its .wat assembles to, when
// wat2wasm is installed.
func TestTestdata_WasmMatchesWat(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm absent here (make toolchain installs wabt, so make test runs this check)")
	}
	wats, _ := filepath.Glob("testdata/*.wat")
	bad, _ := filepath.Glob("testdata/bad/*.wat")
	dir := t.TempDir()
	for i, wat := range append(append(wats, bad...), "trampoline.wat") {
		out := filepath.Join(dir, filepath.Base(wat)+string(rune('a'+i%26))+".wasm")
		if b, err := exec.Command("wat2wasm", wat, "-o", out).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %s: %v\n%s", wat, err, b)
		}
		want, _ := os.ReadFile(out)
		got, err := os.ReadFile(strings.TrimSuffix(wat, ".wat") + ".wasm")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: committed .wasm is stale; run go generate ./host/", wat)
		}
	}
}

func TestCompile_RefusesBadModules(t *testing.T) {
	r := newTestRuntime(t, Config{MaxModuleBytes: 1 << 20})
	good := testWasm(t, "good")
	cases := []struct {
		name string
		wasm []byte
		want []string // substrings of the error message
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), []string{"not a WebAssembly module"}},
		{"empty", nil, []string{"not a WebAssembly module"}},
		{"wrong version", []byte("\x00asm\x02\x00\x00\x00"), []string{"version", "not supported"}},
		{"truncated", good[:len(good)/2], []string{"invalid WebAssembly"}},
		{"over size", make([]byte, 1<<20+1), []string{"1048577 bytes", "1048576-byte limit"}},
		{"unknown import", testWasm(t, "bad/unknown_import"), []string{`env.foo`, `module "env" is not provided`}},
		{"unknown lumen import", testWasm(t, "bad/unknown_lumen_import"), []string{"lumen.teleport is not a host function of ABI v1"}},
		{"wrong import type", testWasm(t, "bad/wrong_import_type"), []string{"import lumen.log has type (i32) -> (i32), want (i32, i32, i32) -> (i32)"}},
		{"missing export", testWasm(t, "bad/missing_call"), []string{`missing export "lumen_call"`}},
		{"wrong export type", testWasm(t, "bad/wrong_alloc_type"), []string{`export "lumen_alloc" has type (i64) -> (i32), want (i32) -> (i32)`}},
		{"no marker", testWasm(t, "bad/no_marker"), []string{"not a Lumen module", `"lumen_abi_v1"`}},
		{"abi v2", testWasm(t, "bad/v2"), []string{"ABI v2", "ABI v1"}},
		{"undeclared capability", testWasm(t, "bad/undeclared_cap"), []string{"lumen.object_put", `capability "objects"`, "does not request"}},
		{"manifest not json", testWasm(t, "bad/bad_manifest"), []string{"manifest"}},
		{"manifest invalid", testWasm(t, "bad/invalid_manifest"), []string{"manifest", `unknown kind "daemon"`}},
		{"manifest out of bounds", testWasm(t, "bad/manifest_oob"), []string{"lumen_manifest returned", "out of bounds"}},
		{"manifest traps", testWasm(t, "bad/manifest_trap"), []string{"lumen_manifest failed", "unreachable"}},
		{"memory import", testWasm(t, "bad/memory_import"), []string{"imports its memory"}},
		{"table import", testWasm(t, "bad/table_import"), []string{"imports a table"}},
		{"growing table with no maximum", testWasm(t, "bad/table_no_max"), []string{"table 0 has no declared maximum", "table.grow"}},
		{"growing table over the default limit", testWasm(t, "bad/table_over_limit"), []string{"tables may hold 100000000 entries (762.9 MiB)", "limit of 4096 pages"}},
		{"wasi command", testWasm(t, "bad/command"), []string{"WASI command", "-buildmode=c-shared"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Compile(context.Background(), tc.wasm)
			ae := wantKind(t, err, abi.KindBadInput, "")
			for _, w := range tc.want {
				if !strings.Contains(ae.Message, w) {
					t.Errorf("message %q does not contain %q", ae.Message, w)
				}
			}
			t.Logf("%s: %s", tc.name, ae.Message)
		})
	}
	if n := r.Stats().Modules; n != 0 {
		t.Fatalf("%d refused modules kept", n)
	}
}

func TestCompile_SameBytesSameModule(t *testing.T) {
	r := newTestRuntime(t, Config{})
	wasm := testWasm(t, "good")
	var wg sync.WaitGroup
	mods := make([]*Module, 8)
	for i := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.Compile(context.Background(), wasm)
			if err != nil {
				t.Error(err)
			}
			mods[i] = m
		}()
	}
	wg.Wait()
	for _, m := range mods[1:] {
		if m != mods[0] {
			t.Fatal("concurrent compiles of the same bytes gave different modules")
		}
	}
	if mods[0].Digest != Digest(wasm) || !strings.HasPrefix(mods[0].Digest, "sha256:") {
		t.Fatalf("digest %q", mods[0].Digest)
	}
}

func TestInspect_ReportsExportsImportsMemoryManifest(t *testing.T) {
	r := newTestRuntime(t, Config{})
	info, err := r.Inspect(context.Background(), testWasm(t, "nested"))
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIVersion() != 1 || info.MemoryMinPages != 1 || info.MemoryMaxPages != 0 {
		t.Fatalf("info %+v", info)
	}
	if len(info.Imports) != 12 || info.Imports[0].Module != abi.HostModule {
		t.Fatalf("imports %+v", info.Imports)
	}
	caps := abi.RequiredCapabilities(info)
	if len(caps) != 3 {
		t.Fatalf("required capabilities %v", caps)
	}
	if info.Manifest.Index("parent") != 1 {
		t.Fatalf("manifest %+v", info.Manifest)
	}
	hc, err := r.Inspect(context.Background(), testWasm(t, "hostcall"))
	if err != nil {
		t.Fatal(err)
	}
	if hc.MemoryMinPages != 1 || hc.MemoryMaxPages != 1 {
		t.Fatalf("hostcall memory %d..%d", hc.MemoryMinPages, hc.MemoryMaxPages)
	}
}

func TestCompile_BigInitialMemoryNeedsAHigherLimit(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "bad/big_memory")
	if m.Info.MemoryMinPages != 5000 {
		t.Fatalf("min pages %d", m.Info.MemoryMinPages)
	}
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "f"})
	ae := wantKind(t, err, abi.KindLimit, abi.LimitMemory)
	if !strings.Contains(ae.Message, "5000") || !strings.Contains(ae.Message, "4096") {
		t.Fatalf("message %q", ae.Message)
	}
	callOK(t, r, CallRequest{Module: m, Function: "f", Limits: Limits{MemoryPages: 5000}})
}

func TestCall_AllocOutOfBoundsIsATrap(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "bad/bad_alloc")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "f", Input: []byte("x")})
	ae := wantKind(t, err, abi.KindTrap, "")
	if !strings.Contains(ae.Message, "lumen_alloc(1) returned 0xfffffff0") {
		t.Fatalf("message %q", ae.Message)
	}
	callOK(t, r, CallRequest{Module: m, Function: "f"}) // no input: lumen_alloc is not called
}

// TestCompile_DiskCacheSurvivesRestart compiles a module, restarts the Runtime on the same
// DataDir and checks the second compile is served from wazero's cache.
func TestCompile_DiskCacheSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	wasm := bigWasm(t)
	compileOnce := func() time.Duration {
		r, err := New(context.Background(), Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(context.Background())
		start := time.Now()
		if _, err := r.Compile(context.Background(), wasm); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	cold := compileOnce()
	entries, err := os.ReadDir(filepath.Join(dir, "compile-cache"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("compile cache is empty: %v", err)
	}
	warm := compileOnce()
	t.Logf("compile of a %d-byte module: cold %v, from the disk cache %v", len(wasm), cold, warm)
	if warm >= cold {
		t.Errorf("cached compile (%v) not faster than cold (%v)", warm, cold)
	}
}

// bigWasm returns the biggest guest at hand: the Go guest when it builds, else hostile.wasm.
func bigWasm(t testing.TB) []byte {
	if b, err := goGuest(); err == nil {
		return b
	} else if !errors.Is(err, errNoGo) {
		t.Fatal(err)
	}
	return testWasm(t, "hostile")
}

// A caller whose context ends while the module compiles does not fail the compile for the
// callers waiting on the same module (the compile is shared and cached).
func TestCompile_CancelledCallerDoesNotFailOthers(t *testing.T) {
	r := newTestRuntime(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, err := r.Compile(ctx, testWasm(t, "good"))
	if err != nil {
		t.Fatalf("compile under a cancelled context: %v", err)
	}
	again, err := r.Compile(context.Background(), testWasm(t, "good"))
	if err != nil || again != m {
		t.Fatalf("the second compile did not reuse the first: %v", err)
	}
}

// cachedDigests lists the compile cache, most recently used first.
func cachedDigests(r *Runtime) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for e := r.compiled.head; e != nil; e = e.next {
		out = append(out, e.digest)
	}
	return out
}

// The compile cache holds at most Config.MaxCompiledBytes of modules and drops the least
// recently compiled or called first, with its idle instances; a Module a caller still holds
// keeps working.
func TestCompile_CacheEvictsLeastRecentlyUsed(t *testing.T) {
	a, b, c := testWasm(t, "good"), testWasm(t, "hostile"), testWasm(t, "sys")
	limit := int64(len(a) + len(b) + len(c) - 1) // any two fit, not three
	r := newTestRuntime(t, Config{MaxCompiledBytes: limit})
	ctx := context.Background()
	ma := mustCompile(t, r, "good")
	mb := mustCompile(t, r, "hostile")
	callOK(t, r, CallRequest{Module: mb, Function: "ok", Job: "j"}) // leaves an idle instance of b
	callOK(t, r, CallRequest{Module: ma, Function: "add", Input: []byte(`{"a":1,"b":2}`)})
	if got, want := cachedDigests(r), []string{Digest(a), Digest(b)}; !slices.Equal(got, want) {
		t.Fatalf("cache after calling a: %v, want a then b", got)
	}
	if n := r.Stats().IdleInstances; n != 2 {
		t.Fatalf("%d idle instances, want 2", n)
	}
	mc := mustCompile(t, r, "sys")
	if got, want := cachedDigests(r), []string{Digest(c), Digest(a)}; !slices.Equal(got, want) {
		t.Fatalf("cache after compiling c: %v, want c then a (b, least recently used, dropped)", got)
	}
	if n := r.Stats().IdleInstances; n != 1 {
		t.Fatalf("%d idle instances after dropping b, want 1: b's must go with it", n)
	}
	if res := callOK(t, r, CallRequest{Module: mb, Function: "ok", Job: "j"}); string(res.Output) != "ok" {
		t.Fatalf("a dropped module a caller holds answered %q", res.Output)
	}
	if again, _ := r.Compile(ctx, a); again != ma {
		t.Fatal("a, cached, was compiled again")
	}
	mb2, err := r.Compile(ctx, b)
	if err != nil || mb2 == mb {
		t.Fatalf("b after it was dropped: %v (same Module: %v); want a new compile", err, mb2 == mb)
	}
	// Now b, a, c by recency: c goes.
	if got, want := cachedDigests(r), []string{Digest(b), Digest(a)}; !slices.Equal(got, want) {
		t.Fatalf("cache after compiling b again: %v, want b then a", got)
	}
	_ = mc
	r.mu.Lock()
	cached := r.cached
	r.mu.Unlock()
	if want := int64(len(a) + len(b)); cached != want {
		t.Fatalf("cache counts %d bytes, want %d", cached, want)
	}
	if _, err := New(ctx, Config{MaxCompiledBytes: -1}); err == nil {
		t.Fatal("a negative MaxCompiledBytes was accepted")
	}
}

// A module deleted (or refused by a registry after it compiled) is dropped from the cache with
// Forget, and its compiled code is released once nothing holds it.
func TestCompile_ForgetDropsAModuleAndReleasesItsCode(t *testing.T) {
	r := newTestRuntime(t, Config{})
	wasm := testWasm(t, "good")
	m := mustCompile(t, r, "good")
	callOK(t, r, CallRequest{Module: m, Function: "add", Input: []byte(`{"a":1,"b":2}`)})
	if s := r.Stats(); s.Modules != 1 || s.IdleInstances != 1 {
		t.Fatalf("before Forget: %+v", s)
	}
	r.Forget(context.Background(), Digest(wasm))
	r.Forget(context.Background(), Digest(wasm)) // again: nothing to do
	if s := r.Stats(); s.Modules != 0 || s.IdleInstances != 0 {
		t.Fatalf("after Forget: %+v; want no module, no idle instance", s)
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "add", Input: []byte(`{"a":1,"b":2}`)}); string(res.Output) != "3" {
		t.Fatalf("a forgotten module its caller holds answered %q", res.Output)
	}
	if n := r.Stats().IdleInstances; n != 0 {
		t.Fatalf("%d idle instances of a module out of the cache; want none kept", n)
	}
	m = nil
	deadline := time.Now().Add(10 * time.Second)
	for r.codeFreed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the compiled code of a forgotten module nothing holds was not released")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if m2 := mustCompile(t, r, "good"); m2 == nil || r.Stats().Modules != 1 {
		t.Fatal("compiling the bytes again")
	}
}

// Calls keep succeeding while the modules they run are dropped from a cache that holds one
// module and compiled again, from several goroutines (run with -race).
func TestCompile_CacheChurnUnderConcurrentCalls(t *testing.T) {
	r := newTestRuntime(t, Config{MaxCompiledBytes: 1})
	names := []string{"good", "hostile"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := names[(g+i)%2]
				m, err := r.Compile(context.Background(), testWasm(t, name))
				if err != nil {
					t.Error(err)
					return
				}
				req := CallRequest{Module: m, Function: "ok", Job: fmt.Sprint(g)}
				if name == "good" {
					req = CallRequest{Module: m, Function: "add", Input: []byte(`{"a":1,"b":2}`), Job: fmt.Sprint(g)}
				}
				if _, err := r.Call(context.Background(), req); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(cachedDigests(r)); n != 1 {
		t.Fatalf("%d modules cached, want 1", n)
	}
}
