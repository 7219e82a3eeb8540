package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.e != nil {
		shared.e.Close(context.Background())
		os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// shared is one engine for the tests that need no special configuration: compiling the Go guest
// is the slow part of opening one, above all under the race detector.
var shared struct {
	once sync.Once
	e    *engine.Engine
	dir  string
	err  error
}

func sharedEngine(t *testing.T) *engine.Engine {
	t.Helper()
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "lumen-engine-test-"); shared.err != nil {
			return
		}
		ctx := context.Background()
		if shared.e, shared.err = engine.Open(ctx, engine.Config{DataDir: shared.dir}); shared.err != nil {
			return
		}
		_, shared.err = shared.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.e
}

var allCaps = host.Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}

func open(t *testing.T, cfg engine.Config) (*engine.Engine, string) {
	t.Helper()
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	ctx := context.Background()
	e, err := engine.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	m, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	return e, m.Digest
}

func call(t *testing.T, e *engine.Engine, fn, in string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "svc", Function: fn, Input: []byte(in), Grants: allCaps})
	if err != nil {
		return "", err
	}
	return string(res.Output), nil
}

func TestEngine_Services(t *testing.T) {
	e := sharedEngine(t)
	cases := []struct{ fn, in, want string }{
		{"nested", "7", "49"},
		{"fanout", `{"N":20}`, "2470"},
		{"failchild", "3", `"guest_error/E_FAIL/failed on 3"`},
		{"objects", "payload bytes", "payload bytes"},
		{"counter", "3", "103"},
		{"waittimeout", "0", "1"},
		// Restarted from its saved state once; then out of restarts, so the last call fails
		// through its result (dying) or at once (ended), depending on timing.
		{"crashy", "0", `["incr:5","crash:trap","incr:10","crash:trap","incr:system"]|["incr:5","crash:trap","incr:10","crash:trap","incr:ended"]`},
	}
	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			got, err := call(t, e, c.fn, c.in)
			if err != nil || !slices.Contains(strings.Split(c.want, "|"), got) {
				t.Fatalf("%s(%s) = %s, %v; want %s", c.fn, c.in, got, err, c.want)
			}
		})
	}
}

func TestEngine_CapabilitiesMustBeGranted(t *testing.T) {
	e := sharedEngine(t)
	_, err := e.Tasks().Call(context.Background(), engine.CallRequest{Module: "svc", Function: "nested", Input: []byte("2")})
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindDenied || !strings.Contains(ae.Message, "actors") {
		t.Fatalf("ungranted call: %v", err)
	}
}

func TestEngine_CallChecksFunctionKind(t *testing.T) {
	e := sharedEngine(t)
	for fn, kind := range map[string]abi.ErrorKind{"Counter": abi.KindBadInput, "Counter.incr": abi.KindBadInput, "nope": abi.KindNotFound} {
		_, err := call(t, e, fn, "1")
		var ae *abi.Error
		if !errors.As(err, &ae) || ae.Kind != kind {
			t.Errorf("%s: %v, want %s", fn, err, kind)
		}
	}
}

func TestEngine_ObjectStoreCap(t *testing.T) {
	e, _ := open(t, engine.Config{ObjectStoreBytes: 1 << 10})
	_, err := call(t, e, "objects", strings.Repeat("x", 2<<10))
	if err == nil || !strings.Contains(err.Error(), "object store full") {
		t.Fatalf("over-cap put: %v", err)
	}
	if got, err := call(t, e, "objects", "small"); err != nil || got != "small" {
		t.Fatalf("after a refused put: %q %v", got, err)
	}
}

func TestEngine_JobsDoNotShareObjects(t *testing.T) {
	e := sharedEngine(t)
	ctx := context.Background()
	run := func(job, fn string, in []byte) (string, error) {
		res, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "svc", Function: fn, Input: in, Job: job, Grants: allCaps})
		if err != nil {
			return "", err
		}
		return string(res.Output), nil
	}
	ref, err := run("jobs-a", "keep", []byte(`"secret"`))
	if err != nil || !strings.HasPrefix(ref, `{"$ref":`) {
		t.Fatalf("keep: %q %v", ref, err)
	}
	arg := []byte(`{"R":` + ref + `}`)
	if got, err := run("jobs-a", "readref", arg); err != nil || got != `"\"secret\""` {
		t.Fatalf("same job: %q %v", got, err)
	}
	if _, err := run("jobs-b", "readref", arg); err == nil || !strings.Contains(err.Error(), `in job "jobs-b"`) {
		t.Fatalf("cross-job read: %v", err)
	}
}

// On a node with one cpu, a chain of tasks each waiting on the next completes: a task blocked in
// get gives its cpu back.
func TestEngine_NestedWaitsDoNotDeadlockAFullNode(t *testing.T) {
	e, _ := open(t, engine.Config{Resources: scheduler.Resources{scheduler.CPU: 1}})
	if got, err := call(t, e, "depth", "6"); err != nil || got != "6" {
		t.Fatalf("depth(6) = %q, %v", got, err)
	}
	if got, err := call(t, e, "fanout", `{"N":8}`); err != nil || got != "140" {
		t.Fatalf("fanout = %q, %v", got, err)
	}
	if free := e.Available()[scheduler.CPU]; free != 1 {
		t.Fatalf("cpu free after the calls: %v", free)
	}
}

