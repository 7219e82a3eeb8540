package guestbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ToolchainHint is what a build that finds a guest toolchain missing tells the reader to do.
const ToolchainHint = "install the guest toolchains with `make toolchain` (make test does it first)"

// C builds the C guest in dir (relative to the caller's working directory): every .c file there,
// linked with the C SDK (sdk/c/lumen.c), as a wasm32-wasi reactor. It returns the .wasm's path.
// A guest is built once per test binary, into the same cache folder as Go's; a missing clang or
// wasi-libc fails the test with how to install them.
func C(t testing.TB, dir string) string {
	t.Helper()
	return build(t, "c", dir, func(abs, root, out string) {
		t.Helper()
		srcs, err := filepath.Glob(filepath.Join(abs, "*.c"))
		if err != nil || len(srcs) == 0 {
			t.Fatalf("build C guest %s: no .c files (%v)", dir, err)
		}
		sdk := filepath.Join(root, "sdk", "c")
		TrackSources(t, abs, sdk)
		args := []string{"--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wl,--strip-debug",
			"-Wall", "-Werror", "-I" + sdk, "-o", out}
		args = append(append(args, srcs...), filepath.Join(sdk, "lumen.c"))
		Run(t, abs, nil, Tool(t, "clang"), args...)
	})
}

// Rust builds the Rust guest crate in dir (a cdylib whose Cargo.toml depends on sdk/rust by path)
// with the system's cargo, offline, for wasm32-wasi, and returns the .wasm's path. Cargo's target
// folder lives in the cache folder, so later runs rebuild incrementally.
func Rust(t testing.TB, dir string) string {
	t.Helper()
	return build(t, "rust", dir, func(abs, root, out string) {
		t.Helper()
		manifest, err := os.ReadFile(filepath.Join(abs, "Cargo.toml"))
		if err != nil {
			t.Fatalf("build Rust guest %s: %v", dir, err)
		}
		m := regexp.MustCompile(`(?m)^\s*name\s*=\s*"([^"]+)"`).FindSubmatch(manifest)
		if m == nil {
			t.Fatalf("build Rust guest %s: no package name in Cargo.toml", dir)
		}
		TrackSources(t, abs, filepath.Join(root, "sdk", "rust", "src"), filepath.Join(root, "sdk", "rust", "Cargo.toml"))
		target := strings.TrimSuffix(out, ".wasm") + "-target"
		// The system's cargo first: a rustup toolchain earlier on PATH has no wasm32-wasi std.
		Run(t, abs, []string{"PATH=/usr/bin:/bin", "CARGO_TARGET_DIR=" + target}, Tool(t, "cargo"),
			"build", "--offline", "--release", "--target", "wasm32-wasi", "--quiet")
		crate := strings.ReplaceAll(string(m[1]), "-", "_")
		b, err := os.ReadFile(filepath.Join(target, "wasm32-wasi", "release", crate+".wasm"))
		if err != nil {
			t.Fatalf("build Rust guest %s: %v", dir, err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

// AssemblyScript builds the AssemblyScript guest in dir (its index.ts, or its only .ts file) with
// the compiler that `make toolchain` installs in sdk/assemblyscript/node_modules, aborts routed
// to the SDK, and returns the .wasm's path.
func AssemblyScript(t testing.TB, dir string) string {
	t.Helper()
	return build(t, "assemblyscript", dir, func(abs, root, out string) {
		t.Helper()
		entry := "index.ts"
		if _, err := os.Stat(filepath.Join(abs, entry)); err != nil {
			ts, _ := filepath.Glob(filepath.Join(abs, "*.ts"))
			if len(ts) != 1 {
				t.Fatalf("build AssemblyScript guest %s: want index.ts or a single .ts file, found %d", dir, len(ts))
			}
			entry = filepath.Base(ts[0])
		}
		sdk := filepath.Join(root, "sdk", "assemblyscript")
		asc := filepath.Join(sdk, "node_modules", ".bin", "asc")
		if _, err := os.Stat(asc); err != nil {
			t.Fatalf("AssemblyScript compiler not installed at %s: %s", asc, ToolchainHint)
		}
		TrackSources(t, abs, filepath.Join(sdk, "assembly"), filepath.Join(sdk, "package.json"))
		// asc takes the abort function's file as the compiler sees it: relative, without .ts.
		index, err := filepath.Rel(abs, filepath.Join(sdk, "assembly", "index"))
		if err != nil {
			t.Fatal(err)
		}
		Run(t, abs, nil, Tool(t, "node"), asc, entry, "-o", out, "-O3", "--noAssert",
			"--exportStart", "_initialize", "--use", "abort="+filepath.ToSlash(index)+"/abort")
	})
}

// build compiles lang's guest in src once per test binary: compile gets the absolute folder, the Go
// module's root (where sdk/ is) and the output path, which build returns.
func build(t testing.TB, lang, src string, compile func(abs, root, out string)) string {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	key := lang + ":" + abs
	if p, ok := built[key]; ok {
		return p
	}
	out := filepath.Join(cacheDirLocked(t), strings.ReplaceAll(strings.Trim(abs, "/"), "/", "_")+"."+lang+".wasm")
	compile(abs, moduleRoot(t, abs), out)
	built[key] = out
	return out
}

// moduleRoot is the nearest folder at or above dir with a go.mod.
func moduleRoot(t testing.TB, dir string) string {
	t.Helper()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod at or above %s", dir)
		}
	}
}

// TrackSources reads every file under paths, so that go test's cache, which knows the files a
// test opens but not those a compiler it runs reads, reruns the test when a guest's source
// changes.
func TrackSources(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "target" || n == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			t.Fatalf("read the guest sources: %v", err)
		}
	}
}

// Tool finds a program in the system's folders before PATH (rustup's cargo, often first on PATH,
// has no wasm32-wasi standard library), failing with how to install it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s not found: %s", name, ToolchainHint)
	return ""
}

// Run runs a compiler in dir, failing the test with its output and the toolchain hint.
func Run(t testing.TB, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n(if a toolchain is missing, %s)", filepath.Base(name), strings.Join(args, " "), err, out, ToolchainHint)
	}
}

// CacheDir returns a folder named sub under the guests' build cache (under the user's cache
// directory), for build state that should outlive a test run, such as cargo's target folder.
func CacheDir(t testing.TB, sub string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	d := filepath.Join(cacheDirLocked(t), sub)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// cacheDirLocked returns the build cache folder, creating it. The caller holds mu.
func cacheDirLocked(t testing.TB) string {
	t.Helper()
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "lumen", "guests")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
