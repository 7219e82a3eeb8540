package jsonschema

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SchemaError is a schema Compile refuses. Pointer is the JSON pointer (RFC 6901) of the keyword
// at fault, "" for the root.
type SchemaError struct {
	Pointer string
	Msg     string
}

// Error says where and what.
func (e *SchemaError) Error() string {
	return "jsonschema: #" + e.Pointer + ": " + e.Msg
}

// Limits on what Compile accepts, so a hostile schema cannot make compilation or matching
// expensive.
const (
	// MaxSchemaBytes is the largest schema document Compile reads.
	MaxSchemaBytes = 1 << 20
	// MaxSchemaDepth is the deepest nesting of subschemas Compile follows.
	MaxSchemaDepth = 64
	// MaxNodes is the most subschemas one schema may hold.
	MaxNodes = 10000
	// MaxEnum is the most values one enum may list.
	MaxEnum = 10000
)

type kind uint8

const (
	kAny     kind = iota // any JSON value
	kObject              // an object; generic (any members) when props is empty and extras are allowed
	kArray               // an array of items
	kString              // any string
	kNumber              // any number
	kInteger             // an integral number
	kLiteral             // one of a fixed set of values (boolean, null, enum, const)
	kAnyOf               // one of several subschemas
	kRef                 // the subschema at another pointer
)

var kindNames = [...]string{"any", "object", "array", "string", "number", "integer", "literal", "anyOf", "$ref"}

type node struct {
	kind kind
	ptr  string

	// kObject
	props      []prop
	propIndex  map[string]int // name -> index in props
	additional bool           // members not in props are valid (Validate); the matcher never emits them
	generic    bool           // no props and extras allowed: the matcher emits any members

	// kArray
	items    *node // nil: any values
	minItems int
	maxItems int // -1: unbounded

	// kLiteral
	lits []value
	enc  [][]byte // compact encodings of lits, what the matcher emits

	base *node // the type keywords beside enum/const, which filter lits

	// kAnyOf
	anyOf []*node
	// kRef
	ref *node

	leaves []*node // kRef, kAnyOf: the satisfiable concrete nodes reached through $ref/anyOf

	sat        bool     // some document within MaxMinDocument bytes and MaxNesting levels validates
	minLen     int      // length of the shortest valid document
	minNest    int      // fewest nested containers a valid document needs
	litNest    []int    // kLiteral: the nesting of each literal
	maxLitNest int      // the deepest of them
	allLits    []uint16 // 0..len(enc)-1, shared by frames that may take any literal
}

type prop struct {
	name     string
	key      []byte // `"name":`, what the matcher emits
	schema   *node
	required bool
}

// Schema is a compiled schema. It is immutable and safe for concurrent use.
type Schema struct {
	root *node
}

var anyNode = &node{kind: kAny, sat: true, minLen: 1}

var anyObjectSchema = &Schema{root: &node{kind: kObject, additional: true, generic: true, sat: true, minLen: 2, minNest: 1}}

// AnyObject is the schema of response_format json_object: any JSON object.
func AnyObject() *Schema { return anyObjectSchema }

// annotation keywords: accepted and ignored.
var annotations = map[string]bool{
	"description": true, "title": true, "$schema": true, "$id": true, "$comment": true,
	"examples": true, "default": true, "$defs": true, "definitions": true, "deprecated": true,
	"readOnly": true, "writeOnly": true,
}

// keywords Compile understands; anything else is refused.
var known = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true,
	"items": true, "minItems": true, "maxItems": true, "enum": true, "const": true,
	"anyOf": true, "$ref": true,
}

type compiler struct {
	root  value
	memo  map[string]*node
	nodes []*node
}

