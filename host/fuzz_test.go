package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/lumenflow/lumen/sdk/abi"
)

// stubServices answers every engine call at once, so fuzzing reaches every path behind the
// payload checks without spawning work.
type stubServices struct{}

func (stubServices) ObjectPut(context.Context, *CallInfo, []byte) (int64, error) { return 1, nil }
func (stubServices) ObjectGet(_ context.Context, _ *CallInfo, h int64, _ time.Duration) ([]byte, error) {
	switch h {
	case 1:
		return []byte("object one"), nil
	case 2:
		return nil, &abi.Error{Kind: abi.KindGuest, Message: "task two failed"}
	case 3:
		return nil, context.DeadlineExceeded
	}
	return nil, &abi.Error{Kind: abi.KindNotFound, Message: "no such object"}
}
func (stubServices) ObjectRelease(context.Context, *CallInfo, int64) error { return nil }
func (stubServices) TaskSubmit(context.Context, *CallInfo, *abi.TaskRequest) (int64, error) {
	return 2, nil
}
func (stubServices) TaskCancel(context.Context, *CallInfo, int64) error { return nil }
func (stubServices) Wait(_ context.Context, _ *CallInfo, req *abi.WaitRequest) (*abi.WaitResult, error) {
	return &abi.WaitResult{Ready: req.Handles}, nil
}
func (stubServices) ActorCreate(context.Context, *CallInfo, *abi.ActorCreateRequest) (int64, error) {
	return 3, nil
}
func (stubServices) ActorCall(context.Context, *CallInfo, *abi.ActorCallRequest) (int64, error) {
	return 4, nil
}
func (stubServices) ActorKill(context.Context, *CallInfo, int64) error { return nil }

// hostcall input layout: payload bytes start at this guest address.
const hostcallPayload = 1024 + 32

// hostcallSeeds are well-formed and malformed calls of every host function.
func hostcallSeeds(t testing.TB) [][]byte {
	payloads := map[string][]byte{
		"task":   []byte(`{"function":"child","args":{"a":1}}`),
		"wait":   []byte(`{"handles":[1,2],"num_returns":1,"timeout_ms":10}`),
		"create": []byte(`{"actor":"Counter","args":0}`),
		"call":   []byte(`{"actor":3,"method":"incr","args":1}`),
		"bad":    []byte(`{"function":`),
	}
	// The task requests of testdata, too.
	if b, err := os.ReadFile(filepath.Join("testdata", "good.wat")); err == nil {
		payloads["wat"] = b[:min(len(b), 2000)]
	}
	var seeds [][]byte
	for fn := range byte(len(hostcallFns) + 1) {
		for _, p := range payloads {
			seeds = append(seeds, hostcallInput(fn, hostcallPayload, int64(len(p)), 0, p))
			seeds = append(seeds, hostcallInput(fn, int64(abi.LogWarn), hostcallPayload, int64(len(p)), p))
		}
		for _, span := range badSpans {
			seeds = append(seeds, hostcallInput(fn, span[0], span[1], span[1], nil))
		}
		for _, h := range []int64{1, 2, 3, 99, 0, -1} {
			seeds = append(seeds, hostcallInput(fn, h, 5, 0, nil))
		}
	}
	return seeds
}

// FuzzHostCalls feeds arbitrary arguments and payloads to every host function through
// hostcall.wasm: no input may panic or stall the host, a pointer outside memory must give
// bad_pointer, and every failure must be a known negative status.
func FuzzHostCalls(f *testing.F) {
	for _, s := range hostcallSeeds(f) {
		f.Add(s)
	}
	r, err := New(context.Background(), Config{Services: stubServices{}, MaxIdleInstances: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close(context.Background()) })
	m, err := r.Compile(context.Background(), testWasm(f, "hostcall"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 60000 {
			in = in[:60000] // hostcall's lumen_alloc takes no more
		}
		res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "call", Input: in,
			Grants: allEngineGrants, Limits: Limits{Timeout: 10 * time.Second}})
		args := make([]byte, 32)
		copy(args, in)
		fn := int(args[0])
		a := int64(binary.LittleEndian.Uint64(args[8:]))
		b := int64(binary.LittleEndian.Uint64(args[16:]))
		c := int64(binary.LittleEndian.Uint64(args[24:]))
		what := fmt.Sprintf("fn %d (%#x, %#x, %#x)", fn, a, b, c)
		if err != nil {
			ae := abiErr(t, err)
			if fn == 1 && ae.Kind == abi.KindGuest {
				return // error() with a good pointer: the guest reported an error, as asked
			}
			t.Fatalf("%s: %v", what, err)
		}
		if len(res.Output) != 8 {
			t.Fatalf("%s: output %q", what, res.Output)
		}
		got := int64(binary.LittleEndian.Uint64(res.Output))
		if fn >= len(hostcallFns) {
			if got != -999 {
				t.Fatalf("%s: unknown function answered %d", what, got)
			}
			return
		}
		name := hostcallFns[fn]
		if first, ok := takesPointer(name); ok {
			args := [3]int64{a, b, c}
			ptr, n := uint64(uint32(args[first])), uint64(uint32(args[first+1]))
			badLevel := name == abi.FnLog && (int32(a) < abi.LogDebug || int32(a) > abi.LogError)
			if ptr+n > 65536 && !badLevel && got != abi.ErrBadPointer.Code() {
				t.Fatalf("%s: %s of [%#x, +%d) outside memory answered %d, want bad_pointer", what, name, ptr, n, got)
			}
		}
		if got < 0 && abi.StatusOf(got).String() == "unknown" {
			t.Fatalf("%s: %s answered %d, not a status", what, name, got)
		}
		if name == abi.FnResultRead && got >= 0 || name == abi.FnResultLen && got != 0 {
			t.Fatalf("%s: %s answered %d with nothing pending", what, name, got)
		}
	})
}

