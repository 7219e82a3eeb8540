package jsonschema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func seedSchemas(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `true`, `{"type":"string"}`, `{"$ref":"#"}`, `{"anyOf":[{"type":"null"},{"$ref":"#"}]}`,
		`{"type":"array","items":{"type":"array","minItems":4000,"items":{"type":"array","minItems":4000}}}`,
		`{"enum":[1e999999,"a"]}`, `{"type":"object","properties":{"a":{"$ref":"#/properties/a"}}}`} {
		f.Add([]byte(s))
	}
}

// FuzzCompile: Compile never panics, refuses with a *SchemaError, and what it accepts yields a
// matcher whose completion from the start is a valid document.
func FuzzCompile(f *testing.F) {
	seedSchemas(f)
	f.Fuzz(func(t *testing.T, schema []byte) {
		s, err := Compile(schema)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("Compile error %T %v is not a *SchemaError", err, err)
			}
			return
		}
		m := s.Start()
		doc := m.Completion()
		if !m.AdvanceBytes(doc) || !m.Accepting() {
			t.Fatalf("completion %q of the start is refused", doc)
		}
		if err := s.Validate(doc); err != nil {
			t.Fatalf("completion %q does not validate: %v", doc, err)
		}
	})
}

// FuzzMatcher: whatever document the matcher accepts parses and validates.
func FuzzMatcher(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"string"}}},"required":["a"]}`), []byte(`{"a":1,"b":["x"]}`))
	f.Add([]byte(`{"anyOf":[{"type":"number"},{"enum":["x",1,[2]]}]}`), []byte(`1.5e3`))
	f.Add([]byte(`{"type":"object"}`), []byte(`{"a":{"b":[null,true,"\u00e9"]}}`))
	f.Fuzz(func(t *testing.T, schema, doc []byte) {
		s, err := Compile(schema)
		if err != nil {
			return
		}
		m := s.Start()
		if !m.AdvanceBytes(doc) || !m.Accepting() {
			return
		}
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("accepted %q does not parse: %v", doc, err)
		}
		if err := s.Validate(doc); err != nil {
			t.Fatalf("accepted %q does not validate: %v", doc, err)
		}
	})
}
