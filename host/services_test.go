package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// testServices is an in-memory engine: objects in a map, tasks run through the same Runtime in
// goroutines with their results stored as objects, actors on dedicated Instances.
type testServices struct {
	rt     *Runtime
	grants Grants // what nested tasks and actors get

	mu      sync.Mutex
	next    int64
	modules map[string]*Module
	objects map[int64]*testObject
	actors  map[int64]*testActor
	infos   []CallInfo // every CallInfo seen by TaskSubmit
	wg      sync.WaitGroup

	datasets       map[int64]*testDataset // datasets_test.go
	closedDatasets []int64
}

type testObject struct {
	done chan struct{}
	data []byte
	err  error
}

type testActor struct {
	in    *Instance
	typ   string
	chain chan struct{} // done of the last queued call: calls run in order
}

func newTestServices() *testServices {
	return &testServices{modules: map[string]*Module{}, objects: map[int64]*testObject{}, actors: map[int64]*testActor{}}
}

// start returns a Runtime with s behind it; every testdata module named is compiled and known.
func (s *testServices) start(t *testing.T, cfg Config, names ...string) *Runtime {
	cfg.Services = s
	s.rt = newTestRuntime(t, cfg)
	for _, n := range names {
		m, err := s.rt.Compile(context.Background(), moduleBytes(t, n))
		if err != nil {
			t.Fatal(err)
		}
		s.modules[m.Digest] = m
	}
	t.Cleanup(s.stop) // runs before the Runtime's Close
	return s.rt
}

func (s *testServices) stop() {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, a := range s.actors {
		a.in.Close(context.Background())
		delete(s.actors, h)
	}
}

func (s *testServices) newObject() (int64, *testObject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &testObject{done: make(chan struct{})}
	s.objects[s.next] = o
	return s.next, o
}

func (s *testServices) object(h int64) (*testObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[h]
	if !ok {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d", h)}
	}
	return o, nil
}

func (s *testServices) module(c *CallInfo, ref string) (*Module, error) {
	if ref == "" {
		ref = c.Module
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.modules[ref]
	if !ok {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no module %q", ref)}
	}
	return m, nil
}

// run runs fn in a goroutine and stores what it returns in o.
func (s *testServices) run(o *testObject, after <-chan struct{}, fn func() ([]byte, error)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if after != nil {
			<-after
		}
		o.data, o.err = fn()
		close(o.done)
	}()
}

func (s *testServices) ObjectPut(_ context.Context, _ *CallInfo, data []byte) (int64, error) {
	h, o := s.newObject()
	o.data = data
	close(o.done)
	return h, nil
}

func (s *testServices) ObjectGet(ctx context.Context, _ *CallInfo, h int64, timeout time.Duration) ([]byte, error) {
	o, err := s.object(h)
	if err != nil {
		return nil, err
	}
	select {
	case <-o.done:
		return o.data, o.err
	default:
	}
	var expired <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-o.done:
		return o.data, o.err
	case <-expired:
		return nil, fmt.Errorf("object %d not ready after %v: %w", h, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *testServices) ObjectRelease(_ context.Context, _ *CallInfo, h int64) error {
	if _, err := s.object(h); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.objects, h)
	s.mu.Unlock()
	return nil
}

func (s *testServices) TaskSubmit(_ context.Context, c *CallInfo, req *abi.TaskRequest) (int64, error) {
	m, err := s.module(c, req.Module)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.infos = append(s.infos, *c)
	s.mu.Unlock()
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	h, o := s.newObject()
	job, cctx := c.Job, c.Context // c is valid only during this call
	s.run(o, nil, func() ([]byte, error) {
		res, err := s.rt.Call(context.Background(), CallRequest{Module: m, Function: req.Function, Input: input,
			Job: job, Grants: s.grants, Context: cctx})
		if err != nil {
			return nil, err
		}
		return res.Output, nil
	})
	return h, nil
}

func (s *testServices) TaskCancel(_ context.Context, _ *CallInfo, h int64) error {
	_, err := s.object(h)
	return err
}

