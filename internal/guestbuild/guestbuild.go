// Package guestbuild builds guest modules from source (Go, C, Rust, AssemblyScript) for tests and
// examples, once per guest per test binary run, into a cache under the user's cache directory.
package guestbuild

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// Go builds the Go package at pkgDir (a directory, relative to the caller's working directory)
// as a wasip1 reactor and returns the .wasm's path. A package is built once per test binary; the
// output goes to a fixed place under the user's cache directory, overwritten by the next run.
func Go(t testing.TB, pkgDir string) string {
	t.Helper()
	return build(t, "go", pkgDir, func(abs, _, out string) {
		t.Helper()
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		Run(t, abs, []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"},
			goBin, "build", "-buildmode=c-shared", "-o", out, ".")
	})
}