// Compile compiles a schema of the strict-mode subset: type (object, array, string, number,
// integer, boolean, null, or an array of these), properties, required, additionalProperties
// (a boolean), items, minItems, maxItems, enum, const, anyOf, and $ref to "#" or any "#/..."
// pointer within the document ($defs and definitions included, recursion allowed). Annotations
// (description, title, default, examples, $comment, ...) are ignored. Any other keyword, a
// malformed one, or a schema no document within the limits (MaxMinDocument, MaxNesting)
// satisfies is refused with a *SchemaError.
func Compile(schema []byte) (*Schema, error) {
	if len(schema) > MaxSchemaBytes {
		return nil, &SchemaError{Msg: fmt.Sprintf("schema is %d bytes, over the limit of %d", len(schema), MaxSchemaBytes)}
	}
	root, err := parseValue(schema)
	if err != nil {
		return nil, &SchemaError{Msg: "not valid JSON: " + err.Error()}
	}
	c := &compiler{root: root, memo: map[string]*node{}}
	n, err := c.compile(root, "", 0)
	if err != nil {
		return nil, err
	}
	if err := c.checkCycles(); err != nil {
		return nil, err
	}
	c.filterLiterals()
	for _, n := range c.nodes {
		if n.kind == kLiteral {
			for i, d := range n.litNest {
				n.maxLitNest = max(n.maxLitNest, d)
				n.allLits = append(n.allLits, uint16(i))
			}
		}
	}
	c.solveSat()
	c.findLeaves()
	if !n.sat {
		return nil, &SchemaError{Msg: fmt.Sprintf("no document satisfies this schema within the limits: a required property or minItems leads only to unsatisfiable or endlessly recursive subschemas, or every document is over %d bytes or nested over %d levels", MaxMinDocument, MaxNesting)}
	}
	return &Schema{root: n}, nil
}

func (c *compiler) newNode(k kind, ptr string) (*node, error) {
	if len(c.nodes) >= MaxNodes {
		return nil, &SchemaError{Pointer: ptr, Msg: fmt.Sprintf("schema has more than %d subschemas", MaxNodes)}
	}
	n := &node{kind: k, ptr: ptr, maxItems: -1}
	c.nodes = append(c.nodes, n)
	return n, nil
}

func escapeToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func errAt(ptr, format string, args ...any) error {
	return &SchemaError{Pointer: ptr, Msg: fmt.Sprintf(format, args...)}
}

