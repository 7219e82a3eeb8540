package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lumenflow/lumen/sdk/abi"
)

// guest describes a small ABI v1 module that the tests build as WebAssembly binary (the
// layout of testdata/guest.wat): the four required exports, a bump allocator, the manifest in a
// data segment, lumen_call echoing its input, and the given lumen imports. note, when set, goes
// into a custom section, so guests that differ only by note have different digests.
type guest struct {
	imports  []string // names of lumen host functions
	manifest abi.Manifest
	note     string
}

// taskGuest is a guest with one task function and no imports.
func taskGuest(note string, imports ...string) guest {
	return guest{
		imports:  imports,
		manifest: abi.Manifest{ABI: abi.Version, Functions: []abi.Function{{Name: "echo", Kind: abi.KindTask}}},
		note:     note,
	}
}

const manifestAddr = 1024

// wasm encodes the guest.
func (g guest) wasm() []byte {
	man, err := json.Marshal(g.manifest)
	if err != nil {
		panic(err)
	}
	var types [][]byte
	typeIdx := func(s abi.Signature) uint32 {
		t := []byte{0x60}
		t = appendVec(t, len(s.Params), func(b []byte, i int) []byte { return append(b, byte(s.Params[i])) })
		t = appendVec(t, len(s.Results), func(b []byte, i int) []byte { return append(b, byte(s.Results[i])) })
		for i, x := range types {
			if string(x) == string(t) {
				return uint32(i)
			}
		}
		types = append(types, t)
		return uint32(len(types) - 1)
	}
	var imports, funcs, exports, code []byte
	for _, name := range g.imports {
		imports = appendName(appendName(imports, abi.HostModule), name)
		imports = append(imports, 0x00)
		imports = appendU(imports, uint64(typeIdx(abi.HostFuncs[name].Sig)))
	}
	nImports := len(g.imports)
	bodies := []struct {
		name string
		body []byte // locals and instructions, without the final end
	}{
		{abi.ExportVersionMarker, []byte{0x00}},
		// (local $p i32) global.get 0 local.set 1 global.get 0 local.get 0 i32.add global.set 0 local.get 1
		{abi.ExportAlloc, []byte{0x01, 0x01, 0x7f, 0x23, 0x00, 0x21, 0x01, 0x23, 0x00, 0x20, 0x00, 0x6a, 0x24, 0x00, 0x20, 0x01}},
		// i64.const Pack(manifestAddr, len(manifest))
		{abi.ExportManifest, appendS(append([]byte{0x00}, 0x42), int64(abi.Pack(manifestAddr, uint32(len(man)))))},
		// local.get 1 i64.extend_i32_u i64.const 32 i64.shl local.get 2 i64.extend_i32_u i64.or
		{abi.ExportCall, []byte{0x00, 0x20, 0x01, 0xad, 0x42, 0x20, 0x86, 0x20, 0x02, 0xad, 0x84}},
	}
	for i, b := range bodies {
		funcs = appendU(funcs, uint64(typeIdx(abi.RequiredExports[b.name])))
		exports = appendName(exports, b.name)
		exports = append(exports, 0x00)
		exports = appendU(exports, uint64(nImports+i))
		body := append(b.body, 0x0b)
		code = appendU(code, uint64(len(body)))
		code = append(code, body...)
	}
	exports = appendName(exports, "memory")
	exports = append(exports, 0x02, 0x00)

	out := append([]byte(nil), wasmHeader...)
	out = appendSection(out, 1, len(types), func(b []byte, i int) []byte { return append(b, types[i]...) })
	if nImports > 0 {
		out = appendSection(out, 2, nImports, func(b []byte, _ int) []byte { return append(b, imports...) }, true)
	}
	out = appendSection(out, 3, len(bodies), func(b []byte, _ int) []byte { return append(b, funcs...) }, true)
	out = appendSection(out, 5, 1, func(b []byte, _ int) []byte { return append(b, 0x00, 0x01) })
	out = appendSection(out, 6, 1, func(b []byte, _ int) []byte {
		return append(appendS(append(b, 0x7f, 0x01, 0x41), 4096), 0x0b)
	})
	out = appendSection(out, 7, len(bodies)+1, func(b []byte, _ int) []byte { return append(b, exports...) }, true)
	out = appendSection(out, 10, len(bodies), func(b []byte, _ int) []byte { return append(b, code...) }, true)
	out = appendSection(out, 11, 1, func(b []byte, _ int) []byte {
		b = append(appendS(append(b, 0x00, 0x41), manifestAddr), 0x0b)
		return append(appendU(b, uint64(len(man))), man...)
	})
	if g.note != "" {
		var c []byte
		c = appendName(c, "lumen.test.note")
		c = append(c, g.note...)
		out = append(appendU(append(out, 0x00), uint64(len(c))), c...)
	}
	return out
}