func (s *testServices) Wait(ctx context.Context, _ *CallInfo, req *abi.WaitRequest) (*abi.WaitResult, error) {
	objs := make([]*testObject, len(req.Handles))
	for i, h := range req.Handles {
		o, err := s.object(h)
		if err != nil {
			return nil, err
		}
		objs[i] = o
	}
	var expired <-chan time.Time
	if req.TimeoutMs >= 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		expired = t.C
	}
	for {
		res := &abi.WaitResult{Ready: []int64{}, NotReady: []int64{}}
		var first chan struct{}
		for i, o := range objs {
			select {
			case <-o.done:
				res.Ready = append(res.Ready, req.Handles[i])
			default:
				res.NotReady = append(res.NotReady, req.Handles[i])
				if first == nil {
					first = o.done
				}
			}
		}
		if len(res.Ready) >= req.NumReturns {
			return res, nil
		}
		select {
		case <-first:
		case <-expired:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *testServices) ActorCreate(ctx context.Context, c *CallInfo, req *abi.ActorCreateRequest) (int64, error) {
	m, err := s.module(c, req.Module)
	if err != nil {
		return 0, err
	}
	in, err := s.rt.NewInstance(ctx, InstanceSpec{Module: m, Job: c.Job, Grants: s.grants})
	if err != nil {
		return 0, err
	}
	if _, err := in.Call(ctx, req.Actor, req.Args); err != nil {
		in.Close(ctx)
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	done := make(chan struct{})
	close(done)
	s.actors[s.next] = &testActor{in: in, typ: req.Actor, chain: done}
	return s.next, nil
}

func (s *testServices) ActorCall(_ context.Context, _ *CallInfo, req *abi.ActorCallRequest) (int64, error) {
	s.mu.Lock()
	a, ok := s.actors[req.Actor]
	s.mu.Unlock()
	if !ok {
		return 0, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor %d", req.Actor)}
	}
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	h, o := s.newObject()
	s.mu.Lock()
	after := a.chain
	a.chain = o.done
	s.mu.Unlock()
	s.run(o, after, func() ([]byte, error) {
		res, err := a.in.Call(context.Background(), a.typ+"."+req.Method, input)
		if err != nil {
			return nil, err
		}
		return res.Output, nil
	})
	return h, nil
}

func (s *testServices) ActorKill(ctx context.Context, _ *CallInfo, h int64) error {
	s.mu.Lock()
	a, ok := s.actors[h]
	delete(s.actors, h)
	s.mu.Unlock()
	if !ok {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no actor %d", h)}
	}
	return a.in.Close(ctx)
}

var allEngineGrants = Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors, abi.CapTensors}}

// nestedCall calls a function of nested.wasm and splits its output into the host function's
// return value and the pending result the guest read.
func nestedCall(t *testing.T, r *Runtime, m *Module, fn string, input []byte) (int64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := r.Call(ctx, CallRequest{Module: m, Function: fn, Input: input, Job: "job-7", Grants: allEngineGrants, Context: "marker"})
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	if len(res.Output) < 8 {
		t.Fatalf("%s: short output %q", fn, res.Output)
	}
	return int64(binary.LittleEndian.Uint64(res.Output)), string(res.Output[8:])
}

func handleInput(h, ms int64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, uint64(h))
	binary.LittleEndian.PutUint64(b[8:], uint64(ms))
	return b
}

// TestServices_NestedTaskDoesNotDeadlockAFullRuntime runs a parent that submits a child task and
// waits for it, on a Runtime with one slot: the parent must give its slot back while it waits.
func TestServices_NestedTaskDoesNotDeadlockAFullRuntime(t *testing.T) {
	s := newTestServices()
	s.grants = allEngineGrants
	r := s.start(t, Config{MaxConcurrentCalls: 1}, "nested")
	m := mustCompile(t, r, "nested")
	code, out := nestedCall(t, r, m, "parent", []byte(`{"function":"child","args_bytes":"aGk="}`))
	if code != int64(len("child:hi")) || out != "child:hi" {
		t.Fatalf("parent: %d %q", code, out)
	}
	s.mu.Lock()
	info := s.infos[0]
	s.mu.Unlock()
	if info.Job != "job-7" || info.Module != m.Digest || info.Function != "parent" || info.Context != "marker" {
		t.Fatalf("CallInfo %+v", info)
	}
}

func TestServices_ObjectsThroughTheABI(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{}, "nested")
	m := mustCompile(t, r, "nested")
	if code, out := nestedCall(t, r, m, "put_get", []byte("some bytes")); code != 10 || out != "some bytes" {
		t.Fatalf("put_get: %d %q", code, out)
	}
	h, _ := s.ObjectPut(context.Background(), nil, []byte("from the host"))
	if code, out := nestedCall(t, r, m, "get", handleInput(h, 0)); code != 13 || out != "from the host" {
		t.Fatalf("get: %d %q", code, out)
	}
	if code, _ := nestedCall(t, r, m, "release", handleInput(h, 0)); code != 0 {
		t.Fatalf("release: %d", code)
	}
	if code, msg := nestedCall(t, r, m, "get", handleInput(h, 0)); code != abi.ErrNotFound.Code() || !strings.Contains(msg, fmt.Sprintf("no object %d", h)) {
		t.Fatalf("get after release: %d %q", code, msg)
	}
	pending, _ := s.newObject() // never ready
	start := time.Now()
	if code, msg := nestedCall(t, r, m, "get", handleInput(pending, 20)); code != abi.ErrTimeout.Code() || !strings.Contains(msg, "not ready") {
		t.Fatalf("get of a pending object: %d %q", code, msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 20 ms get took %v", d)
	}
}

