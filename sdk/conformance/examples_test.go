package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/plugins"
)

// buildExample builds the worked example of an SDK's README and returns the module.
func buildExample(t testing.TB, lang string) []byte {
	t.Helper()
	var path string
	switch lang {
	case "c":
		trackSources(t, "../c")
		path = filepath.Join(outDir(t, "example-c"), "stats.wasm")
		run(t, "../c/example", nil, tool(t, "clang"), "--target=wasm32-wasi", "-O2", "-mexec-model=reactor",
			"-Wl,--strip-debug", "-Wall", "-Werror", "-I..", "-o", path, "stats.c", "../lumen.c")
	case "rust":
		trackSources(t, "../rust/src", "../rust/example/src", "../rust/example/Cargo.toml")
		target := outDir(t, "example-rust")
		run(t, "../rust/example", []string{"PATH=/usr/bin:/bin", "CARGO_TARGET_DIR=" + target}, tool(t, "cargo"),
			"build", "--offline", "--release", "--target", "wasm32-wasi", "--quiet")
		path = filepath.Join(target, "wasm32-wasi", "release", "stats.wasm")
	case "assemblyscript":
		trackSources(t, "../assemblyscript/assembly", "../assemblyscript/example")
		asc, err := filepath.Abs("../assemblyscript/node_modules/.bin/asc")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(asc); err != nil {
			t.Fatalf("AssemblyScript compiler not installed at %s: %s", asc, toolchainHint)
		}
		path = filepath.Join(outDir(t, "example-assemblyscript"), "stats.wasm")
		run(t, "../assemblyscript/example", nil, tool(t, "node"), asc, "stats.ts", "-o", path, "-O3", "--noAssert",
			"--exportStart", "_initialize", "--use", "abort=../assembly/index/abort")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The worked example in each SDK's README builds and does what the README says.
func TestSDKExamples_DoWhatTheREADMEsSay(t *testing.T) {
	ctx := context.Background()
	eng := newConformance(t).eng
	for _, lang := range []string{"c", "rust", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			m, err := eng.AddModule(ctx, buildExample(t, lang), plugins.AddOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ fn, in, want string }{
				{"sum", `{"a": 1, "b": 2}`, "3"},
				{"upper", "hello", "HELLO"},
				{"report", "hello", `{"upper":"HELLO","total":16}`},
			} {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				res, err := eng.Call(cctx, engine.CallRequest{Module: m.Digest, Function: c.fn, Input: []byte(c.in), Job: "example", Grants: grants})
				cancel()
				if err != nil {
					t.Fatalf("%s(%s): %v", c.fn, c.in, err)
				}
				if string(res.Output) != c.want {
					t.Errorf("%s(%s) = %s, want %s", c.fn, c.in, res.Output, c.want)
				}
			}
		})
	}
}
