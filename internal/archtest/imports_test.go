// Package archtest guards the import direction of design.md §3:
// cmd -> engine -> {host, raftstore, plugins, gpu, model} -> sdk/abi.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const modulePath = "github.com/lumenflow/lumen"

// rules maps a package (or folder prefix, ending in "/") to the project packages it may import,
// again as exact paths or prefixes. The most specific key wins. Standard library and third-party
// imports are checked separately where a package must stay pure.
var rules = []struct {
	pkg     string
	allowed []string
	stdOnly bool // no third-party imports either
}{
	{pkg: "sdk", stdOnly: true}, // the SDKs' sources, embedded for lumen new
	{pkg: "sdk/abi", stdOnly: true},
	{pkg: "sdk/go", allowed: []string{"sdk/abi"}, stdOnly: true},
	{pkg: "sdk/go/", allowed: []string{"sdk/abi", "sdk/go"}}, // e.g. sdk/go/batch: Arrow batches on top of the SDK
	{pkg: "sdk/", allowed: []string{"sdk/abi"}},
	{pkg: "sdk/conformance/", allowed: []string{"sdk/abi", "sdk/go"}}, // guests written with the SDKs
	{pkg: "host", allowed: []string{"sdk/abi"}},
	{pkg: "host/", allowed: []string{"sdk/abi", "host/"}},
	{pkg: "plugins", allowed: []string{"sdk/abi"}},
	{pkg: "raftstore", allowed: []string{"sdk/abi"}},
	{pkg: "gpu", allowed: []string{"sdk/abi", "gpu/"}},
	{pkg: "gpu/", allowed: []string{"sdk/abi", "gpu", "gpu/"}},
	{pkg: "model", allowed: []string{"sdk/abi", "gpu", "gpu/", "model/"}},
	{pkg: "model/", allowed: []string{"sdk/abi", "gpu", "gpu/", "model", "model/"}},
	// Pure engine packages: no I/O dependencies of ours, only the shared domain types.
	{pkg: "engine/model", stdOnly: true},
	{pkg: "engine/dag", allowed: []string{"engine/model", "sdk/abi"}, stdOnly: true},
	{pkg: "engine/scheduler", allowed: []string{"engine/model", "sdk/abi"}, stdOnly: true},
	{pkg: "engine", allowed: []string{"engine", "engine/", "host", "host/", "raftstore", "plugins", "gpu", "gpu/", "model", "model/", "sdk/abi"}},
	{pkg: "engine/", allowed: []string{"engine", "engine/", "host", "host/", "raftstore", "plugins", "gpu", "gpu/", "model", "model/", "sdk/abi"}},
	{pkg: "cmd/", allowed: []string{"engine", "engine/", "host", "plugins", "raftstore", "gpu", "model", "sdk", "sdk/abi", "internal/"}},
	{pkg: "examples/", allowed: []string{"sdk/", "engine/client", "internal/"}},
	{pkg: "internal/", allowed: []string{"internal/", "sdk/abi"}},
	{pkg: "internal/lumentest", allowed: []string{"engine/client"}}, // drives a real lumen up in tests
}

func match(pattern, rel string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(rel, pattern)
	}
	return rel == pattern
}

type listed struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func TestImports_FollowTheLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// Which imports are standard library: ask once for all of them.
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []listed
	all := map[string]bool{}
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
		for _, im := range p.Imports {
			all[im] = true
		}
	}
	std := standardPackages(t, all)
	checked := 0
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, modulePath+"/")
		if !ok || strings.HasPrefix(rel, "internal/archtest") {
			continue
		}
		rule := -1
		for i, r := range rules {
			if match(r.pkg, rel) && (rule < 0 || len(r.pkg) > len(rules[rule].pkg) || (!strings.HasSuffix(r.pkg, "/") && strings.HasSuffix(rules[rule].pkg, "/"))) {
				rule = i
			}
		}
		if rule < 0 {
			t.Errorf("%s: no import rule covers this package; add one to rules", rel)
			continue
		}
		r := rules[rule]
		checked++
		for _, im := range p.Imports {
			imRel, ours := strings.CutPrefix(im, modulePath+"/")
			if !ours {
				if r.stdOnly && !std[im] && im != "C" && im != "unsafe" {
					t.Errorf("%s imports %s: it may use only the standard library", rel, im)
				}
				continue
			}
			okEdge := false
			for _, a := range r.allowed {
				if match(a, imRel) {
					okEdge = true
					break
				}
			}
			if !okEdge {
				t.Errorf("forbidden import edge: %s -> %s (allowed: %v)", rel, imRel, r.allowed)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no packages checked")
	}
}

func standardPackages(t *testing.T, imports map[string]bool) map[string]bool {
	args := []string{"list", "-f", "{{.ImportPath}} {{.Standard}}"}
	for im := range imports {
		if !strings.HasPrefix(im, modulePath) {
			args = append(args, im)
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	std := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "true" {
			std[f[0]] = true
		}
	}
	return std
}

// The rule table itself must reject the edges the design forbids.
func TestRules_ForbidTheWrongDirection(t *testing.T) {
	forbidden := [][2]string{
		{"host", "engine"}, {"host", "plugins"}, {"plugins", "host"}, {"raftstore", "engine/model"},
		{"sdk/abi", "host"}, {"engine/dag", "host"}, {"engine/scheduler", "raftstore"}, {"gpu", "model"},
		{"engine/api", "cmd/lumen"},
	}
	for _, e := range forbidden {
		for _, r := range rules {
			if !match(r.pkg, e[0]) {
				continue
			}
			for _, a := range r.allowed {
				if match(a, e[1]) && (r.pkg == e[0] || !hasExact(e[0])) {
					t.Errorf("rule %q allows forbidden edge %s -> %s", r.pkg, e[0], e[1])
				}
			}
		}
	}
}

func hasExact(pkg string) bool {
	for _, r := range rules {
		if r.pkg == pkg {
			return true
		}
	}
	return false
}