func TestServices_WaitAndFailedTasks(t *testing.T) {
	s := newTestServices()
	s.grants = allEngineGrants
	r := s.start(t, Config{}, "nested")
	m := mustCompile(t, r, "nested")
	h, _ := nestedCall(t, r, m, "submit", []byte(`{"function":"child","args_bytes":"eA=="}`))
	if h <= 0 {
		t.Fatalf("submit: %d", h)
	}
	code, out := nestedCall(t, r, m, "wait", fmt.Appendf(nil, `{"handles":[%d],"num_returns":1,"timeout_ms":10000}`, h))
	var wr abi.WaitResult
	if err := json.Unmarshal([]byte(out), &wr); err != nil || code != int64(len(out)) || len(wr.Ready) != 1 || wr.Ready[0] != h {
		t.Fatalf("wait: %d %q %v", code, out, err)
	}
	// A child that reports an error: the parent sees ErrFailed with the child's abi.Error.
	code, out = nestedCall(t, r, m, "parent", []byte(`{"function":"boom","args_bytes":"eyJjb2RlIjoiRTkiLCJtZXNzYWdlIjoia2Fib29tIn0="}`))
	var ae abi.Error
	if code != abi.ErrFailed.Code() || json.Unmarshal([]byte(out), &ae) != nil || ae.Kind != abi.KindGuest || ae.Code != "E9" || ae.Message != "kaboom" {
		t.Fatalf("failed child: %d %q", code, out)
	}
	// Bad payloads never reach the engine.
	for _, bad := range []string{`{`, `{"function":""}`, `{"function":"child","nope":1}`, `{"function":"child","max_retries":-1}`} {
		if code, msg := nestedCall(t, r, m, "submit", []byte(bad)); code != abi.ErrBadPayload.Code() || !strings.Contains(msg, "task request") {
			t.Errorf("submit %s: %d %q", bad, code, msg)
		}
	}
	if code, msg := nestedCall(t, r, m, "wait", []byte(`{"handles":[1],"num_returns":2,"timeout_ms":1}`)); code != abi.ErrBadPayload.Code() || !strings.Contains(msg, "num_returns") {
		t.Errorf("wait with num_returns > handles: %d %q", code, msg)
	}
	big := make([]byte, abi.MaxRequestBytes+1)
	if code, _ := nestedCall(t, r, m, "submit", big); code != abi.ErrTooLarge.Code() {
		t.Errorf("oversized submit: %d", code)
	}
	if code, _ := nestedCall(t, r, m, "submit", []byte(`{"function":"child","module":"sha256:nope"}`)); code != abi.ErrNotFound.Code() {
		t.Errorf("submit to an unknown module: %d", code)
	}
}

func TestServices_ActorsThroughTheABI(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{}, "nested", "good")
	m := mustCompile(t, r, "nested")
	good := mustCompile(t, r, "good")
	a, msg := nestedCall(t, r, m, "actor_create", fmt.Appendf(nil, `{"module":%q,"actor":"Counter"}`, good.Digest))
	if a <= 0 {
		t.Fatalf("actor_create: %d %q", a, msg)
	}
	var last int64
	for range 3 {
		last, _ = nestedCall(t, r, m, "actor_call", fmt.Appendf(nil, `{"actor":%d,"method":"incr"}`, a))
		if last <= 0 {
			t.Fatalf("actor_call: %d", last)
		}
	}
	if code, out := nestedCall(t, r, m, "get", handleInput(last, 10000)); code != 1 || out != "3" {
		t.Fatalf("third incr: %d %q", code, out)
	}
	if code, _ := nestedCall(t, r, m, "actor_kill", handleInput(a, 0)); code != 0 {
		t.Fatalf("actor_kill: %d", code)
	}
	if code, _ := nestedCall(t, r, m, "actor_call", fmt.Appendf(nil, `{"actor":%d,"method":"incr"}`, a)); code != abi.ErrNotFound.Code() {
		t.Fatalf("call of a killed actor: %d", code)
	}
}

