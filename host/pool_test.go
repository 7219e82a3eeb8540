package host

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

func bump(t *testing.T, r *Runtime, m *Module, job string, lim Limits) string {
	t.Helper()
	return string(callOK(t, r, CallRequest{Module: m, Function: "bump", Job: job, Limits: lim}).Output)
}

func TestPool_NotSharedBetweenJobs(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	for i, want := range []struct{ job, n string }{{"a", "1"}, {"a", "2"}, {"b", "1"}, {"a", "3"}, {"b", "2"}} {
		if got := bump(t, r, m, want.job, Limits{}); got != want.n {
			t.Fatalf("step %d: job %s bump = %s, want %s", i, want.job, got, want.n)
		}
	}
	// A different memory limit shapes a different instance, so a different pool.
	if got := bump(t, r, m, "a", Limits{MemoryPages: 100}); got != "1" {
		t.Fatalf("job a with another memory limit: bump = %s, want 1", got)
	}
	// Timeouts and output caps do not.
	if got := bump(t, r, m, "a", Limits{Timeout: time.Minute, MaxOutputBytes: 100}); got != "4" {
		t.Fatalf("job a with another timeout: bump = %s, want 4", got)
	}
}

func TestPool_DiscardedAfterDeadline(t *testing.T) {
	r := newTestRuntime(t, Config{})
	h := mustCompile(t, r, "hostile")
	callOK(t, r, CallRequest{Module: h, Function: "ok", Job: "j"})
	if n := r.Stats().IdleInstances; n != 1 {
		t.Fatalf("%d idle instances after a call, want 1", n)
	}
	_, err := r.Call(context.Background(), CallRequest{Module: h, Function: "loop", Job: "j", Limits: Limits{Timeout: 20 * time.Millisecond}})
	wantKind(t, err, abi.KindLimit, abi.LimitDeadline)
	if n := r.Stats().IdleInstances; n != 0 {
		t.Fatalf("%d idle instances after a deadline, want 0: the instance must be discarded", n)
	}
	callOK(t, r, CallRequest{Module: h, Function: "ok", Job: "j"})
}

func TestPool_LeastRecentlyUsedIsEvicted(t *testing.T) {
	r := newTestRuntime(t, Config{MaxIdleInstances: 2})
	m := mustCompile(t, r, "good")
	for _, job := range []string{"a", "b", "c"} {
		bump(t, r, m, job, Limits{})
	}
	if n := r.Stats().IdleInstances; n != 2 {
		t.Fatalf("%d idle instances, want 2", n)
	}
	if got := bump(t, r, m, "c", Limits{}); got != "2" {
		t.Fatalf("job c, recently used, lost its instance: bump = %s", got)
	}
	if got := bump(t, r, m, "a", Limits{}); got != "1" {
		t.Fatalf("job a, least recently used, kept its instance: bump = %s", got)
	}
	r.Evict(context.Background(), "c")
	if got := bump(t, r, m, "c", Limits{}); got != "1" {
		t.Fatalf("job c kept an instance after Evict: bump = %s", got)
	}
}

// An instance whose tables may hold more than 64 MiB is not pooled, as one whose linear memory
// grew past 64 MiB is not: a pooled one per job would keep 64 MiB resident per job.
func TestPool_NotKeptWhenTablesAreLarge(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "tables")
	for _, job := range []string{"a", "b", "c"} {
		if out := callOK(t, r, CallRequest{Module: m, Function: "grow_table", Job: job}).Output; string(out) != "ok" {
			t.Fatalf("grow_table = %q", out)
		}
		if n := r.Stats().IdleInstances; n != 0 {
			t.Fatalf("job %s: %d idle instances holding tables of 64 MiB; want none kept", job, n)
		}
	}
}

func TestPool_NoPoolingWhenMaxIdleIsNegative(t *testing.T) {
	r := newTestRuntime(t, Config{MaxIdleInstances: -1})
	m := mustCompile(t, r, "good")
	for range 3 {
		if got := bump(t, r, m, "a", Limits{}); got != "1" {
			t.Fatalf("bump = %s, want 1 on a fresh instance every time", got)
		}
	}
}

