package host

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

func sysCall(t *testing.T, r *Runtime, m *Module, job string, g Grants, fn, input string) string {
	t.Helper()
	res, err := r.Call(context.Background(), CallRequest{Module: m, Function: fn, Input: []byte(input), Job: job, Grants: g})
	if err != nil {
		t.Fatalf("%s(%q): %v", fn, input, err)
	}
	return string(res.Output)
}

func TestGrants_ClockIsRealOnlyWhenGranted(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	fake, err := strconv.ParseInt(sysCall(t, r, m, "a", Grants{}, "clock", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(fake - fakeEpochNanos); d < 0 || d > time.Second {
		t.Fatalf("ungranted clock reads %v, want the fake epoch 2022-01-01", time.Unix(0, fake).UTC())
	}
	real, err := strconv.ParseInt(sysCall(t, r, m, "b", Grants{Capabilities: []abi.Capability{abi.CapClock}}, "clock", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.Unix(0, real)); d < -time.Minute || d > time.Minute {
		t.Fatalf("granted clock reads %v, want now", time.Unix(0, real))
	}
}

func TestGrants_RandomIsDeterministicUnlessGranted(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	a := sysCall(t, r, m, "a", Grants{}, "random", "")
	b := sysCall(t, r, m, "b", Grants{}, "random", "")
	if a != b || len(a) != 16 {
		t.Fatalf("ungranted random differs between fresh instances: %x %x", a, b)
	}
	g := Grants{Capabilities: []abi.Capability{abi.CapRandom}}
	c := sysCall(t, r, m, "c", g, "random", "")
	d := sysCall(t, r, m, "d", g, "random", "")
	if c == d || c == a {
		t.Fatalf("granted random is not random: %x %x %x", a, c, d)
	}
}

func TestGrants_EnvOnlyWhenGranted(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	env := map[string]string{"B": "2", "A": "1"}
	if got := sysCall(t, r, m, "a", Grants{Env: env}, "getenv", ""); got != "" {
		t.Fatalf("env without the env capability: %q", got)
	}
	if got := sysCall(t, r, m, "a", Grants{Capabilities: []abi.Capability{abi.CapEnv}, Env: env}, "getenv", ""); got != "A=1\x00B=2\x00" {
		t.Fatalf("granted env: %q", got)
	}
	if _, err := r.Call(context.Background(), CallRequest{Module: m, Function: "getenv",
		Grants: Grants{Capabilities: []abi.Capability{abi.CapEnv}, Env: map[string]string{"X=Y": "1"}}}); err == nil {
		t.Fatal("a variable name with '=' was accepted")
	} else {
		wantKind(t, err, abi.KindBadInput, "")
	}
}

// fsFixture makes <tmp>/data/hello.txt, <tmp>/outside/secret.txt and links in data that point out.
func fsFixture(t *testing.T) (data, outside string) {
	t.Helper()
	tmp := t.TempDir()
	data, outside = filepath.Join(tmp, "data"), filepath.Join(tmp, "outside")
	for _, d := range []string{data, outside, filepath.Join(data, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(data, "hello.txt"), []byte("hello from the host"), 0o644))
	must(os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("TOP SECRET"), 0o644))
	must(os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(data, "abs-link")))
	must(os.Symlink("../outside/secret.txt", filepath.Join(data, "rel-link")))
	must(os.Symlink("../../outside", filepath.Join(data, "sub", "dir-link")))
	must(os.Symlink("hello.txt", filepath.Join(data, "inner-link")))
	return data, outside
}

func fsGrants(dir string, writable bool) Grants {
	return Grants{Capabilities: []abi.Capability{abi.CapFS}, Dirs: []DirGrant{{HostPath: dir, GuestPath: "/data", Writable: writable}}}
}

func TestGrants_ReadOnlyDirIsReadableNotWritable(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	data, _ := fsFixture(t)
	g := fsGrants(data, false)
	if got := sysCall(t, r, m, "j", Grants{Dirs: g.Dirs}, "read_file", "hello.txt"); got != "errno=8" {
		t.Fatalf("read without the fs capability: %q, want errno=8 (no preopen)", got)
	}
	if got := sysCall(t, r, m, "j", g, "read_file", "hello.txt"); got != "hello from the host" {
		t.Fatalf("read: %q", got)
	}
	if got := sysCall(t, r, m, "j", g, "read_file", "inner-link"); got != "hello from the host" {
		t.Fatalf("read through a link inside the dir: %q", got)
	}
	if got := sysCall(t, r, m, "j", g, "write_file", "new.txt\x00data"); !strings.HasPrefix(got, "errno=") {
		t.Fatalf("write to a read-only grant: %q", got)
	}
	if got := sysCall(t, r, m, "j", g, "write_file", "hello.txt\x00overwritten"); !strings.HasPrefix(got, "errno=") {
		t.Fatalf("overwrite in a read-only grant: %q", got)
	}
	if got := sysCall(t, r, m, "j", g, "symlink", "hello.txt\x00made-link"); !strings.HasPrefix(got, "errno=") {
		t.Fatalf("symlink in a read-only grant: %q", got)
	}
	if _, err := os.Stat(filepath.Join(data, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("read-only grant let the guest create a file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "hello.txt")); string(b) != "hello from the host" {
		t.Fatalf("read-only grant let the guest overwrite a file: %q", b)
	}
}

func TestGrants_WritableDirIsWritable(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	data, _ := fsFixture(t)
	g := fsGrants(data, true)
	if got := sysCall(t, r, m, "j", g, "write_file", "sub/new.txt\x00written by the guest"); got != "ok" {
		t.Fatalf("write: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(data, "sub", "new.txt")); err != nil || string(b) != "written by the guest" {
		t.Fatalf("host sees %q, %v", b, err)
	}
	if got := sysCall(t, r, m, "j", g, "read_file", "sub/new.txt"); got != "written by the guest" {
		t.Fatalf("read back: %q", got)
	}
}

func TestGrants_NoEscapeFromAGrantedDir(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	for _, writable := range []bool{false, true} {
		data, outside := fsFixture(t)
		g := fsGrants(data, writable)
		paths := []string{"abs-link", "rel-link", "sub/dir-link/secret.txt", "../outside/secret.txt",
			"sub/../../outside/secret.txt", "/etc/passwd", "../../../../../../etc/passwd"}
		if writable {
			// Links the guest makes itself, pointing out of the dir.
			for _, l := range []string{"../outside/secret.txt\x00made-rel", "../../../../../../etc/passwd\x00made-passwd", "..\x00made-up"} {
				sysCall(t, r, m, "j", g, "symlink", l)
			}
			paths = append(paths, "made-rel", "made-passwd", "made-up/outside/secret.txt")
			if got := sysCall(t, r, m, "j", g, "write_file", "rel-link\x00pwned"); got == "ok" {
				t.Errorf("writable grant: wrote through a link out of the dir")
			}
			if got := sysCall(t, r, m, "j", g, "write_file", "sub/dir-link/new.txt\x00pwned"); got == "ok" {
				t.Errorf("writable grant: created a file through a link out of the dir")
			}
		}
		for _, p := range paths {
			got := sysCall(t, r, m, "j", g, "read_file", p)
			if !strings.HasPrefix(got, "errno=") || strings.Contains(got, "SECRET") || strings.Contains(got, "root:") {
				t.Errorf("writable=%v: read %q escaped the grant: %q", writable, p, got)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(outside, "secret.txt")); !bytes.Equal(b, []byte("TOP SECRET")) {
			t.Errorf("writable=%v: the file outside was changed: %q", writable, b)
		}
		if _, err := os.Stat(filepath.Join(outside, "new.txt")); !os.IsNotExist(err) {
			t.Errorf("writable=%v: a file was created outside", writable)
		}
	}
}

func TestGrants_DeniedWhenImportsNeedUngrantedCapabilities(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "nested")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "child", Job: "j1",
		Grants: Grants{Capabilities: []abi.Capability{abi.CapObjects}}})
	ae := wantKind(t, err, abi.KindDenied, "")
	for _, w := range []string{`"tasks"`, `"actors"`, `job "j1"`} {
		if !strings.Contains(ae.Message, w) {
			t.Errorf("message %q does not name %s", ae.Message, w)
		}
	}
	if strings.Contains(ae.Message, `"objects"`) {
		t.Errorf("message %q names a granted capability", ae.Message)
	}
	all := Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}
	if res := callOK(t, r, CallRequest{Module: m, Function: "child", Input: []byte("x"), Grants: all}); string(res.Output) != "child:x" {
		t.Fatalf("child: %q", res.Output)
	}
	_, err = r.Call(context.Background(), CallRequest{Module: m, Function: "child",
		Grants: Grants{Capabilities: []abi.Capability{"teleport"}}})
	wantKind(t, err, abi.KindBadInput, "")
}

func TestGrants_MissingHostDirIsBadInput(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "sys")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "read_file", Input: []byte("x"),
		Grants: fsGrants(filepath.Join(t.TempDir(), "missing"), false)})
	wantKind(t, err, abi.KindBadInput, "")
	_, err = r.Call(context.Background(), CallRequest{Module: m, Function: "read_file", Input: []byte("x"),
		Grants: Grants{Capabilities: []abi.Capability{abi.CapFS}, Dirs: []DirGrant{{HostPath: t.TempDir(), GuestPath: "data"}}}})
	wantKind(t, err, abi.KindBadInput, "")
}