// sizedGuest returns taskGuest("") padded by a custom section to exactly size bytes, built in
// one allocation. Inspecting it finds taskGuest("").info().
func sizedGuest(size int) []byte {
	const name = "lumen.test.pad"
	out := make([]byte, 0, size)
	out = append(out, taskGuest("").wasm()...)
	// id, 4-byte size, name, padding
	pad := size - len(out) - 1 - 4 - 1 - len(name)
	out = append(out, 0x00)
	n := 1 + len(name) + pad
	out = append(out, byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)|0x80, byte(n>>21))
	out = appendName(out, name)
	out = out[:size]
	if pad < 0 || n >= 1<<28 {
		panic(fmt.Sprintf("sizedGuest(%d): out of range", size))
	}
	return out
}

// info is what inspecting the guest finds.
func (g guest) info() *abi.ModuleInfo {
	mi := &abi.ModuleInfo{MemoryMinPages: 1}
	for _, name := range g.imports {
		mi.Imports = append(mi.Imports, abi.Import{Module: abi.HostModule, Name: name, Sig: abi.HostFuncs[name].Sig})
	}
	for _, name := range []string{abi.ExportVersionMarker, abi.ExportAlloc, abi.ExportManifest, abi.ExportCall} {
		mi.Exports = append(mi.Exports, abi.Export{Name: name, Sig: abi.RequiredExports[name]})
	}
	m := cloneManifest(g.manifest)
	mi.Manifest = &m
	return mi
}

// appendSection appends a section whose content is a vector of n items; with whole, fn is called
// once and appends all n items.
func appendSection(out []byte, id byte, n int, fn func([]byte, int) []byte, whole ...bool) []byte {
	var content []byte
	if len(whole) > 0 && whole[0] {
		content = fn(appendU(nil, uint64(n)), 0)
	} else {
		content = appendVec(nil, n, fn)
	}
	return append(appendU(append(out, id), uint64(len(content))), content...)
}

func appendVec(b []byte, n int, fn func([]byte, int) []byte) []byte {
	b = appendU(b, uint64(n))
	for i := 0; i < n; i++ {
		b = fn(b, i)
	}
	return b
}

func appendName(b []byte, s string) []byte { return append(appendU(b, uint64(len(s))), s...) }

func appendU(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) } // unsigned LEB128

// appendS appends v as signed LEB128.
func appendS(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// fakeInspector stands in for host.Runtime: it knows the guests the test built and returns what
// inspecting them finds; any other bytes fail as a compiler would fail them. The registry's logic
// is what is under test, not the compiler.
type fakeInspector struct {
	mu    sync.Mutex
	known map[string]*abi.ModuleInfo // by digest
	errs  map[string]error
	calls atomic.Int64
	hook  func(ctx context.Context) // runs inside Inspect, when set
}

func newFakeInspector() *fakeInspector {
	return &fakeInspector{known: map[string]*abi.ModuleInfo{}, errs: map[string]error{}}
}

// add builds g, teaches the inspector its info and returns its bytes.
func (f *fakeInspector) add(g guest) []byte {
	b := g.wasm()
	f.set(b, g.info())
	return b
}

func (f *fakeInspector) set(b []byte, mi *abi.ModuleInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known[digestOf(b)] = mi
}

func (f *fakeInspector) fail(b []byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[digestOf(b)] = err
}

func (f *fakeInspector) Inspect(ctx context.Context, wasm []byte) (*abi.ModuleInfo, error) {
	f.calls.Add(1)
	if f.hook != nil {
		f.hook(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := digestOf(wasm)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[d]; err != nil {
		return nil, err
	}
	mi := f.known[d]
	if mi == nil {
		return nil, fmt.Errorf("compile module: invalid binary (%d bytes)", len(wasm))
	}
	c := cloneInfo(*mi)
	return &c, nil
}