func TestEngine_RefusesWhatCanNeverFit(t *testing.T) {
	e := sharedEngine(t)
	got, err := call(t, e, "greedy", "1000")
	if err != nil || !strings.Contains(got, "bad_payload") || !strings.Contains(got, "cpu 1000 (the node has") {
		t.Fatalf("greedy = %q, %v", got, err)
	}
}

// Objects are freed when nothing refers to them: the results of a call's children and what it put
// go with the call, unless its output hands them on.
func TestEngine_ReferenceCountingFreesWhatNothingHolds(t *testing.T) {
	e, _ := open(t, engine.Config{})
	before := e.Stats().Objects
	for _, c := range []struct{ fn, in string }{{"fanout", `{"N":30}`}, {"nested", "4"}, {"objects", "x"}, {"counter", "5"}, {"failchild", "1"}} {
		if _, err := call(t, e, c.fn, c.in); err != nil {
			t.Fatalf("%s: %v", c.fn, err)
		}
	}
	waitObjects(t, e, before)
	// A ref in the output stays for the caller, until released.
	ref, err := call(t, e, "keep", `"kept"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Stats().Objects; got != before+1 {
		t.Fatalf("objects after keep: %d, want %d", got, before+1)
	}
	var h struct {
		Ref int64 `json:"$ref"`
	}
	if err := json.Unmarshal([]byte(ref), &h); err != nil {
		t.Fatal(err)
	}
	if err := e.Objects().Release("", h.Ref); err != nil {
		t.Fatal(err)
	}
	waitObjects(t, e, before)
}

func waitObjects(t *testing.T, e *engine.Engine, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.Stats()
		if st.Objects == want && st.ObjectBytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("objects: %d holding %d bytes, want %d holding 0", st.Objects, st.ObjectBytes, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An actor created by a call lives as long as the call unless detached; one that asks for
// concurrent calls is refused with the reason.
func TestEngine_OwnedActorsEndWithTheirCall(t *testing.T) {
	e, _ := open(t, engine.Config{})
	got, err := call(t, e, "leaky", "0")
	if err != nil || !strings.Contains(got, "single-threaded") {
		t.Fatalf("leaky = %q, %v", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().Actors != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("live actors: %d, want 1 (the detached one)", e.Stats().Actors)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := e.Actors().Named("default", "kept"); err != nil {
		t.Fatalf("the detached actor: %v", err)
	}
}

// A module is deleted only when nothing uses it.
func TestEngine_DeleteModuleRefusedWhileInUse(t *testing.T) {
	e, _ := open(t, engine.Config{})
	ctx := context.Background()
	id, err := e.Actors().Create(ctx, "", &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1")}, allCaps)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Modules().Delete(ctx, "svc"); !errors.Is(err, plugins.ErrInUse) || !strings.Contains(err.Error(), "actor") {
		t.Fatalf("delete while an actor runs it: %v", err)
	}
	if err := e.Actors().Kill("", id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := e.Modules().Delete(ctx, "svc")
		if err == nil {
			break
		}
		if !errors.Is(err, plugins.ErrInUse) || time.Now().After(deadline) {
			t.Fatalf("delete after the actor ended: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := e.Modules().Registry().Resolve("svc"); !errors.Is(err, plugins.ErrNotFound) {
		t.Fatalf("resolve after delete: %v", err)
	}
}

// Deleting a module by one of its names removes that name only: the bytes stay while another
// name (another uploader's) is bound to them, and go with the last one.
func TestEngine_DeleteModuleByNameKeepsOtherNames(t *testing.T) {
	e, digest := open(t, engine.Config{})
	ctx := context.Background()
	if err := e.Modules().Registry().Tag(digest, "theirs", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := e.Modules().Delete(ctx, "svc@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Modules().Registry().Resolve("svc@1.0.0"); !errors.Is(err, plugins.ErrNotFound) {
		t.Fatalf("resolve the deleted name: %v", err)
	}
	m, err := e.Modules().Registry().Resolve("theirs@2.0.0")
	if err != nil || m.Digest != digest || !slices.Equal(m.Names, []string{"theirs@2.0.0"}) {
		t.Fatalf("the other uploader's name after deleting svc@1.0.0: %+v, %v", m, err)
	}
	if _, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "theirs", Function: "objects", Input: []byte("x"), Grants: allCaps}); err != nil {
		t.Fatalf("call through the name left: %v", err)
	}
	if err := e.Modules().Delete(ctx, "theirs"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Modules().Registry().Bytes(digest); !errors.Is(err, plugins.ErrNotFound) {
		t.Fatalf("bytes after the last name went: %v", err)
	}
}
