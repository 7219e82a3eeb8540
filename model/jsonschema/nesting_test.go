package jsonschema

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The matcher never nests past MaxNesting, and never opens a container it could not close.
func TestMatcher_NestingLimit(t *testing.T) {
	cases := []struct {
		name, schema, open string
		opens              int // how many times open is accepted from the start
	}{
		{"recursive arrays", `{"type":"array","items":{"$ref":"#"}}`, "[", MaxNesting},
		{"arrays or null", `{"anyOf":[{"type":"array","items":{"$ref":"#"},"minItems":1},{"type":"null"}]}`, "[", MaxNesting},
		{"any object", `{"type":"object"}`, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, c.schema)
			if c.schema == `{"type":"object"}` {
				s = AnyObject()
			}
			m := s.Start()
			var doc []byte
			if c.open == "" { // generic: {"a":[[[[...
				doc = []byte(`{"a":`)
				if !m.AdvanceBytes(doc) {
					t.Fatal("prefix refused")
				}
				c.open, c.opens = "[", MaxNesting-1
			}
			n := 0
			for m.Clone().Advance(c.open[0]) {
				m.Advance(c.open[0])
				doc = append(doc, c.open[0])
				n++
				if n > MaxNesting+5 {
					break
				}
			}
			if n != c.opens {
				t.Fatalf("opened %d containers, want %d", n, c.opens)
			}
			comp := m.Completion()
			if !m.AdvanceBytes(comp) || !m.Accepting() {
				t.Fatalf("completion %q refused", comp)
			}
			doc = append(doc, comp...)
			var v any
			if err := json.Unmarshal(doc, &v); err != nil {
				t.Fatalf("%q...: %v", doc[:20], err)
			}
			if err := s.Validate(doc); err != nil {
				t.Fatal(err)
			}
			if bytes.Count(doc, []byte("[")) > MaxNesting {
				t.Fatalf("%d brackets", bytes.Count(doc, []byte("[")))
			}
		})
	}
}

func TestCompile_SchemaNeedingDeepDocumentsIsUnsatisfiable(t *testing.T) {
	// A literal nested past MaxNesting can never be emitted.
	deep := bytes.Repeat([]byte("["), MaxNesting+1)
	deep = append(deep, bytes.Repeat([]byte("]"), MaxNesting+1)...)
	if _, err := Compile([]byte(`{"const":` + string(deep) + `}`)); err == nil {
		t.Fatal("a const nested past MaxNesting was accepted")
	}
	s := mustCompile(t, `{"enum":[`+string(deep)+`,1]}`)
	if !accepts(s, "1") || s.Start().Advance('[') {
		t.Fatal("the deep enum member should be dropped, the shallow one kept")
	}
}
