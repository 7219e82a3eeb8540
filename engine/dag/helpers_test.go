package dag

import (
	"fmt"
	"strings"

	"github.com/lumenflow/lumen/sdk/abi"
)

// testCatalog maps module names (without "@version") to their functions.
type testCatalog map[string]map[string]abi.Function

func (c testCatalog) Function(module, function string) (abi.Function, error) {
	name, _, _ := strings.Cut(module, "@")
	fns, ok := c[name]
	if !ok {
		return abi.Function{}, fmt.Errorf("module %q is not registered: %w", module, ErrUnknownModule)
	}
	fn, ok := fns[function]
	if !ok {
		return abi.Function{}, fmt.Errorf("module %q has no function %q: %w", module, function, ErrUnknownFunction)
	}
	return fn, nil
}

func task(name string, in, out abi.Encoding) abi.Function {
	return abi.Function{Name: name, Kind: abi.KindTask, Input: in, Output: out}
}

// catalog is the catalog of the tests and of testdata/*.json.
var catalog = testCatalog{
	"wordcount": {
		"split":  task("split", "", ""),
		"count":  task("count", abi.EncJSON, abi.EncJSON),
		"reduce": task("reduce", "", abi.EncJSON),
	},
	"math": {
		"add":   task("add", "", ""),
		"range": task("range", "", ""),
	},
	"blob": {
		"fetch":  task("fetch", abi.EncJSON, abi.EncBytes), // json in, bytes out
		"resize": task("resize", abi.EncBytes, abi.EncBytes),
		"hash":   task("hash", abi.EncBytes, abi.EncJSON),
	},
	"counter": {
		"Counter":      {Name: "Counter", Kind: abi.KindActor},
		"Counter.incr": {Name: "Counter.incr", Kind: abi.KindMethod, Actor: "Counter"},
	},
	"broken": {
		"fails": task("fails", "", ""),
	},
}

// mustCompile parses and compiles src against catalog.
func mustCompile(t interface {
	Helper()
	Fatalf(string, ...any)
}, src string) *Plan {
	t.Helper()
	w, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := Compile(w, catalog)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}
