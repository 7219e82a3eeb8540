package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	modulePath = "github.com/lumenflow/lumen"
	moduleRoot = "../.."
	tableDoc   = "docs/architecture.md"
)

// Every package of the module, its tests included, imports only what its row of the table in
// docs/architecture.md allows, and the table has a row for every package and none for a package
// that is gone.
func TestImports_FollowTheTable(t *testing.T) {
	rules := readTable(t)
	pkgs := listPackages(t)
	outside := map[string]bool{}
	for _, p := range pkgs {
		for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, im := range list {
				if !strings.HasPrefix(im, modulePath+"/") {
					outside[im] = true
				}
			}
		}
	}
	std := standardPackages(t, outside)
	problems, checked := checkImports(modulePath, tableDoc, rules, pkgs, func(im string) bool { return std[im] })
	for _, p := range problems {
		t.Error(p)
	}
	if checked != len(pkgs) || checked == 0 {
		t.Errorf("checked %d packages of the %d go list reported", checked, len(pkgs))
	}
}

// The table must keep forbidding the edges the design forbids, whatever else changes in it.
func TestTable_ForbidsTheWrongDirection(t *testing.T) {
	rules := readTable(t)
	forbidden := []struct{ from, to string }{
		{"host", "engine"}, {"host", "plugins"}, {"host", "gpu"}, {"plugins", "host"},
		{"raftstore", "engine"}, {"sdk/abi", "host"}, {"sdk/go", "host"}, {"engine/dag", "host"},
		{"engine/scheduler", "raftstore"}, {"gpu", "model"}, {"model", "engine"},
		{"engine/client", "engine"}, {"engine", "engine/api"}, {"engine/api", "cmd/lumen"},
	}
	for _, e := range forbidden {
		i := resolve(rules, e.from)
		if i < 0 {
			t.Errorf("%s: no row governs %s", tableDoc, e.from)
			continue
		}
		if rules[i].allows(e.to, false) {
			t.Errorf("%s:%d: row `%s` allows %s -> %s, which the design forbids", tableDoc, rules[i].line, rules[i].pkg, e.from, e.to)
		}
	}
}

func readTable(t *testing.T) []rule {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot, tableDoc))
	if err != nil {
		t.Fatalf("import rules: %v", err)
	}
	defer f.Close()
	rules, err := parseTable(tableDoc, f)
	if err != nil {
		t.Fatalf("import rules:\n%v", err)
	}
	return rules
}

type goListed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Error        *struct{ Err string }
}

// listPackages returns every package of `go list ./...` and, since that pattern skips testdata,
// every Go package under a testdata folder (the Go guests that tests build).
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	var pkgs []listedPackage
	for _, p := range goList(t, "./...") {
		pkgs = append(pkgs, relative(t, p))
	}
	dirs := testdataDirs(t)
	if len(dirs) == 0 {
		return pkgs
	}
	for _, p := range goList(t, append([]string{"-e"}, dirs...)...) {
		if len(p.GoFiles)+len(p.TestGoFiles)+len(p.XTestGoFiles) == 0 {
			continue // no Go files for this platform, such as a folder holding only a go:build ignore generator
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, relative(t, p))
	}
	return pkgs
}

func goList(t *testing.T, args ...string) []goListed {
	t.Helper()
	args = append([]string{"list", "-json=ImportPath,Imports,TestImports,XTestImports,GoFiles,TestGoFiles,XTestGoFiles,Error"}, args...)
	out := runGo(t, args...)
	var listed []goListed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goListed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		listed = append(listed, p)
	}
	return listed
}

func relative(t *testing.T, p goListed) listedPackage {
	t.Helper()
	rel, ok := strings.CutPrefix(p.ImportPath, modulePath+"/")
	if !ok {
		t.Fatalf("go list reported %s, outside module %s", p.ImportPath, modulePath)
	}
	return listedPackage{Path: rel, Imports: p.Imports, TestImports: p.TestImports, XTestImports: p.XTestImports}
}

// testdataDirs returns "./dir" for every folder under a testdata folder that holds a .go file.
func testdataDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != moduleRoot && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, err := filepath.Rel(moduleRoot, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.Contains("/"+rel+"/", "/testdata/") && (len(dirs) == 0 || dirs[len(dirs)-1] != "./"+rel) {
			dirs = append(dirs, "./"+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("finding testdata packages: %v", err)
	}
	return dirs
}

// standardPackages asks go list which of the given import paths are in the standard library.
func standardPackages(t *testing.T, imports map[string]bool) map[string]bool {
	t.Helper()
	args := []string{"list", "-f", "{{.ImportPath}} {{.Standard}}"}
	for im := range imports {
		if im != "C" {
			args = append(args, im)
		}
	}
	out := runGo(t, args...)
	std := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "true" {
			std[f[0]] = true
		}
	}
	return std
}

// runGo runs the go command in the module's root and returns its standard output.
func runGo(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, exit.Stderr)
		}
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return out
}
