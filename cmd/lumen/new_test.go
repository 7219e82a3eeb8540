package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Each language's scaffold builds, passes its own test and exports the ABI.
func TestNew_ScaffoldsBuildAndPassTheirTests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and testing a scaffold in each of the four languages")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	asc := filepath.Join(root, "sdk", "assemblyscript", "node_modules", ".bin", "asc")
	for _, lang := range []string{"go", "c", "rust", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-"+lang)
			if err := scaffold(dir, lang, root, false); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("make", "test")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "ASC="+asc)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("make test in a new %s project: %v\n%s\n(if a toolchain is missing, run `make toolchain`)", lang, err, out)
			}
			if !strings.Contains(string(out), "ABI v1 exports present") {
				t.Fatalf("make test did not check the exports:\n%s", out)
			}
			if st, err := os.Stat(filepath.Join(dir, "my-"+lang+".wasm")); err != nil || st.Size() == 0 {
				t.Fatalf("no module built: %v", err)
			}
		})
	}
}

func TestNew_RefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ dir, lang, want string }{
		{filepath.Join(dir, "ok"), "cobol", "want go, rust, c or assemblyscript"},
		{filepath.Join(dir, "Bad Name"), "c", "lower-case letters"},
		{filepath.Join(dir, "9lives"), "c", "starting with a letter"},
	} {
		if err := scaffold(c.dir, c.lang, "", false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("scaffold(%s, %s) = %v, want %q", c.dir, c.lang, err, c.want)
		}
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := scaffold(full, "c", "", false); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("scaffold into a non-empty folder: %v", err)
	}
	if err := scaffold(filepath.Join(dir, "go-proj"), "go", filepath.Join(dir), false); err == nil || !strings.Contains(err.Error(), "not a Lumen source checkout") {
		t.Errorf("scaffold go with a bad --lumen: %v", err)
	}
}

// Flags may come after NAME.
func TestNew_FlagsAfterName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "late")
	if err := newCommand([]string{dir, "--lang", "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lumen", "lumen.h")); err != nil {
		t.Fatal(err)
	}
}
