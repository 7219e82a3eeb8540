package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// procStatus reads VmRSS and VmHWM of this process, in bytes; zero where /proc is missing.
func procStatus() (rss, hwm int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// resetPeak resets VmHWM to the current RSS (Linux 4.0+), after returning free memory to the OS.
func resetPeak() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// hostileCase is one attack and the outcome the sandbox must give it.
type hostileCase struct {
	name     string
	module   string
	function string
	input    []byte
	limits   Limits
	grants   Grants
	parallel int // calls at once; 0 means 1
	kind     abi.ErrorKind
	limit    string
	message  string // a substring of the error, or of the output when kind is ""
	maxTime  time.Duration
	maxPeak  int64 // bytes of peak RSS growth allowed
}

// raceTableShadow is what the race detector adds to the peak of a call that grows a 64 MiB
// table: wazero keeps a table in a Go slice, which the detector shadows (measured: 512.5 MiB of
// peak against 256.0 MiB without it). Linear memory is mmapped outside the Go heap and is not
// shadowed.
var raceTableShadow = map[bool]int64{true: 320 << 20}[raceEnabled]

// TestHostile runs each hostile guest against one Runtime, checks it is contained, and that the
// same Runtime answers a canary call right after. Run with -v for the table of containment times
// and memory, in the form docs/TESTING.md keeps.
func TestHostile(t *testing.T) {
	_, _ = goGuest() // builds the Go guest, when there is a toolchain, and its compile cache dir
	r := newTestRuntime(t, Config{MaxConcurrentCalls: 4, DataDir: goBuild.dir})
	canary := mustCompile(t, r, "good")
	mustCompile(t, r, "hostile")
	mustCompile(t, r, "sys")
	mustCompile(t, r, "tables")
	cases := []hostileCase{
		{name: "infinite loop", module: "hostile", function: "loop", limits: Limits{Timeout: 100 * time.Millisecond},
			kind: abi.KindLimit, limit: abi.LimitDeadline, message: "deadline", maxTime: 2 * time.Second, maxPeak: 32 << 20},
		{name: "memory bomb, page by page to 256 MiB", module: "hostile", function: "grow_pages",
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "4096 pages", maxTime: 20 * time.Second, maxPeak: 256<<20 + 64<<20},
		{name: "memory bomb, page by page to 64 MiB", module: "hostile", function: "grow_pages", limits: Limits{MemoryPages: 1024},
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "1024 pages", maxTime: 10 * time.Second, maxPeak: 64<<20 + 48<<20},
		{name: "memory bomb, one grow of 60000 pages", module: "hostile", function: "grow_huge",
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "asked for 60002 memory pages", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "table of 64 MiB (8 M entries) under a 48 MiB limit", module: "tables", function: "grow_table", limits: Limits{MemoryPages: 768},
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "tables may hold 8388612 entries (64.0 MiB)", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "table grown to 64 MiB, then memory page by page, 256 MiB limit", module: "tables", function: "grow_both",
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "asked for 3072 memory pages; the limit is 4096 pages (256 MiB), of which its tables reserve 64.0 MiB",
			maxTime: 20 * time.Second, maxPeak: 256<<20 + 64<<20 + raceTableShadow},
		{name: "deep recursion", module: "hostile", function: "recurse",
			kind: abi.KindTrap, message: "stack overflow", maxTime: 20 * time.Second, maxPeak: 1 << 30},
		{name: "deep recursion, 4 at once", module: "hostile", function: "recurse", parallel: 4,
			kind: abi.KindTrap, message: "stack overflow", maxTime: 40 * time.Second, maxPeak: 3 << 30},
		{name: "stdout flood", module: "hostile", function: "flood_stdout",
			kind: abi.KindLimit, limit: abi.LimitOutput, message: "1048576 bytes", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "log flood", module: "hostile", function: "flood_log",
			kind: abi.KindLimit, limit: abi.LimitOutput, message: "1048576 bytes", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "garbage result pointer", module: "hostile", function: "bad_result",
			kind: abi.KindTrap, message: "result out of bounds", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "result length of 4 GiB", module: "hostile", function: "huge_len",
			kind: abi.KindTrap, message: "result out of bounds", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "proc_exit mid-call", module: "hostile", function: "exit",
			kind: abi.KindTrap, message: "exited with code 3", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "read /etc/passwd, no fs grant", module: "sys", function: "read_file", input: []byte("etc/passwd"),
			message: "errno=8", maxTime: time.Second, maxPeak: 32 << 20},
		{name: "read env, no env grant", module: "sys", function: "getenv",
			message: "", maxTime: time.Second, maxPeak: 32 << 20},
	}
	cases = append(cases, goHostileCases(t, r)...)

	var table strings.Builder
	table.WriteString("| attack | outcome | time to containment | peak RSS growth | RSS after |\n|---|---|---|---|---|\n")
	for _, tc := range cases {
		mod, err := r.Compile(context.Background(), moduleBytes(t, tc.module))
		if err != nil {
			t.Fatal(err)
		}
		n := max(tc.parallel, 1)
		resetPeak()
		rss0, _ := procStatus()
		start := time.Now()
		errs := make([]error, n)
		outs := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := r.Call(context.Background(), CallRequest{Module: mod, Function: tc.function, Input: tc.input,
					Limits: tc.limits, Grants: tc.grants, Job: "hostile"})
				errs[i] = err
				if res != nil {
					outs[i] = res.Output
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		_, hwm := procStatus()
		peak := hwm - rss0
		resetPeak()
		rss1, _ := procStatus()

		outcome := ""
		for i := range n {
			if tc.kind == "" {
				if errs[i] != nil || !bytes.Contains(outs[i], []byte(tc.message)) {
					t.Errorf("%s: output %q, error %v; want output containing %q", tc.name, outs[i], errs[i], tc.message)
				}
				outcome = fmt.Sprintf("refused: %q", outs[i])
				continue
			}
			if errs[i] == nil {
				t.Errorf("%s: no error", tc.name)
				continue
			}
			ae := abiErr(t, errs[i])
			if ae.Kind != tc.kind || ae.Limit != tc.limit || !strings.Contains(ae.Message, tc.message) {
				t.Errorf("%s: %v; want %s %s containing %q", tc.name, errs[i], tc.kind, tc.limit, tc.message)
			}
			outcome = string(ae.Kind)
			if ae.Limit != "" {
				outcome += " (" + ae.Limit + ")"
			}
		}
		if took > tc.maxTime {
			t.Errorf("%s: contained after %v, want under %v", tc.name, took, tc.maxTime)
		}
		if rss0 > 0 && peak > tc.maxPeak {
			t.Errorf("%s: peak RSS grew by %s, want under %s", tc.name, mib(peak), mib(tc.maxPeak))
		}
		// The canary: the same Runtime still answers.
		if res := callOK(t, r, CallRequest{Module: canary, Function: "add", Input: []byte(`{"a":40,"b":2}`)}); string(res.Output) != "42" {
			t.Fatalf("%s: canary answered %q", tc.name, res.Output)
		}
		row := fmt.Sprintf("| %s | %s | %v | %s | %s |", tc.name, outcome, took.Round(100*time.Microsecond), mib(peak), mib(rss1))
		t.Log(row)
		table.WriteString(row + "\n")
	}
	resetPeak()
	rss0, _ := procStatus()
	n, took := outOfBoundsSweep(t, r)
	_, hwm := procStatus()
	resetPeak()
	rss1, _ := procStatus()
	row := fmt.Sprintf("| out-of-bounds pointers (ptr+len wrapping u32, len near 4 GiB) and garbage handles to all %d host functions, %d calls | negative status (bad_pointer, not_found, unavailable), no panic | %v per call | %s | %s |",
		len(hostcallFns), n, (took / time.Duration(n)).Round(time.Microsecond), mib(hwm-rss0), mib(rss1))
	t.Log(row)
	table.WriteString(row + "\n")
	t.Logf("%s, GOMAXPROCS %d, race detector %v:\n%s", runtime.GOARCH, runtime.GOMAXPROCS(0), raceEnabled, table.String())
}

// moduleBytes returns a testdata guest by name, or the Go guest for "go".
func moduleBytes(t testing.TB, name string) []byte {
	if name == "go" {
		b, err := goGuest()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return testWasm(t, name)
}

// hostcallInput encodes a call of host function fn through hostcall.wasm.
func hostcallInput(fn byte, a, b, c int64, payload []byte) []byte {
	in := make([]byte, 32, 32+len(payload))
	in[0] = fn
	binary.LittleEndian.PutUint64(in[8:], uint64(a))
	binary.LittleEndian.PutUint64(in[16:], uint64(b))
	binary.LittleEndian.PutUint64(in[24:], uint64(c))
	return append(in, payload...)
}

// hostcall function numbers, in hostcall.wat's order.
var hostcallFns = []string{abi.FnLog, abi.FnError, abi.FnResultLen, abi.FnResultRead, abi.FnObjectPut,
	abi.FnObjectGet, abi.FnObjectRelease, abi.FnTaskSubmit, abi.FnTaskCancel, abi.FnWait,
	abi.FnActorCreate, abi.FnActorCall, abi.FnActorKill, abi.FnTensorCreate, abi.FnTensorOp,
	abi.FnTensorRead, abi.FnTensorInfo, abi.FnTensorBackward, abi.FnTensorGrad, abi.FnTensorFree,
	abi.FnOptimCreate, abi.FnOptimStep, abi.FnOptimZeroGrad}

// takesPointer reports whether host function fn reads (ptr, len) from its first two arguments
// (log: from its second and third).
func takesPointer(fn string) (first int, ok bool) {
	switch fn {
	case abi.FnLog:
		return 1, true
	case abi.FnError, abi.FnResultRead, abi.FnObjectPut, abi.FnTaskSubmit, abi.FnWait, abi.FnActorCreate, abi.FnActorCall,
		abi.FnTensorCreate, abi.FnTensorOp, abi.FnOptimCreate:
		return 0, true
	}
	return 0, false
}

// badSpans are (ptr, len) pairs outside a one-page memory, several of which wrap 32 bits.
var badSpans = [][2]int64{
	{65536, 1}, {65535, 2}, {0, 65537}, {0xffffffff, 1}, {1, 0xffffffff}, {0xffffffff, 0xffffffff},
	{0x80000000, 0x80000000}, {0, 0xffffffff}, {0xfffffff0, 0x20}, {65537, 0},
}

func TestHostile_OutOfBoundsPointersToEveryHostFunction(t *testing.T) {
	r := newTestRuntime(t, Config{})
	n, took := outOfBoundsSweep(t, r)
	t.Logf("%d calls with out-of-bounds pointers or garbage handles to every host function answered a negative status in %v", n, took)
}

// outOfBoundsSweep calls every host function through hostcall.wasm with pointers and lengths
// outside its one-page memory (several wrapping 32 bits, lengths near 4 GiB) and with garbage
// handles, and checks each answers its negative status. It returns the calls made and the time.
func outOfBoundsSweep(t *testing.T, r *Runtime) (int, time.Duration) {
	t.Helper()
	m := mustCompile(t, r, "hostcall")
	grants := Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors, abi.CapTensors}}
	checked := 0
	start := time.Now()
	for fi, fn := range hostcallFns {
		first, ok := takesPointer(fn)
		if !ok {
			continue
		}
		for _, span := range badSpans {
			args := [3]int64{int64(abi.LogInfo), 0, 0}
			args[first], args[first+1] = span[0], span[1]
			res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "call",
				Input: hostcallInput(byte(fi), args[0], args[1], args[2], nil), Grants: grants})
			if err != nil {
				t.Fatalf("%s(%#x, %#x): %v", fn, span[0], span[1], err)
			}
			got := int64(binary.LittleEndian.Uint64(res.Output))
			if got != abi.ErrBadPointer.Code() {
				t.Errorf("%s(%#x, %#x) = %d, want %d (bad_pointer)", fn, span[0], span[1], got, abi.ErrBadPointer.Code())
			}
			checked++
		}
	}
	// tensor_create's second span, its data: (ptr, len) packed into the third argument.
	create := int64(slices.Index(hostcallFns, abi.FnTensorCreate))
	for _, span := range badSpans {
		res := callOK(t, r, CallRequest{Module: m, Function: "call",
			Input: hostcallInput(byte(create), 0, 0, span[0]|span[1]<<32, nil), Grants: grants})
		if got := int64(binary.LittleEndian.Uint64(res.Output)); got != abi.ErrBadPointer.Code() {
			t.Errorf("tensor_create data (%#x, %#x) = %d, want %d (bad_pointer)", span[0], span[1], got, abi.ErrBadPointer.Code())
		}
		checked++
	}
	// The handle-taking functions: garbage handles and timeouts get a negative status.
	for fi, fn := range hostcallFns {
		if _, ok := takesPointer(fn); ok || fn == abi.FnResultLen {
			continue
		}
		for _, h := range []int64{0, -1, math.MinInt64, math.MaxInt64, 42} {
			res := callOK(t, r, CallRequest{Module: m, Function: "call",
				Input: hostcallInput(byte(fi), h, math.MaxInt64, 0, nil), Grants: grants})
			got := int64(binary.LittleEndian.Uint64(res.Output))
			want := abi.ErrNotFound.Code()
			if h > 0 {
				want = abi.ErrUnavailable.Code() // no Services nor Tensors behind this Runtime
			}
			if got != want {
				t.Errorf("%s(%d) = %d, want %d", fn, h, got, want)
			}
			checked++
		}
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "call", Input: hostcallInput(2, 0, 0, 0, nil), Grants: grants}); binary.LittleEndian.Uint64(res.Output) != 0 {
		t.Fatalf("result_len with nothing pending = %d", binary.LittleEndian.Uint64(res.Output))
	}
	return checked, time.Since(start)
}
