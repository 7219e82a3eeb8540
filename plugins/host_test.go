package plugins

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// These tests run the registry on the real inspector, host.Runtime, with the host's own test
// guests (host/testdata, built from the .wat beside each .wasm) and the guests built here.

var hostGuests = filepath.Join("..", "host", "testdata")

func newRuntime(t testing.TB) *host.Runtime {
	t.Helper()
	rt, err := host.New(context.Background(), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// countingInspector counts the inspections it passes on.
type countingInspector struct {
	Inspector
	calls atomic.Int64
}

func (c *countingInspector) Inspect(ctx context.Context, wasm []byte) (*abi.ModuleInfo, error) {
	c.calls.Add(1)
	return c.Inspector.Inspect(ctx, wasm)
}

func readGuest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostGuests, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostRuntime_RegistersAndReloadsItsGuests(t *testing.T) {
	dir := t.TempDir()
	rt := newRuntime(t)
	r := open(t, dir, rt)
	files := []string{"good.wasm", "hostcall.wasm", "nested.wasm", "sys.wasm", "hostile.wasm"}
	added := map[string]*Module{}
	for _, f := range files {
		wasm := readGuest(t, f)
		name := strings.TrimSuffix(f, ".wasm")
		m := mustAdd(t, r, wasm, AddOptions{Name: name, Version: "1.0.0"})
		info, err := rt.Inspect(context.Background(), wasm)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Info, *info) || !reflect.DeepEqual(m.Manifest, *info.Manifest) {
			t.Fatalf("%s: registered info differs from the runtime's:\n%+v\n%+v", f, m.Info, *info)
		}
		if m.Digest != host.Digest(wasm) {
			t.Fatalf("%s: digest %s, the runtime's is %s", f, m.Digest, host.Digest(wasm))
		}
		added[name] = m
	}
	before := r.List()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// A new runtime: reopening reads what was stored and inspects nothing.
	insp := &countingInspector{Inspector: newRuntime(t)}
	r = open(t, dir, insp)
	if after := r.List(); !reflect.DeepEqual(after, before) {
		t.Fatalf("List after reopen differs:\n%v\n%v", refs(after), refs(before))
	}
	for _, f := range files {
		name := strings.TrimSuffix(f, ".wasm")
		m, err := r.Resolve(name)
		if err != nil || !reflect.DeepEqual(m, added[name]) {
			t.Fatalf("Resolve(%s) after reopen: %v", name, err)
		}
		if b, err := r.Bytes(m.Digest); err != nil || !slices.Equal(b, readGuest(t, f)) {
			t.Fatalf("Bytes(%s) after reopen: %v", name, err)
		}
	}
	if n := insp.calls.Load(); n != 0 {
		t.Fatalf("reopen inspected %d modules", n)
	}
	// Adding one again is idempotent and does not inspect either.
	if m := mustAdd(t, r, readGuest(t, "good.wasm"), AddOptions{}); m.Digest != added["good"].Digest {
		t.Fatal("re-Add after reopen gave another module")
	}
	if n := insp.calls.Load(); n != 0 {
		t.Fatalf("re-Add inspected %d times", n)
	}
}

// TestHostRuntime_RefusesBadGuests adds every guest the host refuses at compile time, on disk, and checks each is
// refused with a registry error and that nothing of them is in the store after a reopen.
func TestHostRuntime_RefusesBadGuests(t *testing.T) {
	dir := t.TempDir()
	rt := newRuntime(t)
	r := open(t, dir, rt)
	bad, err := filepath.Glob(filepath.Join(hostGuests, "bad", "*.wasm"))
	if err != nil || len(bad) == 0 {
		t.Fatalf("no bad guests in %s: %v", hostGuests, err)
	}
	for _, path := range bad {
		switch filepath.Base(path) {
		case "bad_alloc.wasm", "big_memory.wasm":
			continue // well formed; they fail only when called
		}
		wasm, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Add(context.Background(), wasm, AddOptions{Name: "bad", Version: "1.0.0"})
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotWasm) {
			t.Errorf("%s: Add = %v, want ErrInvalid or ErrNotWasm", filepath.Base(path), err)
		}
		if filepath.Base(path) == "undeclared_cap.wasm" && (err == nil || !strings.Contains(err.Error(), "lumen.object_put") || !strings.Contains(err.Error(), `"objects"`)) {
			t.Errorf("undeclared_cap.wasm: %v does not name the import and its capability", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, dir, rt)
	if got := storeKeys(t, r); !slices.Equal(got, []string{formatKey}) {
		t.Fatalf("store after refused Adds: %v", got)
	}
}

// TestHostRuntime_AgreesWithTheTestInspector checks the test double against the real inspector:
// for the guests built here, both find the same exports, imports and manifest.
func TestHostRuntime_AgreesWithTheTestInspector(t *testing.T) {
	rt := newRuntime(t)
	withCaps := taskGuest("caps", abi.FnLog, abi.FnObjectPut, abi.FnTaskSubmit, abi.FnActorCall)
	withCaps.manifest.Capabilities = []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}
	for _, g := range []guest{taskGuest(""), taskGuest("log", abi.FnLog, abi.FnError), withCaps} {
		got, err := rt.Inspect(context.Background(), g.wasm())
		if err != nil {
			t.Fatal(err)
		}
		want := g.info()
		byName := func(a, b abi.Export) int { return cmp.Compare(a.Name, b.Name) }
		gotExports := slices.SortedFunc(slices.Values(got.Exports), byName)
		wantExports := slices.SortedFunc(slices.Values(want.Exports), byName)
		if !reflect.DeepEqual(gotExports, wantExports) || !reflect.DeepEqual(got.Imports, want.Imports) ||
			!reflect.DeepEqual(got.Manifest, want.Manifest) || got.MemoryMinPages != want.MemoryMinPages {
			t.Fatalf("guest %v: runtime found\n%+v\ntest inspector says\n%+v", g.imports, got, want)
		}
	}
	// And the golden guest is the first of those.
	golden, err := os.ReadFile(filepath.Join("testdata", "guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Inspect(context.Background(), golden); err != nil {
		t.Fatalf("testdata/guest.wasm: %v", err)
	}
}
