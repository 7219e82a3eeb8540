package dag

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The compiler is pure: it may import only these, so it can do no I/O, read no clock and start
// nothing. (internal/archtest guards the project-wide layering; this list is stricter.)
var allowedImports = map[string]bool{
	"bytes": true, "container/heap": true, "crypto/sha256": true, "encoding/binary": true,
	"encoding/hex": true, "encoding/json": true, "errors": true, "fmt": true, "maps": true,
	"math": true, "slices": true, "strconv": true, "strings": true, "unicode/utf16": true,
	"unicode/utf8": true, "github.com/lumenflow/lumen/sdk/abi": true,
}

func TestPackage_ImportsNothingThatDoesIO(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, im := range file.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if !allowedImports[path] {
				t.Errorf("%s imports %s: engine/dag stays pure (no I/O, no clock); extend allowedImports only with packages that do neither", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
