package archtest

import (
	"slices"
	"strings"
	"testing"
)

const (
	goodHeader = "| package | job | may import (ours) | tests may also import (ours) | third-party |\n| --- | --- | --- | --- | --- |\n"
	goodTable  = "# Doc\n\n" + tableHeading + "\n\n```\na ──> b\n```\n\n" + goodHeader +
		"| `sdk/abi` | leaf | nothing | nothing | standard library only |\n" + // line 11
		"| `examples/` | examples | `sdk/abi`, `sdk/go` | `engine/client` | any |\n" +
		"| `examples/polyglot` | one of them | nothing | `engine`, `internal/` | standard library only (tests: any) |\n" +
		"| `engine/testdata/` | guests | `sdk/abi` | nothing | any |\n" +
		"| `engine/` | the rest of the engine | `engine` | nothing | any |\n" +
		"| `engine` | the engine | `sdk/abi` | nothing | any |\n" +
		"\nprose after the table | with a bar\n\n## Next\n\n| not | ours |\n"
)

func TestParseTable_ReadsEveryRow(t *testing.T) {
	rules, err := parseTable("doc.md", strings.NewReader(goodTable))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.pkg)
	}
	want := []string{"sdk/abi", "examples/", "examples/polyglot", "engine/testdata/", "engine/", "engine"}
	if !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	r := rules[2]
	if r.line != 13 || len(r.imports) != 0 || !slices.Equal(r.testImports, []string{"engine", "internal/"}) || r.thirdParty != stdOnlyTestsAny {
		t.Errorf("row `examples/polyglot` parsed as %+v", r)
	}
	if r := rules[1]; !slices.Equal(r.imports, []string{"sdk/abi", "sdk/go"}) || r.thirdParty != anyModule {
		t.Errorf("row `examples/` parsed as %+v", r)
	}
}

func TestParseTable_RefusesMalformedTables(t *testing.T) {
	row := func(cells string) string { return "## Packages and import direction\n\n" + goodHeader + cells + "\n" }
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"no heading", "# Doc\n\n" + goodHeader, `doc.md: no "## Packages and import direction" heading`},
		{"no table under the heading", tableHeading + "\n\nprose\n\n## Next\n\n" + goodHeader, "doc.md: no table under"},
		{"old three-column header", tableHeading + "\n| package | job | may import (ours) |\n| --- | --- | --- |\n", "doc.md:2: table header is"},
		{"no separator", tableHeading + "\n" + strings.SplitAfter(goodHeader, "\n")[0] + "| `a` | b | nothing | nothing | any |\n", "doc.md:3: want the table's separator row"},
		{"header only", tableHeading + "\n" + strings.SplitAfter(goodHeader, "\n")[0], "doc.md:2: the table ends after its header"},
		{"no rows", row(""), "doc.md: the table under \"## Packages and import direction\" has no rows"},
		{"too few cells", row("| `host` | sandbox | `sdk/abi` | any |"), "doc.md:5: row has 4 cells, want 5"},
		{"no closing bar", row("| `host` | sandbox | `sdk/abi` | nothing | any"), "doc.md:5: row"},
		{"package without backticks", row("| host | sandbox | `sdk/abi` | nothing | any |"), `doc.md:5: package: "host" is not a module-relative path in backticks`},
		{"ellipsis folder", row("| `sdk/conformance/…` | guests | nothing | nothing | any |"), "doc.md:5: package: `sdk/conformance/…` has '…'"},
		{"dot-dot path", row("| `host/../engine` | sandbox | nothing | nothing | any |"), "doc.md:5: package: `host/../engine` is not a clean"},
		{"no job", row("| `host` |  | `sdk/abi` | nothing | any |"), "doc.md:5: `host` has no job"},
		{"empty import cell", row("| `host` | sandbox |  | nothing | any |"), "doc.md:5: `host`, may import: empty cell"},
		{"prose import cell", row("| `host` | sandbox | the packages above | nothing | any |"), "doc.md:5: `host`, may import: \"the packages above\" is not"},
		{"entry twice", row("| `host` | sandbox | `sdk/abi`, `sdk/abi` | nothing | any |"), "doc.md:5: `host`, may import: `sdk/abi` listed twice"},
		{"test entry already allowed", row("| `host` | sandbox | `sdk/abi` | `sdk/abi` | any |"), "doc.md:5: `host`, tests may also import: `sdk/abi` is already in may import"},
		{"unknown third-party words", row("| `host` | sandbox | `sdk/abi` | nothing | standard library |"), "doc.md:5: `host`, third-party: \"standard library\" is none of"},
		{"second row for a package", row("| `host` | sandbox | nothing | nothing | any |\n| `host` | again | nothing | nothing | any |"), "doc.md:6: second row for `host` (first on line 5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := parseTable("doc.md", strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("parsed %d rows, want an error containing %q", len(rules), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResolve_MostSpecificRowWins(t *testing.T) {
	rules, err := parseTable("doc.md", strings.NewReader(goodTable))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ pkg, want string }{
		{"engine", "engine"},                          // exact row beats the folder row `engine/`
		{"engine/api", "engine/"},                     // folder row
		{"engine/testdata/guest", "engine/testdata/"}, // the longer folder row beats `engine/`
		{"examples/polyglot", "examples/polyglot"},    // exact row beats `examples/`
		{"examples/polyglot/go", "examples/"},         // an exact row does not cover what is under it
		{"examples", ""},                              // a folder row covers only what is under it
		{"enginex", ""},
		{"sdk/abi/more", ""},
	} {
		got := ""
		if i := resolve(rules, tc.pkg); i >= 0 {
			got = rules[i].pkg
		}
		if got != tc.want {
			t.Errorf("resolve(%q) = row %q, want %q", tc.pkg, got, tc.want)
		}
	}
}