// compile compiles v, the subschema at ptr. Results are memoised by pointer so a $ref to a
// subschema compiled inline shares its node, and recursion terminates.
func (c *compiler) compile(v value, ptr string, depth int) (*node, error) {
	if n, ok := c.memo[ptr]; ok {
		return n, nil
	}
	if depth > MaxSchemaDepth {
		return nil, errAt(ptr, "schema nested deeper than %d", MaxSchemaDepth)
	}
	if v.kind == 'b' {
		if v.b {
			n, err := c.newNode(kAny, ptr)
			if err != nil {
				return nil, err
			}
			n.sat = true
			c.memo[ptr] = n
			return n, nil
		}
		return nil, errAt(ptr, "the schema false is not supported")
	}
	if v.kind != 'o' {
		return nil, errAt(ptr, "a schema must be an object or a boolean")
	}
	for _, m := range v.obj {
		if !known[m.key] && !annotations[m.key] {
			return nil, errAt(ptr+"/"+escapeToken(m.key), "keyword %q is not supported", m.key)
		}
	}
	// Definitions are compiled even when nothing refers to them, so their errors surface.
	for _, dk := range []string{"$defs", "definitions"} {
		defs, ok := v.get(dk)
		if !ok {
			continue
		}
		if defs.kind != 'o' {
			return nil, errAt(ptr+"/"+dk, "%s must be an object", dk)
		}
		for _, m := range defs.obj {
			if _, err := c.compile(m.val, ptr+"/"+dk+"/"+escapeToken(m.key), depth+1); err != nil {
				return nil, err
			}
		}
	}
	if ref, ok := v.get("$ref"); ok {
		for _, m := range v.obj {
			if known[m.key] && m.key != "$ref" {
				return nil, errAt(ptr+"/"+escapeToken(m.key), "%s beside $ref is not supported", m.key)
			}
		}
		if ref.kind != 's' {
			return nil, errAt(ptr+"/$ref", "$ref must be a string")
		}
		n, err := c.newNode(kRef, ptr)
		if err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		target, tptr, err := c.resolve(ref.str, ptr+"/$ref")
		if err != nil {
			return nil, err
		}
		if n.ref, err = c.compile(target, tptr, depth+1); err != nil {
			return nil, err
		}
		return n, nil
	}
	if alts, ok := v.get("anyOf"); ok {
		for _, m := range v.obj {
			if known[m.key] && m.key != "anyOf" {
				return nil, errAt(ptr+"/"+escapeToken(m.key), "%s beside anyOf is not supported: move it into the branches", m.key)
			}
		}
		if alts.kind != 'a' || len(alts.arr) == 0 {
			return nil, errAt(ptr+"/anyOf", "anyOf must be a non-empty array of schemas")
		}
		n, err := c.newNode(kAnyOf, ptr)
		if err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		for i, a := range alts.arr {
			b, err := c.compile(a, ptr+"/anyOf/"+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			n.anyOf = append(n.anyOf, b)
		}
		return n, nil
	}

	var types []string
	if t, ok := v.get("type"); ok {
		switch t.kind {
		case 's':
			types = []string{t.str}
		case 'a':
			if len(t.arr) == 0 {
				return nil, errAt(ptr+"/type", "type must not be an empty array")
			}
			seen := map[string]bool{}
			for i, e := range t.arr {
				if e.kind != 's' {
					return nil, errAt(ptr+"/type/"+strconv.Itoa(i), "type names must be strings")
				}
				if seen[e.str] {
					return nil, errAt(ptr+"/type/"+strconv.Itoa(i), "type %q listed twice", e.str)
				}
				seen[e.str] = true
				types = append(types, e.str)
			}
		default:
			return nil, errAt(ptr+"/type", "type must be a string or an array of strings")
		}
		for i, ty := range types {
			switch ty {
			case "object", "array", "string", "number", "integer", "boolean", "null":
			default:
				p := ptr + "/type"
				if t.kind == 'a' {
					p += "/" + strconv.Itoa(i)
				}
				return nil, errAt(p, "unknown type %q", ty)
			}
		}
	}
	if err := c.checkShapes(v, ptr, types); err != nil {
		return nil, err
	}

	// enum and const: a literal set, filtered by the type keywords beside them.
	lits, hasLits, err := literals(v, ptr)
	if err != nil {
		return nil, err
	}
	if hasLits {
		n, err := c.newNode(kLiteral, ptr)
		if err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		n.lits = lits
		if len(types) > 0 {
			// The same schema without enum/const, compiled under a private pointer; the
			// literals are filtered by it once every node exists (see filterLiterals).
			stripped := value{kind: 'o'}
			for _, m := range v.obj {
				if m.key != "enum" && m.key != "const" {
					stripped.obj = append(stripped.obj, m)
				}
			}
			if n.base, err = c.compileTypes(stripped, ptr+"\x00base", types, depth); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	if len(types) == 0 {
		for _, k := range []string{"properties", "required", "additionalProperties", "items", "minItems", "maxItems"} {
			if _, ok := v.get(k); ok {
				return nil, errAt(ptr, "a schema with %s needs a type", k)
			}
		}
		n, err := c.newNode(kAny, ptr)
		if err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		return n, nil
	}
	return c.compileTypes(v, ptr, types, depth)
}

// compileTypes builds the node of a schema with the given types and no enum/const.
func (c *compiler) compileTypes(v value, ptr string, types []string, depth int) (*node, error) {
	if len(types) == 1 {
		return c.compileType(v, ptr, types[0], depth)
	}
	n, err := c.newNode(kAnyOf, ptr)
	if err != nil {
		return nil, err
	}
	c.memo[ptr] = n
	for _, ty := range types {
		b, err := c.compileType(v, ptr+"\x00"+ty, ty, depth)
		if err != nil {
			return nil, err
		}
		n.anyOf = append(n.anyOf, b)
	}
	return n, nil
}

// compileType builds the node for one type. ptr may carry a private suffix after \x00 (the
// branches of a type array); errors report the public part.
func (c *compiler) compileType(v value, ptr, ty string, depth int) (*node, error) {
	pub := ptr
	if i := strings.IndexByte(pub, 0); i >= 0 {
		pub = pub[:i]
	}
	var n *node
	var err error
	switch ty {
	case "string":
		n, err = c.newNode(kString, ptr)
	case "number":
		n, err = c.newNode(kNumber, ptr)
	case "integer":
		n, err = c.newNode(kInteger, ptr)
	case "boolean":
		if n, err = c.newNode(kLiteral, ptr); err == nil {
			n.lits = []value{{kind: 'b', b: true}, {kind: 'b', b: false}}
			n.enc = [][]byte{[]byte("true"), []byte("false")}
			n.litNest = []int{0, 0}
		}
	case "null":
		if n, err = c.newNode(kLiteral, ptr); err == nil {
			n.lits = []value{{kind: 'z'}}
			n.enc = [][]byte{[]byte("null")}
			n.litNest = []int{0}
		}
	case "object":
		if n, err = c.newNode(kObject, ptr); err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		err = c.compileObject(n, v, pub, depth)
	case "array":
		if n, err = c.newNode(kArray, ptr); err != nil {
			return nil, err
		}
		c.memo[ptr] = n
		err = c.compileArray(n, v, pub, depth)
	}
	if err != nil {
		return nil, err
	}
	c.memo[ptr] = n
	return n, nil
}

func (c *compiler) compileObject(n *node, v value, ptr string, depth int) error {
	n.additional = true
	if ap, ok := v.get("additionalProperties"); ok {
		n.additional = ap.b // shape checked: a boolean
	}
	idx := map[string]int{}
	if props, ok := v.get("properties"); ok {
		for _, m := range props.obj {
			if _, dup := idx[m.key]; dup {
				return errAt(ptr+"/properties/"+escapeToken(m.key), "property %q listed twice", m.key)
			}
			p := ptr + "/properties/" + escapeToken(m.key)
			s, err := c.compile(m.val, p, depth+1)
			if err != nil {
				return err
			}
			idx[m.key] = len(n.props)
			key := append(encodeString(m.key), ':')
			n.props = append(n.props, prop{name: m.key, key: key, schema: s})
		}
	}
	if req, ok := v.get("required"); ok {
		seen := map[string]bool{}
		for i, r := range req.arr {
			p := ptr + "/required/" + strconv.Itoa(i)
			if seen[r.str] {
				return errAt(p, "%q required twice", r.str)
			}
			seen[r.str] = true
			j, ok := idx[r.str]
			if !ok {
				return errAt(p, "required property %q is not in properties", r.str)
			}
			n.props[j].required = true
		}
	}
	n.generic = len(n.props) == 0 && n.additional
	n.propIndex = idx
	return nil
}

func (c *compiler) compileArray(n *node, v value, ptr string, depth int) error {
	if it, ok := v.get("items"); ok {
		s, err := c.compile(it, ptr+"/items", depth+1)
		if err != nil {
			return err
		}
		n.items = s
	}
	if mi, ok := v.get("minItems"); ok {
		n.minItems, _ = count(mi)
	}
	if ma, ok := v.get("maxItems"); ok {
		n.maxItems, _ = count(ma)
		if n.maxItems < n.minItems {
			return errAt(ptr+"/maxItems", "maxItems %d is below minItems %d", n.maxItems, n.minItems)
		}
	}
	return nil
}

// count reads a non-negative integer keyword value.
func count(v value) (int, bool) {
	if v.kind != 'n' || !isInteger(v.num) {
		return 0, false
	}
	r, ok := numRat(v.num)
	if !ok || r.Sign() < 0 || !r.Num().IsInt64() || r.Num().Int64() > 1<<31 {
		return 0, false
	}
	return int(r.Num().Int64()), true
}

// checkShapes checks the value types of the structural keywords.
func (c *compiler) checkShapes(v value, ptr string, types []string) error {
	has := func(t string) bool {
		for _, x := range types {
			if x == t {
				return true
			}
		}
		return false
	}
	for _, m := range v.obj {
		p := ptr + "/" + escapeToken(m.key)
		switch m.key {
		case "properties":
			if m.val.kind != 'o' {
				return errAt(p, "properties must be an object")
			}
			if !has("object") {
				return errAt(p, "properties needs type object")
			}
		case "required":
			if m.val.kind != 'a' {
				return errAt(p, "required must be an array of strings")
			}
			for i, e := range m.val.arr {
				if e.kind != 's' {
					return errAt(p+"/"+strconv.Itoa(i), "required must be an array of strings")
				}
			}
			if !has("object") {
				return errAt(p, "required needs type object")
			}
		case "additionalProperties":
			if m.val.kind != 'b' {
				return errAt(p, "additionalProperties must be a boolean (a schema there is not supported)")
			}
			if !has("object") {
				return errAt(p, "additionalProperties needs type object")
			}
		case "items":
			if m.val.kind == 'a' {
				return errAt(p, "items as an array (tuple validation) is not supported")
			}
			if !has("array") {
				return errAt(p, "items needs type array")
			}
		case "minItems", "maxItems":
			if _, ok := count(m.val); !ok {
				return errAt(p, "%s must be a non-negative integer", m.key)
			}
			if !has("array") {
				return errAt(p, "%s needs type array", m.key)
			}
		case "enum":
			if m.val.kind != 'a' || len(m.val.arr) == 0 {
				return errAt(p, "enum must be a non-empty array")
			}
		case "$defs", "definitions":
			if m.val.kind != 'o' {
				return errAt(p, "%s must be an object", m.key)
			}
		}
	}
	return nil
}

func literals(v value, ptr string) ([]value, bool, error) {
	e, hasEnum := v.get("enum")
	k, hasConst := v.get("const")
	switch {
	case hasEnum && hasConst:
		return nil, false, errAt(ptr+"/const", "const beside enum is not supported")
	case hasConst:
		if dupKeys(k) {
			return nil, false, errAt(ptr+"/const", "an object in const repeats a key")
		}
		return []value{k}, true, nil
	case hasEnum:
		if len(e.arr) > MaxEnum {
			return nil, false, errAt(ptr+"/enum", "enum has %d values, more than %d", len(e.arr), MaxEnum)
		}
		var out []value
		seen := map[string]bool{}
		for i, a := range e.arr {
			if dupKeys(a) {
				return nil, false, errAt(ptr+"/enum/"+strconv.Itoa(i), "an object in enum repeats a key")
			}
			k := canonical(a)
			if seen[k] {
				return nil, false, errAt(ptr+"/enum/"+strconv.Itoa(i), "enum value repeated")
			}
			seen[k] = true
			out = append(out, a)
		}
		return out, true, nil
	}
	return nil, false, nil
}

// dupKeys says an object within v repeats a key.
func dupKeys(v value) bool {
	switch v.kind {
	case 'o':
		seen := map[string]bool{}
		for _, m := range v.obj {
			if seen[m.key] || dupKeys(m.val) {
				return true
			}
			seen[m.key] = true
		}
	case 'a':
		for _, e := range v.arr {
			if dupKeys(e) {
				return true
			}
		}
	}
	return false
}

// resolve finds the subschema a $ref points to.
func (c *compiler) resolve(ref, at string) (value, string, error) {
	if ref != "#" && !strings.HasPrefix(ref, "#/") {
		return value{}, "", errAt(at, "$ref %q is not supported: only \"#\" and \"#/...\" pointers within the schema", ref)
	}
	ptr := strings.TrimPrefix(ref, "#")
	cur := c.root
	if ptr == "" {
		return cur, "", nil
	}
	var canon strings.Builder
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		canon.WriteString("/" + escapeToken(tok))
		switch cur.kind {
		case 'o':
			next, ok := cur.get(tok)
			if !ok {
				return value{}, "", errAt(at, "$ref %q: no member %q", ref, tok)
			}
			cur = next
		case 'a':
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur.arr) {
				return value{}, "", errAt(at, "$ref %q: no element %q", ref, tok)
			}
			cur = cur.arr[i]
		default:
			return value{}, "", errAt(at, "$ref %q leads into a scalar", ref)
		}
	}
	return cur, canon.String(), nil
}

// checkCycles refuses $ref/anyOf cycles that consume no input, such as {"$ref": "#"}: the
// matcher could never leave them.
func (c *compiler) checkCycles() error {
	state := map[*node]int{} // 1 on the path, 2 done
	var visit func(n *node) error
	visit = func(n *node) error {
		switch state[n] {
		case 1:
			return errAt(n.ptr, "$ref cycle that matches nothing in between (a schema that refers to itself without nesting)")
		case 2:
			return nil
		}
		state[n] = 1
		var next []*node
		if n.kind == kRef {
			next = []*node{n.ref}
		} else if n.kind == kAnyOf {
			next = n.anyOf
		}
		for _, m := range next {
			if err := visit(m); err != nil {
				var se *SchemaError
				if errors.As(err, &se) {
					se.Pointer = publicPtr(se.Pointer)
				}
				return err
			}
		}
		state[n] = 2
		return nil
	}
	ordered := append([]*node(nil), c.nodes...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].ptr < ordered[j].ptr })
	for _, n := range ordered {
		if err := visit(n); err != nil {
			return err
		}
	}
	return nil
}

