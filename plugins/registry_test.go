package plugins

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lumenflow/lumen/sdk/abi"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite testdata/guest.wasm")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testMax = 256 << 10

// open opens a registry in dir ("" for memory) and closes it when the test ends.
func open(t testing.TB, dir string, insp Inspector) *Registry {
	t.Helper()
	return openCfg(t, Config{Dir: dir, MaxModuleBytes: testMax, Inspector: insp})
}

func openCfg(t testing.TB, cfg Config) *Registry {
	t.Helper()
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustAdd(t testing.TB, r *Registry, wasm []byte, opts AddOptions) *Module {
	t.Helper()
	m, err := r.Add(context.Background(), wasm, opts)
	if err != nil {
		t.Fatalf("Add(%+v): %v", opts, err)
	}
	return m
}

// storeKeys lists every key badger holds, sorted.
func storeKeys(t testing.TB, r *Registry) []string {
	t.Helper()
	var keys []string
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().KeyCopy(nil)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func refs(ms []*Module) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Ref()
	}
	return out
}

func TestGuestGolden(t *testing.T) {
	got := taskGuest("").wasm()
	path := filepath.Join("testdata", "guest.wasm")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the encoded guest; rerun with -update and review the diff", path)
	}
}

func TestRegistry_AddResolveListBytes(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	g := taskGuest("a", abi.FnLog)
	wasm := insp.add(g)
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }

	m := mustAdd(t, r, wasm, AddOptions{Name: "echo", Version: "1.0.0", Description: "echoes"})
	want := &Module{
		Digest:      digestOf(wasm),
		Size:        int64(len(wasm)),
		Name:        "echo",
		Version:     "1.0.0",
		Names:       []string{"echo@1.0.0"},
		Description: "echoes",
		Manifest:    g.manifest,
		Info:        *g.info(),
		Created:     now,
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Add returned\n%+v\nwant\n%+v", m, want)
	}
	for _, ref := range []string{want.Digest, "echo@1.0.0", "echo"} {
		got, err := r.Resolve(ref)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Resolve(%q) = %+v, want %+v", ref, got, want)
		}
	}
	if got := r.List(); !reflect.DeepEqual(got, []*Module{want}) {
		t.Fatalf("List() = %+v", got)
	}
	b, err := r.Bytes(want.Digest)
	if err != nil || !bytes.Equal(b, wasm) {
		t.Fatalf("Bytes = %d bytes, %v; want the module", len(b), err)
	}

	for ref, wantErr := range map[string]error{
		"sha256:" + strings.Repeat("0", 64): ErrNotFound,
		"other":                             ErrNotFound,
		"echo@2.0.0":                        ErrNotFound,
		"sha256:abc":                        ErrInvalid,
		"Echo":                              ErrInvalid,
		"echo@1.0":                          ErrInvalid,
	} {
		if _, err := r.Resolve(ref); !errors.Is(err, wantErr) {
			t.Errorf("Resolve(%q) = %v, want %v", ref, err, wantErr)
		}
	}
	if _, err := r.Resolve("echo@2.0.0"); err == nil || !strings.Contains(err.Error(), "1.0.0") {
		t.Errorf("Resolve of a missing version should list the versions there are: %v", err)
	}
	if _, err := r.Bytes("sha256:" + strings.Repeat("1", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Bytes of an unknown digest: %v", err)
	}
}

func TestRegistry_ModuleIsTheCallersCopy(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	g := taskGuest("a", abi.FnObjectPut)
	g.manifest.Capabilities = []abi.Capability{abi.CapObjects}
	m := mustAdd(t, r, insp.add(g), AddOptions{Name: "a", Version: "1.0.0",
		Resources: &abi.Resources{CPU: 1, Custom: map[string]float64{"tpu": 1}}})
	before, _ := r.Resolve(m.Digest)
	m.Manifest.Functions[0].Name = "changed"
	m.Manifest.Capabilities[0] = "changed"
	m.Manifest.Resources.Custom["tpu"] = 9
	m.Info.Exports[0].Sig.Params = append(m.Info.Exports[0].Sig.Params, abi.F64)
	m.Info.Imports[0].Sig.Params[0] = abi.F64
	m.Info.Manifest.Functions[0].Name = "changed"
	m.Names[0] = "changed"
	after, _ := r.Resolve(m.Digest)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("changing a returned Module changed the registry:\n%+v\n%+v", before, after)
	}
}

