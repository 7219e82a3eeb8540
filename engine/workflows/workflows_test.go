package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// memStore is a Store in memory with the replicated state's semantics: writes all or nothing,
// conditions checked first.
type memStore struct {
	mu sync.Mutex
	kv map[string][]byte
}

func (s *memStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	if !ok {
		return nil, raftstore.ErrKeyNotFound
	}
	return v, nil
}

func (s *memStore) PutMany(kv map[string][]byte) error { return s.PutManyIf(kv) }

func (s *memStore) PutManyIf(kv map[string][]byte, conds ...raftstore.Cond) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range conds {
		v, ok := s.kv[string(c.Key)]
		if (c.Absent && ok) || (c.Exists && !ok) || (!c.Absent && !c.Exists && (!ok || !bytes.Equal(v, c.Value))) {
			return fmt.Errorf("%w: %s", raftstore.ErrConflict, c.Key)
		}
	}
	for k, v := range kv {
		s.kv[k] = bytes.Clone(v)
	}
	return nil
}

// Linearize has nothing to wait for: every read sees every write.
func (s *memStore) Linearize(context.Context) error { return nil }

func (s *memStore) Scan(prefix string, fn func(key string, val []byte) error) error {
	s.mu.Lock()
	keys := map[string][]byte{}
	for k, v := range s.kv {
		if strings.HasPrefix(k, prefix) {
			keys[k] = v
		}
	}
	s.mu.Unlock()
	for k, v := range keys {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// goSteps runs each step as a Go function of its input, by function name; no module is needed
// (every module reference is "builtin:").
type goSteps struct {
	fns   map[string]func(ctx context.Context, in []byte) ([]byte, error)
	calls sync.Map // function -> *atomic.Int64
}

func (g *goSteps) count(fn string) int64 {
	v, _ := g.calls.LoadOrStore(fn, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (g *goSteps) Builtin(module, function string) (abi.Function, bool, bool) {
	_, ok := g.fns[function]
	return abi.Function{Name: function, Kind: abi.KindTask, Input: abi.EncJSON, Output: abi.EncJSON}, true, ok
}

func (g *goSteps) Prepare(ctx context.Context, c Call) (func([]byte) ([]byte, error), error) {
	f := g.fns[c.Step.Function]
	return func(in []byte) ([]byte, error) {
		v, _ := g.calls.LoadOrStore(c.Step.Function, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return f(ctx, in)
	}, nil
}

func (g *goSteps) Compile(ctx context.Context, c Call) (func(context.Context, []byte) ([]byte, error), error) {
	run, err := g.Prepare(ctx, c)
	return func(_ context.Context, in []byte) ([]byte, error) { return run(in) }, err
}

func (g *goSteps) Pipeline(context.Context, Call, map[string][]byte, func(string)) ([]byte, error) {
	return nil, errors.New("no pipelines here")
}

const mapDoc = `{"version": 1, "name": "squares",
  "steps": [
    {"id": "a", "module": "builtin:go", "function": "three"},
    {"id": "b", "module": "builtin:go", "function": "square", "map": [1, 2, 3], "args": "${item}"},
    {"id": "c", "module": "builtin:go", "function": "sum", "args": {"a": "${a}", "b": "${b}"}}
  ],
  "output": "${c}"}`

// TestManager_ResumesFromCheckpoints stops a node while one element of a map step is running,
// and checks a second node over the same store finishes the workflow without running again the
// step and the elements that had finished.
func TestManager_ResumesFromCheckpoints(t *testing.T) {
	store := &memStore{kv: map[string][]byte{}}
	release := make(chan struct{})
	steps := &goSteps{fns: map[string]func(context.Context, []byte) ([]byte, error){
		"three": func(context.Context, []byte) ([]byte, error) { return []byte("3"), nil },
		"square": func(ctx context.Context, in []byte) ([]byte, error) {
			var n int
			json.Unmarshal(in, &n)
			if n == 3 {
				select { // element 3 blocks until the test lets it go (or its node stops)
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return json.Marshal(n * n)
		},
		"sum": func(_ context.Context, in []byte) ([]byte, error) {
			var v struct {
				A int   `json:"a"`
				B []int `json:"b"`
			}
			if err := json.Unmarshal(in, &v); err != nil {
				return nil, err
			}
			total := v.A
			for _, x := range v.B {
				total += x
			}
			return json.Marshal(total)
		},
	}}
	ctx1, stop1 := context.WithCancel(context.Background())
	var wg1 sync.WaitGroup
	m1 := New(Deps{Ctx: ctx1, WG: &wg1, NodeID: "n1", Store: store, Steps: steps})
	id, err := m1.Submit(context.Background(), []byte(mapDoc), "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := m1.Get(id)
		if st.Steps[1].ItemsRan == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("elements 1 and 2 did not finish: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop1() // the node closes mid-step
	wg1.Wait()
	if st, _ := m1.Stored(id); st.State != Running {
		t.Fatalf("stored state after the node closed: %q, want running", st.State)
	}

	close(release)
	var wg2 sync.WaitGroup
	m2 := New(Deps{Ctx: context.Background(), WG: &wg2, NodeID: "n1", Store: store, Steps: steps})
	if err := m2.Resume(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m2.Result(rctx, id)
	if err != nil || string(out) != "17" { // 3 + 1 + 4 + 9
		t.Fatalf("result %s, %v; want 17", out, err)
	}
	if n := steps.count("three"); n != 1 {
		t.Errorf("step a ran %d times, want 1: its checkpoint was not used", n)
	}
	if n := steps.count("square"); n != 4 {
		t.Errorf("map elements ran %d times, want 4 (3 elements, the interrupted one twice)", n)
	}
	st, _ := m2.Get(id)
	if st.Resumed != 1 || st.Steps[0].Runs != 1 {
		t.Errorf("status after resume: %+v", st)
	}
}

// TestManager_OwnerLost checks a node that lost a workflow to another (its owner key changed)
// stops running it instead of writing over the new owner's checkpoints.
func TestManager_OwnerLost(t *testing.T) {
	store := &memStore{kv: map[string][]byte{}}
	gate := make(chan struct{})
	steps := &goSteps{fns: map[string]func(context.Context, []byte) ([]byte, error){
		"three": func(ctx context.Context, _ []byte) ([]byte, error) {
			<-gate
			return []byte("3"), nil
		},
	}}
	var wg sync.WaitGroup
	m := New(Deps{Ctx: context.Background(), WG: &wg, NodeID: "n1", Store: store, Steps: steps})
	id, err := m.Submit(context.Background(), []byte(`{"version": 1, "name": "one", "steps": [{"id": "a", "module": "builtin:go", "function": "three"}], "output": "${a}"}`), "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	store.PutMany(map[string][]byte{Key(id, "owner"): []byte("n2")}) // the leader gave it to n2
	close(gate)
	wg.Wait() // the run stops by itself
	if _, err := store.Get(Key(id, "out/a")); err == nil {
		t.Fatal("the node that lost the workflow wrote a step's checkpoint")
	}
	// It neither ended the workflow nor answers for it on its own: the stored state (n2's)
	// says running.
	st, err := m.Get(id)
	if err != nil || st.State != Running || st.Node != "n2" {
		t.Fatalf("status on the node that lost it: %+v, %v; want running on n2", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Result(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("result on the node that lost it: %v; want to wait for n2", err)
	}
}

// laggingStore is one node's view of the replicated state after a restart: its reads see the
// state it had applied when it stopped (view) until it catches up (Linearize, or a write of its
// own that commits); its writes are decided on the cluster's state (live), as raft decides them
// on the leader, and a write refused leaves the view behind.
type laggingStore struct {
	live *memStore
	mu   sync.Mutex
	view *memStore // nil once caught up
}

func (s *laggingStore) reads() *memStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view != nil {
		return s.view
	}
	return s.live
}

func (s *laggingStore) catchUp() {
	s.mu.Lock()
	s.view = nil
	s.mu.Unlock()
}

func (s *laggingStore) Get(key string) ([]byte, error) { return s.reads().Get(key) }
func (s *laggingStore) Scan(prefix string, fn func(string, []byte) error) error {
	return s.reads().Scan(prefix, fn)
}
func (s *laggingStore) PutMany(kv map[string][]byte) error { return s.PutManyIf(kv) }
func (s *laggingStore) PutManyIf(kv map[string][]byte, conds ...raftstore.Cond) error {
	if err := s.live.PutManyIf(kv, conds...); err != nil {
		return err
	}
	s.catchUp()
	return nil
}
func (s *laggingStore) Linearize(context.Context) error {
	s.catchUp()
	return nil
}

func (s *memStore) clone() *memStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &memStore{kv: map[string][]byte{}}
	for k, v := range s.kv {
		c.kv[k] = bytes.Clone(v)
	}
	return c
}

const chainDoc = `{"version": 1, "name": "chain", "steps": [
  {"id": "a", "module": "builtin:go", "function": "a"},
  {"id": "b", "module": "builtin:go", "function": "b", "args": "${a}"},
  {"id": "c", "module": "builtin:go", "function": "c", "args": "${b}"}],
  "output": "${c}"}`

// chainSteps runs chainDoc: a gives 1, b adds 10, c adds 100. b's first run blocks until its
// node stops; its later runs return at once.
func chainSteps() *goSteps {
	var bRuns atomic.Int64
	add := func(n int) func(context.Context, []byte) ([]byte, error) {
		return func(_ context.Context, in []byte) ([]byte, error) {
			var x int
			json.Unmarshal(in, &x)
			return json.Marshal(x + n)
		}
	}
	return &goSteps{fns: map[string]func(context.Context, []byte) ([]byte, error){
		"a": add(1),
		"b": func(ctx context.Context, in []byte) ([]byte, error) {
			if bRuns.Add(1) == 1 {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return add(10)(ctx, in)
		},
		"c": add(100),
	}}
}

// waitFor polls get until ok says so, or fails the test after 10 s.
func waitFor(t *testing.T, what string, get func() (Status, error), ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := get()
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last status %+v, %v", what, st, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestManager_RestartAfterAdoptionFollowsTheAdopter: n1 runs a workflow and stops mid-step; n2
// adopts it and finishes it; n1 restarts with the state it had applied when it stopped (its
// workflow, it believes, still running and its own). n1 must not run any step again, must not
// end the workflow (the finding: it answered "cancelled" while n2 answered "succeeded", and ran
// a finished step a second time), and must answer exactly what n2 answers.
func TestManager_RestartAfterAdoptionFollowsTheAdopter(t *testing.T) {
	live := &memStore{kv: map[string][]byte{}}
	steps := chainSteps()
	ctx1, stop1 := context.WithCancel(context.Background())
	var wg1 sync.WaitGroup
	n1 := New(Deps{Ctx: ctx1, WG: &wg1, NodeID: "n1", Store: live, Steps: steps})
	id, err := n1.Submit(context.Background(), []byte(chainDoc), "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a done, b running", func() (Status, error) { return n1.Get(id) }, func(st Status) bool {
		return st.Steps[0].State == StepDone && st.Steps[1].State == StepRunning
	})
	stop1() // n1 dies mid-step b
	wg1.Wait()
	atDeath := live.clone() // what n1 had applied

	var wg2 sync.WaitGroup
	n2 := New(Deps{Ctx: context.Background(), WG: &wg2, NodeID: "n2", Store: live, Steps: steps})
	n2.Adopt("n1")
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want, err := n2.Result(rctx, id)
	if err != nil || string(want) != "111" {
		t.Fatalf("adopter's result %s, %v; want 111", want, err)
	}
	wg2.Wait()
	final, _ := live.Get(Key(id, "meta"))

	var wg1b sync.WaitGroup
	n1b := New(Deps{Ctx: context.Background(), WG: &wg1b, NodeID: "n1", Store: &laggingStore{live: live, view: atDeath}, Steps: steps})
	if err := n1b.Resume(); err != nil {
		t.Fatal(err)
	}
	got, err := n1b.Result(rctx, id)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("restarted old owner's result %s, %v; the adopter's: %s", got, err, want)
	}
	wg1b.Wait()
	st1, err1 := n1b.Get(id)
	st2, err2 := n2.Get(id)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	j1, _ := json.Marshal(st1)
	j2, _ := json.Marshal(st2)
	if !bytes.Equal(j1, j2) || st1.State != Succeeded || st1.Node != "n2" {
		t.Errorf("the nodes answer differently:\nrestarted n1: %s\nadopter n2:   %s", j1, j2)
	}
	if after, _ := live.Get(Key(id, "meta")); !bytes.Equal(after, final) {
		t.Errorf("the restarted old owner rewrote the finished workflow's status:\n%s\nwas\n%s", after, final)
	}
	for fn, n := range map[string]int64{"a": 1, "b": 2, "c": 1} { // b: cut off on n1, then on n2
		if got := steps.count(fn); got != n {
			t.Errorf("step %s ran %d times, want %d", fn, got, n)
		}
	}
}

// TestManager_AnyNodeAnswersAndCancels: a workflow run by n1 is read, waited for and cancelled
// through n2, which runs nothing of it.
func TestManager_AnyNodeAnswersAndCancels(t *testing.T) {
	store := &memStore{kv: map[string][]byte{}}
	release := make(chan struct{})
	steps := &goSteps{fns: map[string]func(context.Context, []byte) ([]byte, error){
		"three": func(ctx context.Context, _ []byte) ([]byte, error) {
			select {
			case <-release:
				return []byte("3"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}}
	var wg1, wg2 sync.WaitGroup
	n1 := New(Deps{Ctx: context.Background(), WG: &wg1, NodeID: "n1", Store: store, Steps: steps})
	elsewhere := &goSteps{fns: steps.fns} // what n2 runs, counted apart
	n2 := New(Deps{Ctx: context.Background(), WG: &wg2, NodeID: "n2", Store: store, Steps: elsewhere})
	doc := []byte(`{"version": 1, "name": "one", "steps": [{"id": "a", "module": "builtin:go", "function": "three"}], "output": "${a}"}`)
	done, err := n1.Submit(context.Background(), doc, "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := n1.Submit(context.Background(), doc, "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := n2.Get(done)
	if err != nil || st.ID != done || st.State != Running || st.Node != "n1" {
		t.Fatalf("n2's answer for n1's workflow: %+v, %v", st, err)
	}
	if l := n2.List(); len(l) != 2 {
		t.Fatalf("n2 lists %d workflows, want 2", len(l))
	}
	if _, err := n2.Get("wf-nope"); !errors.As(err, new(*abi.Error)) || err.(*abi.Error).Kind != abi.KindNotFound {
		t.Fatalf("unknown workflow: %v, want not found", err)
	}
	if err := n2.Cancel(cancelled); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n2.Result(ctx, cancelled); !errors.As(err, new(*abi.Error)) || err.(*abi.Error).Kind != abi.KindCancelled {
		t.Fatalf("cancelled through n2: %v", err)
	}
	close(release)
	out, err := n2.Result(ctx, done)
	if err != nil || string(out) != "3" {
		t.Fatalf("n2 waited for n1's workflow: %s, %v", out, err)
	}
	for _, id := range []string{done, cancelled} {
		a, _ := n1.Get(id)
		b, _ := n2.Get(id)
		if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
			t.Errorf("%s: n1 answers %s, n2 %s", id, ja, jb)
		}
	}
	if n := elsewhere.count("three"); n != 0 {
		t.Errorf("n2 ran %d steps of n1's workflows", n)
	}
	wg1.Wait()
	wg2.Wait()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
