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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Result(ctx, id); err == nil {
		t.Fatal("the node that lost the workflow finished it")
	}
	if _, err := store.Get(Key(id, "out/a")); err == nil {
		t.Fatal("the node that lost the workflow wrote a step's checkpoint")
	}
	wg.Wait()
}