func TestRegistry_ReAddIsIdempotent(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	g := taskGuest("a", abi.FnTaskSubmit)
	g.manifest.Capabilities = []abi.Capability{abi.CapTasks}
	wasm := insp.add(g)
	first := mustAdd(t, r, wasm, AddOptions{Description: "d"})
	if first.Name != "" || first.Names != nil {
		t.Fatalf("unnamed Add gave a name: %+v", first)
	}
	again := mustAdd(t, r, wasm, AddOptions{})
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("re-Add = %+v, want %+v", again, first)
	}
	again = mustAdd(t, r, wasm, AddOptions{Description: "d"})
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("re-Add with the same options = %+v, want %+v", again, first)
	}
	if n := insp.calls.Load(); n != 1 {
		t.Fatalf("inspected %d times, want once", n)
	}

	// A re-add may name the module; its first name becomes Name.
	named := mustAdd(t, r, wasm, AddOptions{Name: "sub", Version: "0.2.0"})
	named = mustAdd(t, r, wasm, AddOptions{Name: "sub", Version: "0.2.0"})
	mustAdd(t, r, wasm, AddOptions{Name: "alias", Version: "1.0.0"})
	got, _ := r.Resolve(first.Digest)
	if got.Name != "sub" || got.Version != "0.2.0" || !slices.Equal(got.Names, []string{"alias@1.0.0", "sub@0.2.0"}) {
		t.Fatalf("after naming: %+v (re-add returned %+v)", got, named)
	}
	if got, _ := r.Resolve("alias"); got.Name != "alias" || got.Digest != first.Digest {
		t.Fatalf("Resolve(alias) = %+v", got)
	}
	if n := len(r.List()); n != 1 {
		t.Fatalf("List has %d modules, want 1", n)
	}

	// Options that would change the registered manifest are refused, not ignored.
	for _, opts := range []AddOptions{
		{Resources: &abi.Resources{CPU: 2}},
		{Description: "other"},
	} {
		if _, err := r.Add(context.Background(), wasm, opts); !errors.Is(err, ErrConflict) {
			t.Errorf("re-Add with %+v: %v, want ErrConflict", opts, err)
		}
	}
}

func TestRegistry_NamesAndVersions(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	digests := map[string]string{}
	for _, v := range []string{"1.2.0", "1.10.0", "1.9.3", "2.0.0-rc.1", "1.10.0-rc.2", "0.9.0"} {
		m := mustAdd(t, r, insp.add(taskGuest(v)), AddOptions{Name: "tool", Version: v})
		digests[v] = m.Digest
	}
	m, err := r.Resolve("tool")
	if err != nil || m.Version != "1.10.0" || m.Digest != digests["1.10.0"] {
		t.Fatalf("Resolve(tool) = %+v, %v; want the highest release 1.10.0", m, err)
	}
	m, _ = r.Resolve("tool@2.0.0-rc.1")
	if m.Digest != digests["2.0.0-rc.1"] || m.Name != "tool" || m.Version != "2.0.0-rc.1" {
		t.Fatalf("Resolve(tool@2.0.0-rc.1) = %+v", m)
	}

	// Only pre-releases: the highest of them.
	mustAdd(t, r, insp.add(taskGuest("p1")), AddOptions{Name: "pre", Version: "1.0.0-alpha"})
	mustAdd(t, r, insp.add(taskGuest("p2")), AddOptions{Name: "pre", Version: "1.0.0-beta.2"})
	mustAdd(t, r, insp.add(taskGuest("p3")), AddOptions{Name: "pre", Version: "1.0.0-beta.11"})
	if m, _ := r.Resolve("pre"); m.Version != "1.0.0-beta.11" {
		t.Fatalf("Resolve(pre) = %s, want 1.0.0-beta.11", m.Version)
	}

	// A bound version never moves.
	_, err = r.Add(context.Background(), insp.add(taskGuest("new")), AddOptions{Name: "tool", Version: "1.2.0"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "tool@1.2.0") || !strings.Contains(err.Error(), digests["1.2.0"]) {
		t.Fatalf("re-binding tool@1.2.0: %v", err)
	}
	if got, _ := r.Resolve("tool@1.2.0"); got.Digest != digests["1.2.0"] {
		t.Fatal("tool@1.2.0 moved")
	}
	if err := r.Tag(digests["0.9.0"], "tool", "1.2.0"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Tag over a bound version: %v", err)
	}

	// Tag binds more names; the same binding again is a no-op.
	if err := r.Tag(digests["0.9.0"], "legacy", "0.9.0"); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(digests["0.9.0"], "legacy", "0.9.0"); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Resolve("legacy"); m.Digest != digests["0.9.0"] || !slices.Equal(m.Names, []string{"legacy@0.9.0", "tool@0.9.0"}) {
		t.Fatalf("Resolve(legacy) = %+v", m)
	}
	for _, c := range []struct{ digest, name, version string }{
		{"sha256:" + strings.Repeat("0", 64), "x", "1.0.0"},
		{digests["0.9.0"], "Bad", "1.0.0"},
		{digests["0.9.0"], "x", "v1"},
		{"0.9.0", "x", "1.0.0"},
	} {
		if err := r.Tag(c.digest, c.name, c.version); err == nil {
			t.Errorf("Tag(%q, %q, %q) succeeded", c.digest, c.name, c.version)
		}
	}

	// List: named modules by name then version, unnamed ones by digest.
	un1 := mustAdd(t, r, insp.add(taskGuest("u1")), AddOptions{})
	un2 := mustAdd(t, r, insp.add(taskGuest("u2")), AddOptions{})
	unnamed := []string{un1.Digest, un2.Digest}
	slices.Sort(unnamed)
	want := append([]string{"pre@1.0.0-alpha", "pre@1.0.0-beta.2", "pre@1.0.0-beta.11",
		"tool@0.9.0", "tool@1.2.0", "tool@1.9.3", "tool@1.10.0-rc.2", "tool@1.10.0", "tool@2.0.0-rc.1"}, unnamed...)
	if got := refs(r.List()); !slices.Equal(got, want) {
		t.Fatalf("List() = %v\nwant %v", got, want)
	}
}

func TestRegistry_AddRefusesBadNames(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	wasm := insp.add(taskGuest("a"))
	for _, opts := range []AddOptions{
		{Name: "x"},
		{Version: "1.0.0"},
		{Name: "X", Version: "1.0.0"},
		{Name: "-x", Version: "1.0.0"},
		{Name: "x.y", Version: "1.0.0"},
		{Name: strings.Repeat("x", 65), Version: "1.0.0"},
		{Name: "x", Version: "1.0"},
		{Name: "x", Version: "01.0.0"},
		{Name: "x", Version: "1.0.0+build"},
		{Name: "x", Version: "1.0.0-"},
		{Resources: &abi.Resources{CPU: -1}},
		{Description: strings.Repeat("d", MaxDescriptionLen+1)},
		{Description: "\xff"},
	} {
		if _, err := r.Add(context.Background(), wasm, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%+v) = %v, want ErrInvalid", opts, err)
		}
	}
	if n := insp.calls.Load(); n != 0 {
		t.Errorf("bad options reached the inspector %d times", n)
	}
	mustAdd(t, r, wasm, AddOptions{Name: strings.Repeat("x", 64), Version: "0.0.0-0.a-b.C"})
}

