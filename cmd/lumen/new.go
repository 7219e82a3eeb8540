package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"

	"github.com/lumenflow/lumen/sdk"
)

// templates are the files `lumen new` writes: templates/<lang>/* and the shared ones beside them.
//
//go:embed templates
var templates embed.FS

// newLang describes how `lumen new` lays out a project in one language.
type newLang struct {
	name     string            // for people: "Go", "C", ...
	files    map[string]string // template (under templates/) -> file in the project
	sdk      map[string]string // embedded SDK source (under sdk.Sources) -> file in the project
	testWhat string            // what `make test` does
	sdkNote  string            // where the SDK comes from
}

var newLangs = map[string]newLang{
	"go": {
		name: "Go",
		files: map[string]string{
			"go/go.mod.tmpl": "go.mod", "go/main.go.tmpl": "main.go", "go/main_test.go.tmpl": "main_test.go",
			"go/Makefile.tmpl": "Makefile",
		},
		testWhat: "run the task functions natively, build the module and check its exports",
		sdkNote:  "The SDK is `github.com/lumenflow/lumen/sdk/go`, from the Lumen checkout that go.mod's replace names.",
	},
	"c": {
		name:     "C",
		files:    map[string]string{"c/main.c.tmpl": "main.c", "c/Makefile.tmpl": "Makefile"},
		sdk:      map[string]string{"c/lumen.h": "lumen/lumen.h", "c/lumen.c": "lumen/lumen.c"},
		testWhat: "build the module and check its exports",
		sdkNote:  "`lumen/` holds a copy of Lumen's C SDK (`lumen.h` documents it).",
	},
	"rust": {
		name: "Rust",
		files: map[string]string{
			"rust/Cargo.toml.tmpl": "Cargo.toml", "rust/lib.rs.tmpl": "src/lib.rs", "rust/Makefile.tmpl": "Makefile",
		},
		sdk:      map[string]string{"rust/Cargo.toml": "lumen/Cargo.toml", "rust/src": "lumen/src"},
		testWhat: "run the task functions natively, build the module and check its exports",
		sdkNote:  "`lumen/` holds a copy of Lumen's Rust SDK crate (std only; `cargo doc` documents it).",
	},
	"assemblyscript": {
		name: "AssemblyScript",
		files: map[string]string{
			"assemblyscript/index.ts.tmpl": "assembly/index.ts", "assemblyscript/package.json.tmpl": "package.json",
			"assemblyscript/Makefile.tmpl": "Makefile",
		},
		sdk:      map[string]string{"assemblyscript/assembly/index.ts": "assembly/lumen.ts"},
		testWhat: "build the module and check its exports",
		sdkNote:  "`assembly/lumen.ts` is a copy of Lumen's AssemblyScript SDK (`@lumen/sdk`).",
	},
}

// sharedTemplates are written for every language.
var sharedTemplates = map[string]string{
	"README.md.tmpl": "README.md", "check-exports.sh.tmpl": "check-exports.sh", "gitignore.tmpl": ".gitignore",
}

var validProjectName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

const newUsage = `Usage: lumen new --lang go|rust|c|assemblyscript [--lumen DIR] [--force] NAME

Creates folder NAME with a task module (tasks add and echo), a Makefile that builds NAME.wasm
and a test ("make test"). NAME is lower case: letters, digits, - and _.
`