func TestServices_UnavailableWithoutAnEngine(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "nested")
	for fn, in := range map[string]string{"put_get": "x", "submit": `{"function":"child"}`, "actor_create": `{"actor":"A"}`,
		"wait": `{"handles":[1],"num_returns":1}`, "actor_call": `{"actor":1,"method":"m"}`} {
		if code, msg := nestedCall(t, r, m, fn, []byte(in)); code != abi.ErrUnavailable.Code() || !strings.Contains(msg, "no engine") {
			t.Errorf("%s: %d %q", fn, code, msg)
		}
	}
}

// TestServices_DeadlineWhileBlockedInGet checks a call blocked in object_get is stopped at its
// deadline and the Runtime, with one slot, still serves the next call.
func TestServices_DeadlineWhileBlockedInGet(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{MaxConcurrentCalls: 1}, "nested")
	m := mustCompile(t, r, "nested")
	pending, _ := s.newObject()
	start := time.Now()
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "get", Input: handleInput(pending, -1),
		Grants: allEngineGrants, Limits: Limits{Timeout: 50 * time.Millisecond}})
	wantKind(t, err, abi.KindLimit, abi.LimitDeadline)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped after %v", d)
	}
	if code, out := nestedCall(t, r, m, "put_get", []byte("after")); code != 5 || out != "after" {
		t.Fatalf("next call: %d %q", code, out)
	}
}

func TestStatusOf_MapsServiceErrors(t *testing.T) {
	failed := &abi.Error{Kind: abi.KindTrap, Message: "wasm error: unreachable"}
	cases := []struct {
		err  error
		want abi.Status
		msg  string
	}{
		{&abi.Error{Kind: abi.KindNotFound, Message: "no such object"}, abi.ErrNotFound, "no such object"},
		{&abi.Error{Kind: abi.KindDenied, Message: "nope"}, abi.ErrDenied, "nope"},
		{&abi.Error{Kind: abi.KindCancelled, Message: "stopped"}, abi.ErrCancelled, "stopped"},
		{&abi.Error{Kind: abi.KindBadInput, Message: "bad"}, abi.ErrBadPayload, "bad"},
		{failed, abi.ErrFailed, `{"kind":"trap","message":"wasm error: unreachable"}`},
		{fmt.Errorf("task 3: %w", failed), abi.ErrFailed, `{"kind":"trap","message":"wasm error: unreachable"}`},
		{&abi.Error{Kind: abi.KindLimit, Limit: abi.LimitMemory, Message: "m"}, abi.ErrFailed, `{"kind":"limit_exceeded","message":"m","limit":"memory"}`},
		{context.DeadlineExceeded, abi.ErrTimeout, "context deadline exceeded"},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), abi.ErrTimeout, "get: context deadline exceeded"},
		{context.Canceled, abi.ErrCancelled, "context canceled"},
		{&StatusError{Status: abi.ErrLimit, Message: "too many handles"}, abi.ErrLimit, "too many handles"},
		{&StatusError{Status: abi.StatusOK, Message: "ok?"}, abi.ErrInternal, "ok?"},
		{errors.New("disk on fire"), abi.ErrInternal, "disk on fire"},
	}
	for _, tc := range cases {
		st, msg := statusOf(tc.err)
		if st != tc.want || string(msg) != tc.msg {
			t.Errorf("statusOf(%v) = %s %q, want %s %q", tc.err, st, msg, tc.want, tc.msg)
		}
	}
}

// TestHostFuncs_DeniedCapabilityNamesIt calls host functions directly on a call that has only the
// base capability: each engine function answers denied, naming the capability. (Call refuses such
// calls up front; this is the second line.)
func TestHostFuncs_DeniedCapabilityNamesIt(t *testing.T) {
	r := newTestRuntime(t, Config{Services: stubServices{}})
	in := &instance{r: r, caps: bitBase, running: true}
	in.cctx = newCallCtx(&in.st)
	defer in.cctx.timer.Stop()
	in.st = callState{in: in, caps: bitBase, cctx: in.cctx}
	for _, name := range abi.HostFuncNames() {
		hf := abi.HostFuncs[name]
		if hf.Capability == abi.CapBase {
			continue
		}
		fn := wrap(r, hf, func(context.Context, *callState, api.Module, []uint64) int64 { t.Fatalf("%s ran", name); return 0 })
		stack := make([]uint64, 3)
		fn(in.cctx, nil, stack)
		got := int64(stack[0])
		if len(hf.Sig.Results) == 1 && hf.Sig.Results[0] == abi.I32 {
			got = int64(int32(uint32(stack[0])))
		}
		if got != abi.ErrDenied.Code() || !strings.Contains(string(in.st.pending), fmt.Sprintf("%q", hf.Capability)) {
			t.Errorf("%s: %d, pending %q", name, got, in.st.pending)
		}
	}
}