func TestRegistry_CapabilityCheckNamesImportAndCapability(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	g := taskGuest("a", abi.FnLog, abi.FnObjectPut, abi.FnTaskSubmit)
	wasm := insp.add(g)
	_, err := r.Add(context.Background(), wasm, AddOptions{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add without capabilities: %v, want ErrInvalid", err)
	}
	for _, s := range []string{`lumen.object_put needs capability "objects"`, `lumen.task_submit needs capability "tasks"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "lumen.log") {
		t.Errorf("error %q names lumen.log, which needs no capability", err)
	}
	g.manifest.Capabilities = []abi.Capability{abi.CapObjects}
	if _, err := r.Add(context.Background(), insp.add(g), AddOptions{}); err == nil ||
		strings.Contains(err.Error(), "object_put") || !strings.Contains(err.Error(), "task_submit") {
		t.Fatalf("Add with objects only: %v", err)
	}

	// Requesting both in the guest's manifest is what it takes.
	g.manifest.Capabilities = []abi.Capability{abi.CapTasks, abi.CapObjects}
	m := mustAdd(t, r, insp.add(g), AddOptions{})
	if want := []abi.Capability{abi.CapTasks, abi.CapObjects}; !slices.Equal(m.Manifest.Capabilities, want) {
		t.Fatalf("capabilities %v, want %v", m.Manifest.Capabilities, want)
	}
	res := abi.Resources{CPU: 0.5, MemoryBytes: 1 << 20}
	g.note = "res"
	g.manifest.Resources = abi.Resources{CPU: 4}
	m = mustAdd(t, r, insp.add(g), AddOptions{Resources: &res})
	if !reflect.DeepEqual(m.Manifest.Resources, res) || m.Info.Manifest.Resources.CPU != 4 {
		t.Fatalf("resources: effective %+v, guest %+v", m.Manifest.Resources, m.Info.Manifest.Resources)
	}
}

// TestRegistry_RefusedAddPersistsNothing tries every way an Add can be refused, against a store on
// disk that already holds a module, and checks the store after reopening holds exactly what it
// held before.
func TestRegistry_RefusedAddPersistsNothing(t *testing.T) {
	dir := t.TempDir()
	insp := newFakeInspector()
	r := open(t, dir, insp)
	kept := mustAdd(t, r, insp.add(taskGuest("kept")), AddOptions{Name: "kept", Version: "1.0.0"})
	keysBefore := storeKeys(t, r)

	valid := taskGuest("").wasm()
	badShape := taskGuest("shape").wasm()
	mi := taskGuest("shape").info()
	mi.Exports = mi.Exports[1:]
	insp.set(badShape, mi)
	forbidden := taskGuest("forbidden").wasm()
	mi = taskGuest("forbidden").info()
	mi.Imports = []abi.Import{{Module: "env", Name: "open", Sig: abi.Signature{Params: []abi.ValType{abi.I32}, Results: []abi.ValType{abi.I32}}}}
	insp.set(forbidden, mi)
	badManifest := taskGuest("manifest").wasm()
	mi = taskGuest("manifest").info()
	mi.Manifest.Functions = append(mi.Manifest.Functions, mi.Manifest.Functions[0])
	insp.set(badManifest, mi)
	noManifest := taskGuest("nomanifest").wasm()
	mi = taskGuest("nomanifest").info()
	mi.Manifest = nil
	insp.set(noManifest, mi)
	compileErr := taskGuest("compile").wasm()
	insp.fail(compileErr, errors.New("compile: invalid function body"))
	needsCap := insp.add(taskGuest("cap", abi.FnActorCreate))
	oversize := append(taskGuest("").wasm(), make([]byte, testMax)...)
	conflict := insp.add(taskGuest("conflict"))

	cases := []struct {
		name string
		wasm []byte
		opts AddOptions
		err  error
		msg  string
	}{
		{"empty", nil, AddOptions{}, ErrNotWasm, "empty"},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00\x00"), AddOptions{}, ErrNotWasm, "not a WebAssembly module"},
		{"text", []byte("(module)"), AddOptions{}, ErrNotWasm, "not a WebAssembly module"},
		{"truncated magic", valid[:3], AddOptions{}, ErrNotWasm, "truncated"},
		{"truncated version", valid[:6], AddOptions{}, ErrNotWasm, "truncated"},
		{"version 2", append([]byte("\x00asm\x02\x00\x00\x00"), valid[8:]...), AddOptions{}, ErrNotWasm, "version"},
		{"truncated body", valid[:len(valid)-5], AddOptions{}, ErrInvalid, "compile"},
		{"oversize", oversize, AddOptions{}, ErrTooLarge, fmt.Sprintf("%d bytes, the cap is %d", len(oversize), testMax)},
		{"compile error", compileErr, AddOptions{}, ErrInvalid, "invalid function body"},
		{"missing export", badShape, AddOptions{}, ErrInvalid, "lumen_abi_v1"},
		{"forbidden import", forbidden, AddOptions{}, ErrInvalid, "env.open"},
		{"bad manifest", badManifest, AddOptions{}, ErrInvalid, "duplicate function name"},
		{"no manifest", noManifest, AddOptions{}, ErrInvalid, "no manifest"},
		{"capability", needsCap, AddOptions{Name: "cap", Version: "1.0.0"}, ErrInvalid, `lumen.actor_create needs capability "actors"`},
		{"bad name", conflict, AddOptions{Name: "Conflict", Version: "1.0.0"}, ErrInvalid, "module name"},
		{"name conflict", conflict, AddOptions{Name: "kept", Version: "1.0.0"}, ErrConflict, kept.Digest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Add(context.Background(), c.wasm, c.opts)
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Add: %v, want %v saying %q", err, c.err, c.msg)
			}
			if got := refs(r.List()); !slices.Equal(got, []string{"kept@1.0.0"}) {
				t.Fatalf("List after a refused Add: %v", got)
			}
		})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, dir, insp)
	if got := storeKeys(t, r); !slices.Equal(got, keysBefore) {
		t.Fatalf("store keys after refused Adds and a reopen:\n%v\nwant\n%v", got, keysBefore)
	}
	if got := refs(r.List()); !slices.Equal(got, []string{"kept@1.0.0"}) {
		t.Fatalf("List after reopen: %v", got)
	}
}

func TestRegistry_InspectCancelled(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	wasm := insp.add(taskGuest("a"))
	ctx, cancel := context.WithCancel(context.Background())
	insp.hook = func(context.Context) { cancel() }
	_, err := r.Add(ctx, wasm, AddOptions{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Add with a cancelled context: %v, want context.Canceled and not ErrInvalid", err)
	}
	if len(r.List()) != 0 {
		t.Fatal("a cancelled Add registered the module")
	}
}

func TestRegistry_Delete(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	a := mustAdd(t, r, insp.add(taskGuest("a")), AddOptions{Name: "svc", Version: "1.0.0"})
	if err := r.Tag(a.Digest, "alias", "3.0.0"); err != nil {
		t.Fatal(err)
	}
	b := mustAdd(t, r, insp.add(taskGuest("b")), AddOptions{Name: "svc", Version: "1.1.0"})
	emptyKeys := []string{formatKey}

	var asked []string
	inUse := func(d string) bool { asked = append(asked, d); return true }
	err := r.Delete(context.Background(), b.Digest, inUse)
	if !errors.Is(err, ErrInUse) || !slices.Equal(asked, []string{b.Digest}) {
		t.Fatalf("Delete of a module in use: %v (asked %v)", err, asked)
	}
	if m, _ := r.Resolve("svc"); m.Digest != b.Digest {
		t.Fatal("a refused Delete removed the module")
	}

	if err := r.Delete(context.Background(), b.Digest, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if m, err := r.Resolve("svc"); err != nil || m.Digest != a.Digest {
		t.Fatalf("after deleting svc@1.1.0, Resolve(svc) = %+v, %v; want svc@1.0.0", m, err)
	}
	for _, ref := range []string{b.Digest, "svc@1.1.0"} {
		if _, err := r.Resolve(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) after Delete: %v", ref, err)
		}
	}
	if _, err := r.Bytes(b.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Bytes after Delete: %v", err)
	}
	if err := r.Delete(context.Background(), b.Digest, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if err := r.Delete(context.Background(), "svc@1.0.0", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Delete by name: %v, want ErrInvalid (a digest is required)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Delete(ctx, a.Digest, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: %v", err)
	}

	if err := r.Delete(context.Background(), a.Digest, nil); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"svc", "alias", "alias@3.0.0"} {
		if _, err := r.Resolve(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) after deleting everything: %v", ref, err)
		}
	}
	if len(r.List()) != 0 {
		t.Fatal("List not empty")
	}
	if got := storeKeys(t, r); !slices.Equal(got, emptyKeys) {
		t.Fatalf("store keys after deleting everything: %v", got)
	}
	// The name is free again.
	mustAdd(t, r, insp.add(taskGuest("c")), AddOptions{Name: "svc", Version: "1.1.0"})
}

func TestRegistry_PersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	insp := newFakeInspector()
	r := openCfg(t, Config{Dir: dir, MaxModuleBytes: 1 << 20, Inspector: insp})
	big := taskGuest("big")
	big.note = strings.Repeat("0123456789abcdef", (3*chunkSize)/16+7) // four chunks, the last short
	bigWasm := insp.add(big)
	mustAdd(t, r, bigWasm, AddOptions{Name: "big", Version: "1.0.0"})
	ag := taskGuest("a", abi.FnObjectGet)
	ag.manifest.Capabilities = []abi.Capability{abi.CapObjects}
	a := mustAdd(t, r, insp.add(ag), AddOptions{
		Name: "a", Version: "0.1.0-rc.1",
		Resources: &abi.Resources{GPU: 1, Custom: map[string]float64{"accel": 2}}, Description: "d",
	})
	if err := r.Tag(a.Digest, "a", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, r, insp.add(taskGuest("unnamed")), AddOptions{})
	gone := mustAdd(t, r, insp.add(taskGuest("gone")), AddOptions{Name: "gone", Version: "1.0.0"})
	if err := r.Delete(context.Background(), gone.Digest, nil); err != nil {
		t.Fatal(err)
	}
	before := r.List()
	keys := storeKeys(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	calls := insp.calls.Load()
	r = openCfg(t, Config{Dir: dir, MaxModuleBytes: 1 << 20, Inspector: insp})
	if after := r.List(); !reflect.DeepEqual(after, before) {
		t.Fatalf("List after reopen:\n%+v\nwant\n%+v", after, before)
	}
	if got := storeKeys(t, r); !slices.Equal(got, keys) {
		t.Fatalf("keys after reopen %v, want %v", got, keys)
	}
	if insp.calls.Load() != calls {
		t.Fatal("Open inspected modules again")
	}
	for _, m := range before {
		b, err := r.Bytes(m.Digest)
		if err != nil || digestOf(b) != m.Digest {
			t.Fatalf("Bytes(%s) after reopen: %d bytes, %v", m.Ref(), len(b), err)
		}
	}
	if m, _ := r.Resolve("a"); m.Version != "0.1.0" {
		t.Fatalf("Resolve(a) after reopen = %s", m.Version)
	}
	if _, err := r.Resolve("gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted module came back: %v", err)
	}
	if b, _ := r.Bytes(digestOf(bigWasm)); !bytes.Equal(b, bigWasm) {
		t.Fatal("big module's bytes differ after reopen")
	}
	// Still immutable after reopen.
	if _, err := r.Add(context.Background(), insp.add(taskGuest("x")), AddOptions{Name: "big", Version: "1.0.0"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("rebinding after reopen: %v", err)
	}
}

func TestRegistry_BytesDetectsCorruption(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	m := mustAdd(t, r, insp.add(taskGuest("a")), AddOptions{})
	err := r.db.Update(func(txn *badger.Txn) error {
		return txn.Set(chunkKey(binPrefix, m.Digest, 0), []byte("\x00asm\x01\x00\x00\x00"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Bytes(m.Digest); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Bytes of corrupted bytes: %v", err)
	}
}

func TestOpen_RefusesAnInconsistentStore(t *testing.T) {
	for name, kv := range map[string][2]string{
		"dangling name":   {string(nameKey("x", "1.0.0")), "sha256:" + strings.Repeat("a", 64)},
		"bad name key":    {namePrefix + "x", "sha256:" + strings.Repeat("a", 64)},
		"bad record":      {string(chunkKey(modPrefix, "sha256:"+strings.Repeat("a", 64), 0)), "{"},
		"record gap":      {string(chunkKey(modPrefix, "sha256:"+strings.Repeat("a", 64), 1)), "{}"},
		"bad record key":  {modPrefix + "sha256:" + strings.Repeat("a", 64), "{}"},
		"future format":   {formatKey, "2"},
		"misfiled record": {string(chunkKey(modPrefix, "sha256:"+strings.Repeat("a", 64), 0)), `{"digest":"sha256:` + strings.Repeat("b", 64) + `"}`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			r := open(t, dir, newFakeInspector())
			if err := r.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(kv[0]), []byte(kv[1])) }); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if r, err := Open(context.Background(), Config{Dir: dir, Inspector: newFakeInspector()}); err == nil {
				r.Close()
				t.Fatal("Open accepted the store")
			}
		})
	}
}

func TestOpen_RefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Inspector: newFakeInspector(), MaxModuleBytes: -1},
		{Inspector: newFakeInspector(), MaxModuleBytes: MaxModuleBytesLimit + 1},
	} {
		if r, err := Open(context.Background(), cfg); err == nil {
			r.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Config{Inspector: newFakeInspector()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
}

// TestRegistry_HoldsModulesAtTheDefaultCap stores a module of the default cap in memory and on
// disk: badger's limits on one value and one transaction must not be what refuses it.
func TestRegistry_HoldsModulesAtTheDefaultCap(t *testing.T) {
	insp := newFakeInspector()
	wasm := sizedGuest(DefaultMaxModuleBytes)
	insp.set(wasm, taskGuest("").info())
	over := append(slices.Clip(wasm), 0)
	for _, dir := range []string{"", t.TempDir()} {
		r := openCfg(t, Config{Dir: dir, Inspector: insp})
		if r.max != DefaultMaxModuleBytes {
			t.Fatalf("cap %d, want %d", r.max, DefaultMaxModuleBytes)
		}
		m := mustAdd(t, r, wasm, AddOptions{Name: "big", Version: "1.0.0"})
		if b, err := r.Bytes(m.Digest); err != nil || !bytes.Equal(b, wasm) {
			t.Fatalf("Bytes (dir %q): %v", dir, err)
		}
		if _, err := r.Add(context.Background(), over, AddOptions{}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Add over the default cap (dir %q): %v", dir, err)
		}
		if err := r.Delete(context.Background(), m.Digest, nil); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
}

func TestRegistry_ClosedRefuses(t *testing.T) {
	insp := newFakeInspector()
	r := open(t, "", insp)
	m := mustAdd(t, r, insp.add(taskGuest("a")), AddOptions{})
	r.Close()
	ctx := context.Background()
	for name, err := range map[string]error{
		"Add":     func() error { _, err := r.Add(ctx, insp.add(taskGuest("b")), AddOptions{}); return err }(),
		"re-Add":  func() error { _, err := r.Add(ctx, insp.add(taskGuest("a")), AddOptions{}); return err }(),
		"Resolve": func() error { _, err := r.Resolve(m.Digest); return err }(),
		"Bytes":   func() error { _, err := r.Bytes(m.Digest); return err }(),
		"Tag":     r.Tag(m.Digest, "a", "1.0.0"),
		"Delete":  r.Delete(ctx, m.Digest, nil),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func TestBadgerOptions_SyncWrites(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		if !badgerOptions(Config{Dir: dir, MaxModuleBytes: DefaultMaxModuleBytes}).SyncWrites {
			t.Errorf("badger options for Dir %q have SyncWrites off", dir)
		}
	}
	r := open(t, t.TempDir(), newFakeInspector())
	if o := r.db.Opts(); !o.SyncWrites || o.InMemory {
		t.Fatalf("store opened with SyncWrites=%v InMemory=%v", o.SyncWrites, o.InMemory)
	}
}

// TestRegistry_ConcurrentAdds races Adds of the same and of different modules, Tags, Resolves,
// Bytes and Deletes, then checks the end state in memory and after a reopen.
func TestRegistry_ConcurrentAdds(t *testing.T) {
	dir := t.TempDir()
	insp := newFakeInspector()
	r := open(t, dir, insp)
	const workers, distinct = 8, 6
	shared := insp.add(taskGuest("shared"))
	var mods [][]byte
	for i := range distinct {
		mods = append(mods, insp.add(taskGuest(fmt.Sprint("m", i))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*(distinct+2))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			// Everyone adds the shared module under its own version and the same alias.
			if _, err := r.Add(ctx, shared, AddOptions{Name: "shared", Version: fmt.Sprintf("1.%d.0", w)}); err != nil {
				errs <- err
			}
			if _, err := r.Add(ctx, shared, AddOptions{Name: "alias", Version: "1.0.0"}); err != nil {
				errs <- err
			}
			for i, b := range mods {
				m, err := r.Add(ctx, b, AddOptions{Name: fmt.Sprint("m", i), Version: "1.0.0"})
				if err != nil {
					errs <- err
					continue
				}
				if got, err := r.Bytes(m.Digest); err != nil || !bytes.Equal(got, b) {
					errs <- fmt.Errorf("Bytes(%s): %v", m.Ref(), err)
				}
				if _, err := r.Resolve(fmt.Sprint("m", i)); err != nil {
					errs <- err
				}
				r.List()
			}
			// One module is added and deleted by everyone; either may find it gone.
			tmp := insp.add(taskGuest(fmt.Sprint("tmp", w%2)))
			m, err := r.Add(ctx, tmp, AddOptions{})
			if err != nil {
				errs <- err
			} else if err := r.Delete(ctx, m.Digest, nil); err != nil && !errors.Is(err, ErrNotFound) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	check := func(r *Registry) {
		t.Helper()
		ms := r.List()
		if len(ms) != distinct+1 {
			t.Fatalf("List has %d modules, want %d: %v", len(ms), distinct+1, refs(ms))
		}
		m, err := r.Resolve("shared")
		if err != nil || m.Version != fmt.Sprintf("1.%d.0", workers-1) || m.Digest != digestOf(shared) {
			t.Fatalf("Resolve(shared) = %+v, %v", m, err)
		}
		if len(m.Names) != workers+1 {
			t.Fatalf("shared has names %v", m.Names)
		}
	}
	check(r)
	if n := insp.calls.Load(); n > int64(workers*(distinct+2)) {
		t.Fatalf("%d inspections", n)
	}
	r.Close()
	check(open(t, dir, insp))
}

// TestRegistry_StoresLargeRecords stores a module whose record spans many chunks, renames it
// (rewriting the record) and reads it back, in memory and across a reopen on disk.
func TestRegistry_StoresLargeRecords(t *testing.T) {
	insp := newFakeInspector()
	wasm := sizedGuest(3 << 20)
	mi := taskGuest("").info()
	for i := range 40_000 {
		mi.Exports = append(mi.Exports, abi.Export{Name: fmt.Sprintf("extra_export_with_a_long_name_%08d", i), Sig: abi.Signature{}})
	}
	insp.set(wasm, mi)
	for _, dir := range []string{"", t.TempDir()} {
		cfg := Config{Dir: dir, MaxModuleBytes: 4 << 20, Inspector: insp}
		r := openCfg(t, cfg)
		m := mustAdd(t, r, wasm, AddOptions{})
		if r.mods[m.Digest].recChunks < 4 {
			t.Fatalf("record of %d chunks; the test wants a bigger one", r.mods[m.Digest].recChunks)
		}
		if err := r.Tag(m.Digest, "big", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		want, _ := r.Resolve("big")
		if len(want.Info.Exports) != len(mi.Exports) {
			t.Fatalf("%d exports, want %d", len(want.Info.Exports), len(mi.Exports))
		}
		if dir != "" {
			r.Close()
			r = openCfg(t, cfg)
		}
		if got, err := r.Resolve("big"); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Resolve after Tag (dir %q): %v", dir, err)
		}
		if err := r.Delete(context.Background(), m.Digest, nil); err != nil {
			t.Fatal(err)
		}
		if got := storeKeys(t, r); !slices.Equal(got, []string{formatKey}) {
			t.Fatalf("keys after Delete: %d, first %v", len(got), got[:min(len(got), 3)])
		}
		r.Close()
	}
}

// DeleteRef removes the name it is given, not every name of the module: two uploaders bound
// names to the same bytes, and one deleting theirs leaves the other's. The bytes go with the last
// name, and only then is the module checked for use. The index it leaves is what a reopen loads.
func TestRegistry_DeleteRefRemovesOnlyThatName(t *testing.T) {
	for _, where := range []string{"disk", "shared"} {
		t.Run(where, func(t *testing.T) {
			insp := newFakeInspector()
			cfg := Config{MaxModuleBytes: testMax, Inspector: insp}
			if where == "disk" {
				cfg.Dir = t.TempDir()
			} else {
				cfg.Store = &mapStore{m: map[string][]byte{}}
			}
			r := openCfg(t, cfg)
			ctx := context.Background()
			x := insp.add(taskGuest("x"))
			y := insp.add(taskGuest("y"))
			mx := mustAdd(t, r, x, AddOptions{Name: "alice", Version: "1.0.0"})
			mustAdd(t, r, x, AddOptions{Name: "bob", Version: "2.0.0"})
			mustAdd(t, r, x, AddOptions{Name: "bob", Version: "2.1.0"})
			my := mustAdd(t, r, y, AddOptions{Name: "alice", Version: "1.1.0"})

			var asked []string
			inUse := func(d string) bool { asked = append(asked, d); return true }
			removed, err := r.DeleteRef(ctx, "alice@1.0.0", inUse)
			if err != nil || len(removed) != 0 || len(asked) != 0 {
				t.Fatalf("DeleteRef(alice@1.0.0) = %v, %v (asked inUse about %v); want nothing removed, nothing asked", removed, err, asked)
			}
			m, err := r.Resolve("bob@2.0.0")
			if err != nil || m.Digest != mx.Digest {
				t.Fatalf("bob@2.0.0 after alice deleted hers: %+v, %v", m, err)
			}
			if m, _ := r.Resolve(mx.Digest); m.Ref() != "bob@2.0.0" || !slices.Equal(m.Names, []string{"bob@2.0.0", "bob@2.1.0"}) {
				t.Fatalf("module by digest: ref %s, names %v; want bob@2.0.0 first, bob's two names", m.Ref(), m.Names)
			}
			if _, err := r.Resolve("alice@1.0.0"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("alice@1.0.0 after delete: %v", err)
			}
			if m, _ := r.Resolve("alice"); m.Digest != my.Digest {
				t.Fatal("alice's other version went too")
			}
			if b, err := r.Bytes(mx.Digest); err != nil || !bytes.Equal(b, x) {
				t.Fatalf("bytes still named by bob: %v", err)
			}

			// Removing every version of bob would remove the bytes: in use, refused whole.
			if _, err := r.DeleteRef(ctx, "bob", inUse); !errors.Is(err, ErrInUse) || !slices.Equal(asked, []string{mx.Digest}) {
				t.Fatalf("DeleteRef(bob) of a module in use: %v (asked %v)", err, asked)
			}
			if m, _ := r.Resolve(mx.Digest); len(m.Names) != 2 {
				t.Fatalf("a refused DeleteRef removed names: %v", m.Names)
			}
			for _, ref := range []string{"carol", "bob@9.0.0", "bob@x"} {
				if _, err := r.DeleteRef(ctx, ref, nil); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
					t.Errorf("DeleteRef(%q): %v", ref, err)
				}
			}
			removed, err = r.DeleteRef(ctx, "bob", func(string) bool { return false })
			if err != nil || !slices.Equal(removed, []string{mx.Digest}) {
				t.Fatalf("DeleteRef(bob) = %v, %v; want the module removed with its last name", removed, err)
			}
			if _, err := r.Bytes(mx.Digest); !errors.Is(err, ErrNotFound) {
				t.Fatalf("bytes after the last name went: %v", err)
			}
			if got := refs(r.List()); !slices.Equal(got, []string{"alice@1.1.0"}) {
				t.Fatalf("List = %v", got)
			}

			// What the index holds is what the store holds.
			want := r.List()
			r2 := openCfg(t, Config{Store: cfg.Store, MaxModuleBytes: testMax, Inspector: insp})
			if where == "disk" {
				r.Close()
				r2 = openCfg(t, cfg)
			}
			if got := r2.List(); !reflect.DeepEqual(got, want) {
				t.Fatalf("reloaded: %+v\nwant %+v", got, want)
			}
			if removed, err := r2.DeleteRef(ctx, my.Digest, nil); err != nil || !slices.Equal(removed, []string{my.Digest}) {
				t.Fatalf("DeleteRef(digest) = %v, %v", removed, err)
			}
			if where == "disk" {
				if got := storeKeys(t, r2); !slices.Equal(got, []string{formatKey}) {
					t.Fatalf("store keys after deleting everything: %v", got)
				}
			}
		})
	}
}

// Binding a name writes one key and updates the index in place: the index after many binds is
// the one a reload of the store gives, in the same order.
func TestRegistry_BindsKeepTheIndexAsAReloadWould(t *testing.T) {
	dir := t.TempDir()
	insp := newFakeInspector()
	r := open(t, dir, insp)
	x := insp.add(taskGuest("x"))
	m := mustAdd(t, r, x, AddOptions{})
	for _, v := range []string{"1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0", "2.0.0-alpha", "1.9.9"} {
		mustAdd(t, r, x, AddOptions{Name: "svc", Version: v})
		if err := r.Tag(m.Digest, "alias", v); err != nil {
			t.Fatal(err)
		}
	}
	want := r.List()
	if got, _ := r.Resolve("svc"); got.Version != "1.10.0" {
		t.Fatalf("Resolve(svc) = %s, want the highest release 1.10.0", got.Version)
	}
	r.Close()
	r = open(t, dir, insp)
	if got := r.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("reloaded:\n%+v\nwant\n%+v", got, want)
	}
}
