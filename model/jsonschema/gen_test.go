package jsonschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"pgregory.net/rapid"
)

// gs is a generated schema, kept as a Go value so that documents can be generated from it
// without going through the package under test.
type gs struct {
	typ      string // string number integer boolean null object array enum const anyOf ref nullable
	props    []gprop
	addl     string // "", "true", "false"
	items    *gs
	minItems int
	maxItems int // -1 none
	lits     []string
	anyOf    []*gs
	ref      string
	desc     bool

	bad string // the keyword injected to make the schema invalid, "" for none
}

type gprop struct {
	name     string
	s        *gs
	required bool
}

type gdefs struct {
	names []string
	defs  map[string]*gs
}

var propNames = []string{"a", "b", "name", "x y", "é", "q\"t", "<&>", "ab", "a\\b"}

var literalPool = []string{`"red"`, `"green"`, `"a\"b"`, `"é"`, `1`, `12`, `-3.5`, `0`, `true`, `false`, `null`, `{"k":[1,2]}`, `[]`, `["x"]`, `"<>"`}

// genSchema draws a schema. Recursion through defs happens only where a document can stop it
// (optional properties, arrays without minItems), so every drawn schema is satisfiable.
func genSchema(t *rapid.T, d *gdefs, depth int, recursive bool) *gs {
	leaf := []string{"string", "number", "integer", "boolean", "null", "enum", "const", "nullable"}
	all := append(append([]string{}, leaf...), "object", "object", "array", "anyOf")
	choices := leaf
	if depth < 3 {
		choices = all
	}
	if depth < 2 && rapid.IntRange(0, 9).Draw(t, "composite") < 6 {
		choices = []string{"object", "object", "array", "anyOf"}
	}
	typ := rapid.SampledFrom(choices).Draw(t, "type")
	g := &gs{typ: typ, maxItems: -1, desc: rapid.Bool().Draw(t, "desc")}
	switch typ {
	case "enum":
		n := rapid.IntRange(1, 4).Draw(t, "nlits")
		perm := rapid.Permutation(literalPool).Draw(t, "lits")
		g.lits = perm[:n]
	case "const":
		g.lits = []string{rapid.SampledFrom(literalPool).Draw(t, "const")}
	case "object":
		n := rapid.IntRange(1, 5).Draw(t, "nprops")
		names := rapid.Permutation(propNames).Draw(t, "names")[:n]
		for _, name := range names {
			p := gprop{name: name, required: rapid.Bool().Draw(t, "required")}
			if recursive && len(d.names) > 0 && rapid.IntRange(0, 3).Draw(t, "userec") == 0 {
				p.s = &gs{typ: "ref", ref: rapid.SampledFrom(d.names).Draw(t, "ref"), maxItems: -1}
				p.required = false
			} else {
				p.s = genSchema(t, d, depth+1, recursive)
			}
			g.props = append(g.props, p)
		}
		g.addl = rapid.SampledFrom([]string{"", "true", "false", "false"}).Draw(t, "addl")
	case "array":
		if recursive && len(d.names) > 0 && rapid.IntRange(0, 2).Draw(t, "userec") == 0 {
			g.items = &gs{typ: "ref", ref: rapid.SampledFrom(d.names).Draw(t, "ref"), maxItems: -1}
		} else {
			g.items = genSchema(t, d, depth+1, recursive)
			g.minItems = rapid.IntRange(0, 2).Draw(t, "minItems")
		}
		if rapid.Bool().Draw(t, "hasMax") {
			g.maxItems = g.minItems + rapid.IntRange(0, 3).Draw(t, "maxItems")
		}
	case "anyOf":
		n := rapid.IntRange(1, 3).Draw(t, "nany")
		for i := 0; i < n; i++ {
			g.anyOf = append(g.anyOf, genSchema(t, d, depth+1, recursive))
		}
	}
	return g
}

// genRoot draws a root schema with 0-2 $defs that may refer to each other and themselves.
func genRoot(t *rapid.T) (*gs, *gdefs) {
	d := &gdefs{defs: map[string]*gs{}}
	nd := rapid.IntRange(0, 2).Draw(t, "ndefs")
	for i := 0; i < nd; i++ {
		d.names = append(d.names, "d"+strconv.Itoa(i))
	}
	for _, name := range d.names {
		d.defs[name] = genSchema(t, d, 1, true)
	}
	if len(d.names) > 0 && rapid.Bool().Draw(t, "rootref") {
		return &gs{typ: "ref", ref: rapid.SampledFrom(d.names).Draw(t, "rootname"), maxItems: -1}, d
	}
	return genSchema(t, d, 0, len(d.names) > 0), d
}

func jstr(s string) string { return string(encodeString(s)) }