// newCommand is `lumen new`.
func newCommand(args []string) error {
	fl := flag.NewFlagSet("new", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(fl.Output(), newUsage); fl.PrintDefaults() }
	lang := fl.String("lang", "", "the module's language: go, rust, c or assemblyscript")
	lumenSrc := fl.String("lumen", os.Getenv("LUMEN_SRC"), "a Lumen source checkout, for Go modules' SDK (default: $LUMEN_SRC, else found above the current directory or the lumen binary)")
	force := fl.Bool("force", false, "write into NAME even if it exists and is not empty")
	// Flags may come before or after NAME.
	var names []string
	for {
		if err := fl.Parse(args); err != nil {
			return err
		}
		if fl.NArg() == 0 {
			break
		}
		names = append(names, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(names) != 1 {
		fl.Usage()
		return errors.New("new: want exactly one NAME")
	}
	if err := scaffold(names[0], *lang, *lumenSrc, *force); err != nil {
		return err
	}
	fmt.Printf("Created %s, a %s task module. Next:\n  cd %s && make test\n", names[0], newLangs[*lang].name, names[0])
	return nil
}

// scaffold writes the project dir in language lang.
func scaffold(dir, lang, lumenSrc string, force bool) error {
	l, ok := newLangs[lang]
	if !ok {
		return fmt.Errorf("new: --lang %q: want go, rust, c or assemblyscript", lang)
	}
	name := filepath.Base(filepath.Clean(dir))
	if !validProjectName.MatchString(name) {
		return fmt.Errorf("new: name %q: want lower-case letters, digits, - and _, starting with a letter", name)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !force {
		return fmt.Errorf("new: %s exists and is not empty (--force writes into it)", dir)
	}
	data := map[string]string{
		"Name": name, "Crate": strings.ReplaceAll(name, "-", "_"), "LangName": l.name,
		"TestWhat": l.testWhat, "SDKNote": l.sdkNote,
	}
	if lang == "go" {
		src, err := findLumenSource(lumenSrc)
		if err != nil {
			return err
		}
		data["LumenSrc"] = src
		// The new module's go line must not be below Lumen's, or the go command asks for a
		// go.mod update before anything builds.
		data["GoVersion"] = goVersion(src)
	}
	files := map[string][]byte{}
	render := func(tmpl, out string) error {
		b, err := templates.ReadFile(path.Join("templates", tmpl))
		if err != nil {
			return err
		}
		t, err := template.New(tmpl).Option("missingkey=error").Parse(string(b))
		if err != nil {
			return fmt.Errorf("new: template %s: %w", tmpl, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return fmt.Errorf("new: template %s: %w", tmpl, err)
		}
		files[out] = buf.Bytes()
		return nil
	}
	for tmpl, out := range sharedTemplates {
		if err := render(tmpl, out); err != nil {
			return err
		}
	}
	for tmpl, out := range l.files {
		if err := render(tmpl, out); err != nil {
			return err
		}
	}
	for src, out := range l.sdk {
		err := fs.WalkDir(sdk.Sources, src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := sdk.Sources.ReadFile(p)
			files[path.Join(out, strings.TrimPrefix(p, src))] = b
			return err
		})
		if err != nil {
			return fmt.Errorf("new: copy the SDK: %w", err)
		}
	}
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("new: %w", err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			return fmt.Errorf("new: %w", err)
		}
	}
	return nil
}

// lumenModulePath is the module path of Lumen's own go.mod.
const lumenModulePath = "github.com/lumenflow/lumen"

// findLumenSource returns the absolute path of a Lumen source checkout: explicit if set, else
// the first directory holding Lumen's go.mod above the working directory or the lumen binary.
func findLumenSource(explicit string) (string, error) {
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err != nil {
			return "", err
		}
		if !isLumenSource(abs) {
			return "", fmt.Errorf("new: %s is not a Lumen source checkout (no go.mod of %s)", explicit, lumenModulePath)
		}
		return abs, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for {
			if isLumenSource(d) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("new: a Go module needs Lumen's Go SDK from a Lumen source checkout until Lumen is published: pass --lumen DIR or set LUMEN_SRC")
}

// goVersion returns the go directive of dir's go.mod, or this binary's Go version without its
// "go" prefix when it has none.
func goVersion(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "go" {
				return f[1]
			}
		}
	}
	return strings.TrimPrefix(runtime.Version(), "go")
}

func isLumenSource(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == lumenModulePath {
			return true
		}
	}
	return false
}
