package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The Go guest in testdata/goguest is built once per test binary run, with the SDK at sdk/go.

var errNoGo = errors.New("no go toolchain on PATH")

var goBuild struct {
	once sync.Once
	dir  string
	wasm []byte
	err  error
}

// goGuest builds testdata/goguest for wasip1 (once) and returns the module.
func goGuest() ([]byte, error) {
	goBuild.once.Do(func() {
		gotool, err := exec.LookPath("go")
		if err != nil {
			goBuild.err = errNoGo
			return
		}
		if goBuild.dir, err = os.MkdirTemp("", "lumen-goguest-"); err != nil {
			goBuild.err = err
			return
		}
		out := filepath.Join(goBuild.dir, "goguest.wasm")
		cmd := exec.Command(gotool, "build", "-buildmode=c-shared", "-o", out, "./testdata/goguest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			goBuild.err = fmt.Errorf("build the Go guest: %v\n%s", err, b)
			return
		}
		goBuild.wasm, goBuild.err = os.ReadFile(out)
	})
	return goBuild.wasm, goBuild.err
}

func removeGoGuests() {
	if goBuild.dir != "" {
		os.RemoveAll(goBuild.dir)
	}
}

// needGoGuest returns the Go guest, skipping the test when there is no Go toolchain.
func needGoGuest(t testing.TB) []byte {
	t.Helper()
	b, err := goGuest()
	if errors.Is(err, errNoGo) {
		t.Skipf("no Go toolchain to build the Go guest with: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newGoRuntime returns a test Runtime whose compile cache is shared by every Runtime of this test
// binary, so that the Go guest is compiled once (about a second) rather than once per test.
func newGoRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	needGoGuest(t)
	cfg.DataDir = goBuild.dir
	return newTestRuntime(t, cfg)
}

// goGrants are what every call of the Go guest needs: its imports use tasks and objects.
var goGrants = Grants{Capabilities: []abi.Capability{abi.CapTasks, abi.CapObjects}}

func compileGo(t testing.TB, r *Runtime) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), needGoGuest(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func goCall(r *Runtime, m *Module, fn, input string, g Grants) (*Result, error) {
	return r.Call(context.Background(), CallRequest{Module: m, Function: fn, Input: []byte(input), Job: "go", Grants: g})
}

func TestGoGuest_Calls(t *testing.T) {
	r := newGoRuntime(t, Config{})
	m := compileGo(t, r)
	check := func(fn, in, want string) {
		t.Helper()
		res, err := goCall(r, m, fn, in, goGrants)
		if err != nil || string(res.Output) != want {
			t.Fatalf("%s(%s) = %v, %v; want %s", fn, in, res, err, want)
		}
	}
	check("echo", "raw bytes", "raw bytes")
	check("add", `{"a":40,"b":2}`, "42")
	res, err := goCall(r, m, "hello", `"bob"`, goGrants)
	if err != nil || string(res.Output) != `"hi bob"` {
		t.Fatalf("hello: %v %v", res, err)
	}
	for _, w := range []string{"INFO hello bob\n", "to stdout: bob\n", "to stderr: bob\n"} {
		if !strings.Contains(string(res.Log), w) {
			t.Errorf("log %q lacks %q", res.Log, w)
		}
	}
	_, err = goCall(r, m, "fail", `"no luck"`, goGrants)
	if ae := wantKind(t, err, abi.KindGuest, ""); ae.Code != "E_GO" || ae.Message != "no luck" {
		t.Fatalf("fail: %+v", ae)
	}
	_, err = goCall(r, m, "panic", `"oops"`, goGrants)
	if ae := wantKind(t, err, abi.KindGuest, ""); ae.Code != "panic" || !strings.Contains(ae.Message, "oops") {
		t.Fatalf("panic: %+v", ae)
	}
	check("add", `{"a":1,"b":2}`, "3") // the instance survived its guest errors
	if n := r.Stats().IdleInstances; n != 1 {
		t.Fatalf("%d idle instances, want the one, reused", n)
	}
	_, err = goCall(r, m, "add", `{}`, Grants{})
	wantKind(t, err, abi.KindDenied, "")
}

func TestGoGuest_CounterActor(t *testing.T) {
	r := newGoRuntime(t, Config{})
	m := compileGo(t, r)
	in, err := r.NewInstance(context.Background(), InstanceSpec{Module: m, Job: "go", Grants: goGrants})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	if _, err := in.Call(context.Background(), "Counter", []byte("10")); err != nil {
		t.Fatal(err)
	}
	var res *Result
	for range 3 {
		if res, err = in.Call(context.Background(), "Counter.incr", []byte("5")); err != nil {
			t.Fatal(err)
		}
	}
	if string(res.Output) != "25" {
		t.Fatalf("counter = %s, want 25", res.Output)
	}
}

func TestGoGuest_NestedTaskOnAOneSlotRuntime(t *testing.T) {
	needGoGuest(t)
	s := newTestServices()
	s.grants = goGrants
	r := s.start(t, Config{MaxConcurrentCalls: 1, DataDir: goBuild.dir}, "go")
	m := compileGo(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.Call(ctx, CallRequest{Module: m, Function: "nested", Input: []byte(`{"a":20,"b":22}`), Job: "go", Grants: goGrants})
	if err != nil || string(res.Output) != "42" {
		t.Fatalf("nested: %v %v", res, err)
	}
}

func TestGoGuest_FilesEnvAndClockOnlyWhenGranted(t *testing.T) {
	r := newGoRuntime(t, Config{})
	m := compileGo(t, r)
	data, _ := fsFixture(t)
	fs := Grants{Capabilities: []abi.Capability{abi.CapTasks, abi.CapObjects, abi.CapFS},
		Dirs: []DirGrant{{HostPath: data, GuestPath: "/data"}}}

	_, err := goCall(r, m, "readfile", `"/etc/passwd"`, goGrants)
	if ae := wantKind(t, err, abi.KindGuest, ""); !strings.Contains(ae.Message, "passwd") {
		t.Fatalf("ungranted read: %v", ae)
	}
	if res, err := goCall(r, m, "readfile", `"/data/hello.txt"`, fs); err != nil || string(res.Output) != `"hello from the host"` {
		t.Fatalf("granted read: %v %v", res, err)
	}
	for _, p := range []string{"/data/rel-link", "/data/abs-link", "/data/../outside/secret.txt", "/etc/passwd"} {
		res, err := goCall(r, m, "readfile", strconv.Quote(p), fs)
		if err == nil || strings.Contains(string(res.Output), "SECRET") {
			t.Errorf("read %s through the grant: %v %v", p, res, err)
		}
	}

	home := Grants{Capabilities: []abi.Capability{abi.CapTasks, abi.CapObjects, abi.CapEnv}, Env: map[string]string{"HOME": "/home/guest"}}
	if res, err := goCall(r, m, "getenv", `"HOME"`, goGrants); err != nil || string(res.Output) != `""` {
		t.Fatalf("ungranted getenv: %v %v", res, err)
	}
	if res, err := goCall(r, m, "getenv", `"HOME"`, home); err != nil || string(res.Output) != `"/home/guest"` {
		t.Fatalf("granted getenv: %v %v", res, err)
	}

	res, err := goCall(r, m, "now", `{}`, goGrants)
	if err != nil || string(res.Output) != "1640995200" {
		t.Fatalf("ungranted clock: %v %v, want the fake epoch 1640995200", res, err)
	}
	clock := Grants{Capabilities: []abi.Capability{abi.CapTasks, abi.CapObjects, abi.CapClock}}
	res, err = goCall(r, m, "now", `{}`, clock)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := strconv.ParseInt(string(res.Output), 10, 64); now < time.Now().Unix()-60 {
		t.Fatalf("granted clock: %s", res.Output)
	}
}

// goHostileCases are the Go guest's entries in TestHostile.
func goHostileCases(t *testing.T, r *Runtime) []hostileCase {
	if _, err := goGuest(); errors.Is(err, errNoGo) {
		t.Log("no Go toolchain: Go guests skipped")
		return nil
	}
	return []hostileCase{
		{name: "Go: infinite loop", module: "go", function: "loop", input: []byte("1"), grants: goGrants,
			limits: Limits{Timeout: 100 * time.Millisecond}, kind: abi.KindLimit, limit: abi.LimitDeadline, message: "deadline",
			maxTime: 2 * time.Second, maxPeak: 64 << 20},
		{name: "Go: memory bomb to 256 MiB", module: "go", function: "membomb", input: []byte("1"), grants: goGrants,
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "4096 pages", maxTime: 20 * time.Second, maxPeak: 256<<20 + 96<<20},
		// A Go guest's stack grows by copying, so reaching the memory limit takes seconds alone and
		// far longer on a loaded machine under -race: the deadline is raised so that the memory
		// limit, not the clock, stops it.
		{name: "Go: deep recursion", module: "go", function: "recurse", input: []byte("1"), grants: goGrants, limits: Limits{Timeout: 3 * time.Minute},
			kind: abi.KindLimit, limit: abi.LimitMemory, message: "4096 pages", maxTime: 3 * time.Minute, maxPeak: 256<<20 + 96<<20},
		{name: "Go: os.ReadFile(/etc/passwd), no fs grant", module: "go", function: "readfile", input: []byte(`"/etc/passwd"`), grants: goGrants,
			kind: abi.KindGuest, message: "open /etc/passwd", maxTime: time.Second, maxPeak: 64 << 20},
		{name: "Go: os.Getenv(HOME), no env grant", module: "go", function: "getenv", input: []byte(`"HOME"`), grants: goGrants,
			message: `""`, maxTime: time.Second, maxPeak: 64 << 20},
	}
}