// render writes the schema as JSON; it returns the pointer of the injected bad keyword, if any.
func (g *gs) render(buf *strings.Builder, ptr string) string {
	bad := ""
	buf.WriteString("{")
	first := true
	kw := func(k string) {
		if !first {
			buf.WriteString(",")
		}
		first = false
		buf.WriteString(jstr(k) + ":")
	}
	if g.desc {
		kw("description")
		buf.WriteString(`"some text"`)
	}
	switch g.typ {
	case "string", "number", "integer", "boolean", "null":
		kw("type")
		buf.WriteString(jstr(g.typ))
	case "nullable":
		kw("type")
		buf.WriteString(`["string","null"]`)
	case "enum":
		kw("enum")
		buf.WriteString("[" + strings.Join(g.lits, ",") + "]")
	case "const":
		kw("const")
		buf.WriteString(g.lits[0])
	case "ref":
		kw("$ref")
		buf.WriteString(jstr("#/$defs/" + g.ref))
	case "object":
		kw("type")
		buf.WriteString(`"object"`)
		kw("properties")
		buf.WriteString("{")
		for i, p := range g.props {
			if i > 0 {
				buf.WriteString(",")
			}
			buf.WriteString(jstr(p.name) + ":")
			if b := p.s.render(buf, ptr+"/properties/"+escapeToken(p.name)); b != "" {
				bad = b
			}
		}
		buf.WriteString("}")
		var req []string
		for _, p := range g.props {
			if p.required {
				req = append(req, jstr(p.name))
			}
		}
		kw("required")
		buf.WriteString("[" + strings.Join(req, ",") + "]")
		if g.addl != "" {
			kw("additionalProperties")
			buf.WriteString(g.addl)
		}
	case "array":
		kw("type")
		buf.WriteString(`"array"`)
		kw("items")
		if b := g.items.render(buf, ptr+"/items"); b != "" {
			bad = b
		}
		if g.minItems > 0 {
			kw("minItems")
			buf.WriteString(strconv.Itoa(g.minItems))
		}
		if g.maxItems >= 0 {
			kw("maxItems")
			buf.WriteString(strconv.Itoa(g.maxItems))
		}
	case "anyOf":
		kw("anyOf")
		buf.WriteString("[")
		for i, a := range g.anyOf {
			if i > 0 {
				buf.WriteString(",")
			}
			if b := a.render(buf, ptr+"/anyOf/"+strconv.Itoa(i)); b != "" {
				bad = b
			}
		}
		buf.WriteString("]")
	}
	switch g.bad {
	case "pattern":
		kw("pattern")
		buf.WriteString(`"^a"`)
		bad = ptr + "/pattern"
	case "minItems":
		kw("minItems")
		buf.WriteString("-1")
		bad = ptr + "/minItems"
	case "oneOf":
		kw("oneOf")
		buf.WriteString(`[{"type":"string"}]`)
		bad = ptr + "/oneOf"
	}
	buf.WriteString("}")
	return bad
}

func renderRoot(g *gs, d *gdefs) (string, string) {
	var buf strings.Builder
	bad := g.render(&buf, "")
	s := buf.String()
	if len(d.names) > 0 {
		var defs strings.Builder
		defs.WriteString(`{"$defs":{`)
		for i, name := range d.names {
			if i > 0 {
				defs.WriteString(",")
			}
			defs.WriteString(jstr(name) + ":")
			if b := d.defs[name].render(&defs, "/$defs/"+name); b != "" && bad == "" {
				bad = b
			}
		}
		defs.WriteString("},")
		// Splice the root's keywords after $defs.
		rest := strings.TrimPrefix(s, "{")
		if rest == "}" {
			s = strings.TrimSuffix(defs.String(), ",") + "}"
		} else {
			s = defs.String() + rest
		}
	}
	return s, bad
}

// genDoc draws a document of g in the matcher's language (compact, schema property order,
// canonical literals), independently of the matcher.
func genDoc(t *rapid.T, g *gs, d *gdefs, depth int, buf *bytes.Buffer) {
	deep := depth > 5
	switch g.typ {
	case "string":
		s := rapid.SampledFrom([]string{"", "x", "hello world", "é\u00e9", "tab\t", "q\"", "\\", "日本", "\U0001F600"}).Draw(t, "str")
		buf.Write(encodeString(s))
	case "nullable":
		if rapid.Bool().Draw(t, "null") {
			buf.WriteString("null")
		} else {
			buf.WriteString(`"n"`)
		}
	case "number":
		buf.WriteString(rapid.SampledFrom([]string{"0", "-1", "3.25", "1e9", "-0.5E-3", "1234567890123456", "-0.1234567890123456e-99"}).Draw(t, "num"))
	case "integer":
		buf.WriteString(strconv.Itoa(rapid.IntRange(-1000, 1000).Draw(t, "int")))
	case "boolean":
		buf.WriteString(rapid.SampledFrom([]string{"true", "false"}).Draw(t, "bool"))
	case "null":
		buf.WriteString("null")
	case "enum", "const":
		lit := rapid.SampledFrom(g.lits).Draw(t, "lit")
		var out bytes.Buffer
		_ = json.Compact(&out, []byte(lit))
		buf.Write(out.Bytes())
	case "ref":
		genDoc(t, d.defs[g.ref], d, depth+1, buf)
	case "anyOf":
		genDoc(t, rapid.SampledFrom(g.anyOf).Draw(t, "branch"), d, depth+1, buf)
	case "object":
		buf.WriteString("{")
		n := 0
		for _, p := range g.props {
			if !p.required && (deep || !rapid.Bool().Draw(t, "include")) {
				continue
			}
			if n > 0 {
				buf.WriteString(",")
			}
			n++
			buf.Write(encodeString(p.name))
			buf.WriteString(":")
			genDoc(t, p.s, d, depth+1, buf)
		}
		buf.WriteString("}")
	case "array":
		hi := g.minItems + 3
		if deep {
			hi = g.minItems
		}
		if g.maxItems >= 0 && hi > g.maxItems {
			hi = g.maxItems
		}
		n := rapid.IntRange(g.minItems, hi).Draw(t, "nitems")
		buf.WriteString("[")
		for i := 0; i < n; i++ {
			if i > 0 {
				buf.WriteString(",")
			}
			genDoc(t, g.items, d, depth+1, buf)
		}
		buf.WriteString("]")
	default:
		panic(fmt.Sprintf("genDoc: type %q", g.typ))
	}
}