func publicPtr(p string) string {
	if i := strings.IndexByte(p, 0); i >= 0 {
		return p[:i]
	}
	return p
}

// maxLeaves caps the alternatives one value start may open. Dropping the rest narrows what the
// matcher accepts, never what it should refuse.
const maxLeaves = 64

// findLeaves records, for each $ref and anyOf node, the distinct satisfiable concrete nodes it
// stands for, so that starting a value never walks anyOf/$ref diamonds again.
func (c *compiler) findLeaves() {
	done := map[*node]bool{}
	var visit func(n *node) []*node
	visit = func(n *node) []*node {
		if n.kind != kRef && n.kind != kAnyOf {
			if n.sat {
				return []*node{n}
			}
			return nil
		}
		if done[n] {
			return n.leaves
		}
		done[n] = true // cycles were refused by checkCycles
		var kids []*node
		if n.kind == kRef {
			kids = []*node{n.ref}
		} else {
			kids = n.anyOf
		}
		var out []*node
		for _, k := range kids {
		leaves:
			for _, l := range visit(k) {
				for _, o := range out {
					if o == l {
						continue leaves
					}
				}
				if len(out) < maxLeaves {
					out = append(out, l)
				}
			}
		}
		n.leaves = out
		return out
	}
	for _, n := range c.nodes {
		visit(n)
	}
}

// filterLiterals keeps the enum/const values that also satisfy the type keywords beside them,
// and records their compact encodings.
func (c *compiler) filterLiterals() {
	for _, n := range c.nodes {
		if n.kind != kLiteral || n.enc != nil {
			continue
		}
		var kept []value
		for _, l := range n.lits {
			if n.base != nil && validate(n.base, l, "", 0) != nil {
				continue
			}
			kept = append(kept, l)
			n.litNest = append(n.litNest, nesting(l))
			var buf bytes.Buffer
			l.compact(&buf)
			n.enc = append(n.enc, buf.Bytes())
		}
		n.lits = kept
		if n.enc == nil {
			n.enc = [][]byte{}
		}
	}
}

// String describes the node kind, for errors.
func (k kind) String() string { return kindNames[k] }
