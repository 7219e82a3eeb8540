package dag

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func addTestdata(f *testing.F) {
	for _, file := range workflowFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkErrorList checks an error of Parse or Compile is a sorted ErrorList of paths.
func checkErrorList(t *testing.T, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %T %v is not an ErrorList", err, err)
	}
	for i, e := range list {
		if !strings.HasPrefix(e.Path, "$") || e.Msg == "" {
			t.Fatalf("bad entry %q", e)
		}
		if i > 0 && comparePaths(list[i-1].Path, e.Path) > 0 {
			t.Fatalf("not sorted: %s before %s", list[i-1].Path, e.Path)
		}
	}
}

// compileText is the plan, or the errors, as text.
func compileText(w *Workflow) string {
	p, err := Compile(w, catalog)
	if err != nil {
		return "error: " + err.Error()
	}
	return p.String()
}

// FuzzParse: Parse never panics, reports errors as sorted ErrorLists, and a workflow it accepts
// encodes back (encoding/json) to one it parses to the same workflow, which compiles to the
// same plan or the same errors.
func FuzzParse(f *testing.F) {
	addTestdata(f)
	f.Add([]byte(`{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "args": "\ud800<>&\u2028"}]}`))
	f.Add([]byte(`{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "resources": {"cpu": 1e-7, "custom": {}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := Parse(b)
		if err != nil {
			checkErrorList(t, err)
			return
		}
		enc, err := json.Marshal(w)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		w2, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded workflow refused: %v\n%s", err, enc)
		}
		enc2, _ := json.Marshal(w2)
		if string(enc) != string(enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		if a, b := compileText(w), compileText(w2); a != b {
			t.Fatalf("re-encoded workflow compiles differently:\n%s\n---\n%s", a, b)
		}
	})
}

// FuzzCompile: Compile never panics; an accepted workflow yields a plan in dependency order whose
// templates render to valid JSON from any outputs or fail with a RenderError, and which
// compiles again, re-encoded, to the same plan and digest.
func FuzzCompile(f *testing.F) {
	addTestdata(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := Parse(b)
		if err != nil {
			return
		}
		p, err := Compile(w, catalog)
		if err != nil {
			checkErrorList(t, err)
			return
		}
		pos := map[string]int{}
		for i, s := range p.Steps {
			for _, d := range s.Deps {
				if j, ok := pos[d]; !ok || j >= i {
					t.Fatalf("%s runs before its dependency %s", s.ID, d)
				}
			}
			pos[s.ID] = i
		}
		enc, _ := json.Marshal(w)
		w2, err := Parse(enc)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Compile(w2, catalog)
		if err != nil || p2.Digest() != p.Digest() || p2.String() != p.String() {
			t.Fatalf("re-encoded workflow compiles differently: %v\n%s\n---\n%s", err, p, p2)
		}
		// Render every template from outputs of every step set to the same bytes.
		for _, out := range []string{`{"a": [1, "x"], "0": {}}`, `"text"`, "\xff", `[[],{}]`} {
			outputs := map[string][]byte{}
			for _, s := range p.Steps {
				outputs[s.ID] = []byte(out)
			}
			for _, s := range p.Steps {
				checkRender(t, s.Args, outputs, json.RawMessage(out), 1)
				if s.Map != nil {
					s.Items(outputs)
				}
				s.RenderInput(outputs, json.RawMessage(out), 2)
			}
			checkRender(t, p.Output, outputs, nil, 0)
		}
	})
}

func checkRender(t *testing.T, tpl *Template, outputs map[string][]byte, item json.RawMessage, index int) {
	t.Helper()
	got, err := tpl.Render(outputs, item, index)
	if err != nil {
		var re *RenderError
		if !errors.As(err, &re) {
			t.Fatalf("render error %T: %v", err, err)
		}
		return
	}
	if !json.Valid(got) || !utf8.Valid(got) {
		t.Fatalf("rendered invalid JSON %q from template %s", got, tpl)
	}
}

// FuzzRender renders templates against hostile outputs and elements: never a panic, and
// either valid JSON in valid UTF-8 or a RenderError. Inputs of bytes functions render too.
func FuzzRender(f *testing.F) {
	f.Add(`{"a": "${j}", "b": "x${j.k}y", "c": ["${j[0]}", "${item.z[1]}", "${index}"]}`, []byte(`{"k": "v"}`), []byte(`{"z": [1, 2]}`), 3)
	f.Add(`"${j.k.l[2]}"`, []byte(`{"k": {"l": [0, 1, "\u00e9\"\\"]}}`), []byte(`0`), 0)
	f.Add(`"pre ${b} post ${j.s}"`, []byte("\xff\x00\"\\"), []byte(`"s"`), -1)
	f.Add(`"${b}"`, []byte(`{"k": "v"} trailing`), []byte(`[1,`), 1<<40)
	f.Add(`"$${j} ${item}"`, []byte(`{"k": 1, "k": 2}`), []byte(" \t\n\"\\u0000\" "), 7)
	f.Add(`{"deep": "${j.a.b.c.d}"}`, []byte(strings.Repeat(`{"a":`, 300)), []byte(strings.Repeat("[", 20000)), 0)
	f.Fuzz(func(t *testing.T, args string, out, item []byte, index int) {
		src, err := json.Marshal(map[string]any{"version": 1, "steps": []any{
			map[string]any{"id": "j", "module": "math", "function": "add"},
			map[string]any{"id": "b", "module": "blob", "function": "fetch"},
			map[string]any{"id": "t", "module": "math", "function": "add", "map": "${j}", "args": json.RawMessage(`"ARGS"`)},
			map[string]any{"id": "h", "module": "blob", "function": "hash", "map": "${j}", "args": json.RawMessage(`"ARGS"`)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		quoted, _ := json.Marshal(args)
		doc := strings.ReplaceAll(string(src), `"ARGS"`, string(quoted))
		w, err := Parse([]byte(doc))
		if err != nil {
			return // args that are not valid UTF-8
		}
		p, err := Compile(w, catalog)
		if err != nil {
			checkErrorList(t, err)
			return
		}
		outputs := map[string][]byte{"j": out, "b": out}
		checkRender(t, p.Step("t").Args, outputs, item, index)
		if in, err := p.Step("h").RenderInput(outputs, item, index); err == nil && in == nil {
			t.Fatal("nil input without error")
		}
		if items, err := p.Step("t").Items(outputs); err == nil {
			for _, it := range items {
				if !json.Valid(it) {
					t.Fatalf("invalid element %q", it)
				}
			}
			if j, err := p.Step("t").Join(items2bytes(items)); err == nil && !json.Valid(j) {
				t.Fatalf("joined invalid JSON %q", j)
			}
		}
		if j, err := p.Step("t").Join([][]byte{out, item}); err == nil && !json.Valid(j) {
			t.Fatalf("joined invalid JSON %q", j)
		}
	})
}

func items2bytes(items []json.RawMessage) [][]byte {
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}
