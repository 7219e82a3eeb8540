package plugins

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports_PointOneWay keeps the package a leaf of the engine: the standard library, badger
// and sdk/abi, and nothing else of ours (the host only in tests).
func TestImports_PointOneWay(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, spec := range parsed.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case !strings.Contains(first, "."): // the standard library
			case path == "github.com/lumenflow/lumen/sdk/abi":
			case strings.HasPrefix(path, "github.com/dgraph-io/badger/v4"):
			default:
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
