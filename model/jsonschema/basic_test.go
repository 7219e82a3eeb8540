package jsonschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// accepts feeds doc byte by byte and reports whether it ends accepting.
func accepts(s *Schema, doc string) bool {
	m := s.Start()
	for i := 0; i < len(doc); i++ {
		if !m.Advance(doc[i]) {
			return false
		}
	}
	return m.Accepting()
}

func mustCompile(t testing.TB, schema string) *Schema {
	t.Helper()
	s, err := Compile([]byte(schema))
	if err != nil {
		t.Fatalf("Compile(%s): %v", schema, err)
	}
	return s
}

func TestMatcher_Table(t *testing.T) {
	person := `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
		"tags":{"type":"array","items":{"type":"string"},"maxItems":2},"nick":{"type":["string","null"]}},
		"required":["name","age"],"additionalProperties":false}`
	tree := `{"$defs":{"node":{"type":"object","properties":{"v":{"type":"number"},
		"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v","kids"],"additionalProperties":false}},
		"$ref":"#/$defs/node"}`
	cases := []struct {
		schema string
		doc    string
		want   bool
	}{
		{person, `{"name":"a","age":3}`, true},
		{person, `{"name":"a","age":3,"tags":["x","y"],"nick":null}`, true},
		{person, `{"name":"a","age":3,"nick":"z"}`, true},
		{person, `{"name":"a","age":3,"tags":["x","y","z"]}`, false},
		{person, `{"age":3,"name":"a"}`, false}, // schema order only
		{person, `{"name":"a"}`, false},
		{person, `{"name":"a","age":3.5}`, false},
		{person, `{"name":"a","age":-0}`, true},
		{person, `{"name":"a","age":01}`, false},
		{person, `{"name":"a","age":3,"x":1}`, false},
		{person, `{"name":"a\u00e9\n","age":3}`, true},
		{person, "{\"name\":\"\xff\",\"age\":3}", false},
		{person, "{\"name\":\"caf\xc3\xa9\",\"age\":3}", true},
		{person, `{"name":"a", "age":3}`, false}, // compact only
		{tree, `{"v":1,"kids":[{"v":2.5e-3,"kids":[]},{"v":-1,"kids":[]}]}`, true},
		{tree, `{"v":1,"kids":[{"v":2}]}`, false},
		{`{"enum":["red","green",1,12,{"a":[1]}]}`, `"green"`, true},
		{`{"enum":["red","green",1,12,{"a":[1]}]}`, `12`, true},
		{`{"enum":["red","green",1,12,{"a":[1]}]}`, `1`, true},
		{`{"enum":["red","green",1,12,{"a":[1]}]}`, `{"a":[1]}`, true},
		{`{"enum":["red","green",1,12,{"a":[1]}]}`, `123`, false},
		{`{"type":"string","enum":["a",1]}`, `1`, false},
		{`{"const":true}`, `true`, true},
		{`{"anyOf":[{"type":"integer"},{"type":"array","items":{"type":"boolean"},"minItems":1}]}`, `[true,false]`, true},
		{`{"anyOf":[{"type":"integer"},{"type":"array","items":{"type":"boolean"},"minItems":1}]}`, `[]`, false},
		{`{"anyOf":[{"type":"integer"},{"type":"array","items":{"type":"boolean"},"minItems":1}]}`, `-7`, true},
		{`{"type":"object"}`, `{"x":[1,{"y":null}],"z":"w"}`, true},
		{`{}`, `[1,"a",{"b":false}]`, true},
		{`{"type":"number"}`, `1.5E+10`, true},
		{`{"type":"number"}`, `1.`, false},
	}
	for _, c := range cases {
		s := mustCompile(t, c.schema)
		if got := accepts(s, c.doc); got != c.want {
			t.Errorf("schema %s doc %s: accepted %v, want %v", c.schema, c.doc, got, c.want)
		}
		if c.want {
			if err := s.Validate([]byte(c.doc)); err != nil {
				t.Errorf("Validate(%s): %v", c.doc, err)
			}
			if !json.Valid([]byte(c.doc)) {
				t.Errorf("%s is not JSON", c.doc)
			}
		}
	}
}

func TestCompile_RefusesWithPointer(t *testing.T) {
	cases := []struct{ schema, ptr, msg string }{
		{`{"type":"strin"}`, "/type", "unknown type"},
		{`{"type":"object","properties":{"a":{"type":"string","pattern":"x"}}}`, "/properties/a/pattern", "not supported"},
		{`{"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}`, "/required/0", "not in properties"},
		{`{"$ref":"#"}`, "", "cycle"},
		{`{"$ref":"#/$defs/nope"}`, "/$ref", "no member"},
		{`{"$ref":"http://x/y"}`, "/$ref", "not supported"},
		{`{"type":"array","minItems":3,"maxItems":2}`, "/maxItems", "below minItems"},
		{`{"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]}`, "", "no document satisfies"},
		{`{"type":"string","enum":[1,2]}`, "", "no document satisfies"},
		{`{"type":"object","additionalProperties":{"type":"string"}}`, "/additionalProperties", "boolean"},
		{`{"anyOf":[]}`, "/anyOf", "non-empty"},
		{`[1]`, "", "must be an object"},
		{`{"type":"object","properties":{"a/b":{"type":"x"}}}`, "/properties/a~1b/type", "unknown type"},
		{`{"type":["string","bogus"]}`, "/type/1", "unknown type"},
		{`not json`, "", "not valid JSON"},
	}
	for _, c := range cases {
		_, err := Compile([]byte(c.schema))
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%s) = %v, want a *SchemaError", c.schema, err)
			continue
		}
		if se.Pointer != c.ptr || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("Compile(%s) = %q at %q, want %q at %q", c.schema, se.Msg, se.Pointer, c.msg, c.ptr)
		}
	}
}

func TestCompile_EnumDuplicatesByValue(t *testing.T) {
	for _, c := range []struct{ schema, ptr string }{
		{`{"enum":[1,"a",1.0]}`, "/enum/2"},
		{`{"enum":[{"a":1,"b":[2]},{"b":[2],"a":1e0}]}`, "/enum/1"},
		{`{"enum":[{"a":1,"a":2}]}`, "/enum/0"},
		{`{"const":{"x":{"k":1,"k":1}}}`, "/const"},
	} {
		_, err := Compile([]byte(c.schema))
		var se *SchemaError
		if !errors.As(err, &se) || se.Pointer != c.ptr {
			t.Errorf("Compile(%s) = %v, want an error at %s", c.schema, err, c.ptr)
		}
	}
	s := mustCompile(t, `{"enum":[1,"1",{"a":1},{"a":"1"}]}`)
	for _, doc := range []string{`1`, `"1"`, `{"a":1}`, `{"a":"1"}`} {
		if !accepts(s, doc) {
			t.Errorf("%s refused", doc)
		}
	}
}

func TestCompile_LargeEnumIsFast(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"enum":[`)
	for i := 0; i < MaxEnum; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", i)
	}
	b.WriteString(`]}`)
	s := mustCompile(t, b.String())
	if !accepts(s, "9999") || accepts(s, "10000") {
		t.Fatal("large enum matches wrongly")
	}
	over := strings.Replace(b.String(), `]}`, `,10000]}`, 1)
	if _, err := Compile([]byte(over)); err == nil {
		t.Fatal("an enum over MaxEnum was accepted")
	}
}
