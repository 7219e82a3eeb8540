package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// mapStore is a Store shared by several registries, as the cluster's replicated state is: each
// Update checks its conditions and applies its writes atomically.
type mapStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	version uint64
}

type mapWriter struct {
	sets           [][2][]byte
	dels           [][]byte
	absent, exists [][]byte
}

func (w *mapWriter) Set(k, v []byte)        { w.sets = append(w.sets, [2][]byte{k, bytes.Clone(v)}) }
func (w *mapWriter) Delete(k []byte)        { w.dels = append(w.dels, k) }
func (w *mapWriter) RequireAbsent(k []byte) { w.absent = append(w.absent, k) }
func (w *mapWriter) RequireExists(k []byte) { w.exists = append(w.exists, k) }

type mapReader map[string][]byte

func (r mapReader) Get(k []byte) ([]byte, error) {
	v, ok := r[string(k)]
	if !ok {
		return nil, fmt.Errorf("%w: key %q", ErrNotFound, k)
	}
	return bytes.Clone(v), nil
}

func (r mapReader) Scan(prefix []byte, fn func(k, v []byte) error) error {
	var keys []string
	for k := range r {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), bytes.Clone(r[k])); err != nil {
			return err
		}
	}
	return nil
}

func (s *mapStore) View(fn func(StoreReader) error) error {
	s.mu.Lock()
	snap := mapReader{}
	for k, v := range s.m {
		snap[k] = v
	}
	s.mu.Unlock()
	return fn(snap)
}

func (s *mapStore) Update(_ context.Context, fn func(StoreWriter) error) error {
	w := &mapWriter{}
	if err := fn(w); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range w.absent {
		if _, ok := s.m[string(k)]; ok {
			return fmt.Errorf("%w: %q exists", ErrConflict, k)
		}
	}
	for _, k := range w.exists {
		if _, ok := s.m[string(k)]; !ok {
			return fmt.Errorf("%w: %q is missing", ErrConflict, k)
		}
	}
	for _, kv := range w.sets {
		s.m[string(kv[0])] = kv[1]
	}
	for _, k := range w.dels {
		delete(s.m, string(k))
	}
	s.version++
	return nil
}

func (s *mapStore) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func TestRegistry_SharedStoreSeenByEveryRegistry(t *testing.T) {
	st := &mapStore{m: map[string][]byte{}}
	insp := newFakeInspector()
	open := func() *Registry {
		r, err := Open(context.Background(), Config{Store: st, Inspector: insp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := open(), open()
	ctx := context.Background()
	m, err := a.Add(ctx, insp.add(taskGuest("one")), AddOptions{Name: "one", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	// b sees a's module, by digest and by name, with its bytes.
	got, err := b.Resolve("one@1.0.0")
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("b.Resolve = %v, %v", got, err)
	}
	if _, err := b.Bytes(m.Digest); err != nil {
		t.Fatal(err)
	}
	// A version bound on one registry cannot be rebound to other bytes on the other.
	if _, err := b.Add(ctx, insp.add(taskGuest("two")), AddOptions{Name: "one", Version: "1.0.0"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("rebinding through b: %v", err)
	}
	// Two registries racing to bind the same name@version to different bytes: one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []*Registry{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Add(ctx, insp.add(taskGuest(fmt.Sprintf("race%d", i))), AddOptions{Name: "race", Version: "1.0.0"})
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("racing binds: %v / %v; want exactly one to win", errs[0], errs[1])
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, ErrConflict) {
			t.Fatalf("losing bind: %v, want ErrConflict", e)
		}
	}
	// A delete on b is seen by a.
	if err := b.Delete(ctx, m.Digest, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve("one@1.0.0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a.Resolve after b's delete: %v", err)
	}
	if len(a.List()) != len(b.List()) {
		t.Fatalf("a lists %d modules, b %d", len(a.List()), len(b.List()))
	}
}