// FuzzCheckModule feeds arbitrary bytes to checkModule, seeded with every testdata module (and the
// Go guest): it must not panic; what it accepts, wazero must decode without running out of memory
// (the fuzzer's worker would die); and where wazero compiles a module with an exported memory,
// both must agree on its bounds.
func FuzzCheckModule(f *testing.F) {
	for _, pattern := range []string{"testdata/*.wasm", "testdata/bad/*.wasm"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x05\xff\xff\xff\xff\x0f")) // 2^32-1 imports
	rt := wazero.NewRuntime(context.Background())
	f.Cleanup(func() { rt.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 8 || string(b[:8]) != "\x00asm\x01\x00\x00\x00" {
			return
		}
		ms, err := checkModule(b)
		if err != nil {
			return
		}
		cm, err := rt.CompileModule(context.Background(), b)
		if err != nil {
			return
		}
		defer cm.Close(context.Background())
		if ms.growsAll {
			t.Fatal("wazero compiled code the table.grow scan could not decode")
		}
		for _, mem := range cm.ExportedMemories() {
			max, _ := mem.Max()
			if !ms.defined && !ms.imported || mem.Min() != ms.min || ms.max != 0 && max != ms.max {
				t.Fatalf("scan %+v, wazero min %d max %d", ms, mem.Min(), max)
			}
		}
	})
}

// TestCheckModule_AcceptsRealModules guards against refusing what compilers emit.
func TestCheckModule_AcceptsRealModules(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.wasm")
	bad, _ := filepath.Glob("testdata/bad/*.wasm")
	for _, file := range append(files, bad...) {
		b, _ := os.ReadFile(file)
		if ms, err := checkModule(b); err != nil || ms.growsAll {
			t.Errorf("%s: %v (code decoded: %v)", file, err, !ms.growsAll)
		}
	}
	if b, err := goGuest(); err == nil {
		// Go declares its one table with no maximum and never grows it: it counts at its size.
		ms, err := checkModule(b)
		entries, terr := ms.tableEntries()
		if err != nil || !ms.defined || ms.growsAll || len(ms.grows) != 0 || terr != nil || len(ms.tables) != 1 || entries != uint64(ms.tables[0].min) {
			t.Errorf("Go guest: %+v %v %v", ms, err, terr)
		}
		t.Logf("Go guest: table of %d entries (%d KiB), no maximum, never grown", entries, entries*tableEntryBytes>>10)
	}
	if ms, _ := checkModule(testWasm(t, "tables")); !ms.grows[0] || ms.grows[1] || ms.growsAll {
		t.Errorf("tables.wasm: grows %v, want table 0 only", ms.grows)
	}
}

func TestCompile_RefusesHugeDeclaredCounts(t *testing.T) {
	r := newTestRuntime(t, Config{})
	for name, b := range map[string]string{
		"imports":    "\x00asm\x01\x00\x00\x00\x02\x05\xff\xff\xff\xff\x0f",
		"types":      "\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f",
		"data bytes": "\x00asm\x01\x00\x00\x00\x0b\x07\x01\x01\xff\xff\xff\xff\x0f",
		"locals":     "\x00asm\x01\x00\x00\x00\x0a\x09\x01\x07\x01\xff\xff\xff\xff\x0f\x7f",
		"body":       "\x00asm\x01\x00\x00\x00\x0a\x06\x01\xff\xff\xff\xff\x0f",
		"name":       "\x00asm\x01\x00\x00\x00\x00\x06\xff\xff\xff\xff\x0f\x00",
		"section":    "\x00asm\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f",
	} {
		_, err := r.Compile(context.Background(), []byte(b))
		ae := wantKind(t, err, abi.KindBadInput, "")
		t.Logf("%s: %s", name, ae.Message)
	}
}