func TestRuntime_ConcurrentCalls(t *testing.T) {
	const workers, calls = 8, 40
	r := newTestRuntime(t, Config{MaxConcurrentCalls: 3})
	m := mustCompile(t, r, "good")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := fmt.Sprintf("job%d", w%2)
			for i := range calls {
				in := fmt.Sprintf(`{"a":%d,"b":%d}`, w, i)
				res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "add", Input: []byte(in), Job: job})
				if err != nil {
					t.Error(err)
					return
				}
				if got, want := string(res.Output), strconv.Itoa(w+i); got != want {
					t.Errorf("add(%d, %d) = %s", w, i, got)
				}
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	if st.IdleInstances > 6 || st.IdleInstances < 2 || st.Running != 0 {
		t.Fatalf("stats after the calls: %+v (3 slots, 2 jobs)", st)
	}
}

// waitRunning polls until n calls are in flight.
func waitRunning(t *testing.T, r *Runtime, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Running != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls running, want %d", r.Stats().Running, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRuntime_CloseCancelsRunningCalls(t *testing.T) {
	r, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := mustCompile(t, r, "hostile")
	done := make(chan error, 1)
	go func() {
		_, err := r.Call(context.Background(), CallRequest{Module: h, Function: "loop", Limits: Limits{Timeout: time.Minute}})
		done <- err
	}()
	waitRunning(t, r, 1)
	start := time.Now()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantKind(t, <-done, abi.KindCancelled, "")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close took %v", d)
	}
	_, err = r.Call(context.Background(), CallRequest{Module: h, Function: "ok"})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	wantKind(t, err, abi.KindSystem, "")
	if _, err := r.Compile(context.Background(), testWasm(t, "good")); !errors.Is(err, ErrClosed) {
		t.Fatalf("compile after close: %v", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestCall_ContextCancelStopsTheGuest(t *testing.T) {
	r := newTestRuntime(t, Config{})
	h := mustCompile(t, r, "hostile")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for deadline := time.Now().Add(10 * time.Second); r.Stats().Running == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := r.Call(ctx, CallRequest{Module: h, Function: "loop", Limits: Limits{Timeout: time.Minute}})
	wantKind(t, err, abi.KindCancelled, "")
}

func TestCall_WaitingForASlotHonoursTheContext(t *testing.T) {
	r := newTestRuntime(t, Config{MaxConcurrentCalls: 1})
	h := mustCompile(t, r, "hostile")
	done := make(chan error, 1)
	go func() {
		_, err := r.Call(context.Background(), CallRequest{Module: h, Function: "loop", Limits: Limits{Timeout: 500 * time.Millisecond}})
		done <- err
	}()
	waitRunning(t, r, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.Call(ctx, CallRequest{Module: h, Function: "ok"})
	ae := wantKind(t, err, abi.KindLimit, abi.LimitDeadline)
	if ae.Message != "deadline passed while waiting for a free slot" {
		t.Fatalf("message %q", ae.Message)
	}
	wantKind(t, <-done, abi.KindLimit, abi.LimitDeadline)
	callOK(t, r, CallRequest{Module: h, Function: "ok"})
}

func TestCall_RefusesBadRequests(t *testing.T) {
	r := newTestRuntime(t, Config{})
	other := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	foreign := mustCompile(t, other, "good")
	cases := []struct {
		req  CallRequest
		kind abi.ErrorKind
	}{
		{CallRequest{Function: "echo"}, abi.KindBadInput},
		{CallRequest{Module: foreign, Function: "echo"}, abi.KindBadInput},
		{CallRequest{Module: m, Function: "nope"}, abi.KindNotFound},
		{CallRequest{Module: m, Function: "echo", Limits: Limits{MemoryPages: 70000}}, abi.KindBadInput},
		{CallRequest{Module: m, Function: "echo", Limits: Limits{Timeout: -1}}, abi.KindBadInput},
	}
	for _, tc := range cases {
		_, err := r.Call(context.Background(), tc.req)
		wantKind(t, err, tc.kind, "")
	}
}

func TestCall_OutputAndResultLimits(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "echo", Input: []byte("12345"), Limits: Limits{MaxResultBytes: 4}})
	wantKind(t, err, abi.KindLimit, abi.LimitOutput)
	res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "log", Input: []byte("hello world"), Limits: Limits{MaxOutputBytes: 8}})
	wantKind(t, err, abi.KindLimit, abi.LimitOutput)
	if res == nil || string(res.Log) != "INFO hel" {
		t.Fatalf("log of a call over its output limit: %+v", res)
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "echo"}); len(res.Output) != 0 {
		t.Fatalf("echo of nothing: %q", res.Output)
	}
}