func TestCheckImports_ReportsWhatTheTableDoesNotAllow(t *testing.T) {
	const mod = "example.com/m"
	rules, err := parseTable("doc.md", strings.NewReader(tableHeading+"\n"+goodHeader+
		"| `leaf` | leaf | nothing | nothing | standard library only |\n"+ // line 4
		"| `mid` | middle | `leaf` | `helper` | standard library only (tests: any) |\n"+
		"| `helper` | test helper | nothing | nothing | any |\n"+
		"| `guests/` | guests | `leaf` | nothing | any |\n"))
	if err != nil {
		t.Fatal(err)
	}
	std := func(im string) bool { return !strings.Contains(im, ".") }
	good := []listedPackage{
		{Path: "leaf", Imports: []string{"fmt", "unsafe", "C"}, XTestImports: []string{mod + "/leaf", "testing"}},
		{Path: "mid", Imports: []string{mod + "/leaf"}, TestImports: []string{mod + "/helper", "pgregory.net/rapid"}},
		{Path: "helper", Imports: []string{"github.com/x/y"}},
		{Path: "guests/a", Imports: []string{mod + "/leaf", "github.com/x/y"}},
		{Path: "guests/b"},
	}
	with := func(change func([]listedPackage) []listedPackage) []listedPackage {
		pkgs := make([]listedPackage, len(good))
		copy(pkgs, good)
		return change(pkgs)
	}
	for _, tc := range []struct {
		name    string
		pkgs    []listedPackage
		want    []string // each problem contains one of these, in order
		checked int
	}{
		{"all allowed", good, nil, 5},
		{"forbidden edge", with(func(p []listedPackage) []listedPackage {
			p[0].Imports = append(p[0].Imports, mod+"/mid")
			return p
		}), []string{"forbidden import: leaf imports mid; row `leaf` (doc.md:4) allows nothing"}, 5},
		{"test helper outside tests", with(func(p []listedPackage) []listedPackage {
			p[1].Imports = append(p[1].Imports, mod+"/helper")
			return p
		}), []string{"forbidden import: mid imports helper; row `mid` (doc.md:5) allows `leaf`"}, 5},
		{"external test importing another package", with(func(p []listedPackage) []listedPackage {
			p[0].XTestImports = append(p[0].XTestImports, mod+"/helper")
			return p
		}), []string{"forbidden import: leaf_test imports helper"}, 5},
		{"third-party in a standard-library-only package", with(func(p []listedPackage) []listedPackage {
			p[0].TestImports = []string{"go.uber.org/goleak"}
			p[1].Imports = append(p[1].Imports, "github.com/x/y")
			return p
		}), []string{
			`leaf (tests) imports go.uber.org/goleak, outside the standard library, but row ` + "`leaf`" + ` (doc.md:4) says "standard library only"`,
			`mid imports github.com/x/y, outside the standard library, but row ` + "`mid`" + ` (doc.md:5) says "standard library only (tests: any)"`,
		}, 5},
		{"package with no row", with(func(p []listedPackage) []listedPackage {
			return append(p, listedPackage{Path: "cmd/new"})
		}), []string{"cmd/new: no row of the table in doc.md governs this package"}, 5},
		{"row that governs nothing", good[:3], []string{"doc.md:7: stale row `guests/`: it governs no package of the module"}, 3},
		{"allowances nobody uses", with(func(p []listedPackage) []listedPackage {
			p[1] = listedPackage{Path: "mid", TestImports: []string{mod + "/leaf"}}
			return p
		}), []string{
			"doc.md:5: row `mid` allows `leaf`, but no package it governs imports it outside tests",
			"doc.md:5: row `mid` lets tests import `helper`, but no test of a package it governs imports it",
			"doc.md:5: row `mid` says \"standard library only (tests: any)\", but no test imports outside the standard library",
		}, 5},
		{"renamed package", with(func(p []listedPackage) []listedPackage {
			p[1].Path = "mid2"
			return p
		}), []string{"mid2: no row", "doc.md:5: stale row `mid`: it governs no package of the module"}, 4},
		{"entry naming no package", with(func(p []listedPackage) []listedPackage {
			return slices.Delete(p, 2, 3) // helper is gone
		}), []string{
			"doc.md:5: row `mid` lets tests import `helper`, which names no package of the module",
			"doc.md:6: stale row `helper`: it governs no package of the module",
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, checked := checkImports(mod, "doc.md", rules, tc.pkgs, std)
			if len(problems) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d, containing %q", strings.Join(problems, "\n"), len(tc.want), tc.want)
			}
			for i := range problems {
				if !strings.Contains(problems[i], tc.want[i]) {
					t.Errorf("problem %q, want it to contain %q", problems[i], tc.want[i])
				}
			}
			if checked != tc.checked {
				t.Errorf("checked %d packages, want %d", checked, tc.checked)
			}
		})
	}
}