func TestInstance_KeepsStateAndSerializesCalls(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	in, err := r.NewInstance(context.Background(), InstanceSpec{Module: m, Job: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := in.Call(context.Background(), "Counter", nil); err != nil || string(res.Output) != "null" {
		t.Fatalf("constructor: %v %v", res, err)
	}
	const n = 20
	outs := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := in.Call(context.Background(), "Counter.incr", nil)
			if err != nil {
				t.Error(err)
				return
			}
			outs[i], _ = strconv.Atoi(string(res.Output))
		}()
	}
	wg.Wait()
	sort.Ints(outs)
	for i, v := range outs {
		if v != i+1 {
			t.Fatalf("concurrent incr results %v, want 1..%d once each", outs, n)
		}
	}
	if in.Err() != nil {
		t.Fatal(in.Err())
	}
	_, err = in.Call(context.Background(), "trap", nil)
	wantKind(t, err, abi.KindTrap, "")
	_, err = in.Call(context.Background(), "Counter.incr", nil)
	wantKind(t, err, abi.KindSystem, "")
	if in.Err() == nil {
		t.Fatal("a dead instance reports no error")
	}
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Call(context.Background(), "Counter.incr", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if r.Stats().Instances != 0 {
		t.Fatalf("stats %+v after close", r.Stats())
	}
}

func TestInstance_ClosedWithTheRuntime(t *testing.T) {
	r, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := mustCompile(t, r, "good")
	in, err := r.NewInstance(context.Background(), InstanceSpec{Module: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Call(context.Background(), "Counter", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after the runtime closed: %v", err)
	}
}

// TestPool_ShortDeadlineAfterALongOne checks a pooled instance honours a call's deadline that is
// earlier than the previous call's.
func TestPool_ShortDeadlineAfterALongOne(t *testing.T) {
	r := newTestRuntime(t, Config{})
	h := mustCompile(t, r, "hostile")
	callOK(t, r, CallRequest{Module: h, Function: "ok", Limits: Limits{Timeout: time.Hour}})
	start := time.Now()
	_, err := r.Call(context.Background(), CallRequest{Module: h, Function: "loop", Limits: Limits{Timeout: 30 * time.Millisecond}})
	wantKind(t, err, abi.KindLimit, abi.LimitDeadline)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped after %v", d)
	}
	// And a pooled instance whose previous deadline passed while it was idle is not stopped.
	callOK(t, r, CallRequest{Module: h, Function: "ok", Limits: Limits{Timeout: 10 * time.Millisecond}})
	time.Sleep(30 * time.Millisecond) // not a wait for an event: the deadline must pass while the instance is idle
	for range 3 {
		callOK(t, r, CallRequest{Module: h, Function: "ok", Limits: Limits{Timeout: time.Minute}})
	}
	if n := r.Stats().IdleInstances; n != 1 {
		t.Fatalf("%d idle instances, want 1 reused", n)
	}
}

func TestPool_PrewarmFillsThePoolOnce(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	ctx := context.Background()
	if err := r.Prewarm(ctx, CallRequest{Module: m, Job: "w"}, 3); err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().IdleInstances; got != 3 {
		t.Fatalf("idle after prewarm: %d, want 3", got)
	}
	// Prewarming again tops up to n rather than adding n more.
	if err := r.Prewarm(ctx, CallRequest{Module: m, Job: "w"}, 2); err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().IdleInstances; got != 3 {
		t.Fatalf("idle after a second prewarm: %d, want 3", got)
	}
	// The warm instances serve job w, and only job w.
	if got := bump(t, r, m, "w", Limits{}); got != "1" {
		t.Fatalf("first bump on a warm instance = %s, want 1", got)
	}
	if got := r.Stats().IdleInstances; got != 3 {
		t.Fatalf("idle after a call on a warm instance: %d, want 3 (none instantiated)", got)
	}
	if err := r.Prewarm(ctx, CallRequest{Module: m, Job: "w", Grants: Grants{Capabilities: []abi.Capability{"nope"}}}, 1); err == nil {
		t.Fatal("prewarm with a bad grant succeeded")
	}
}
