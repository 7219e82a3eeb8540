package jsonschema

import (
	"fmt"
	"strconv"
)

// ValidationError says where a document breaks its schema. Path is the JSON pointer of the
// offending value in the document, "" for the root.
type ValidationError struct {
	Path string
	Msg  string
}

// Error says where and what.
func (e *ValidationError) Error() string {
	return "jsonschema: document at #" + e.Path + ": " + e.Msg
}

// maxValidateDepth bounds recursion on hostile documents (encoding/json already caps nesting).
const maxValidateDepth = 10000

// Validate checks a finished document: it must be one JSON value (surrounding whitespace is
// allowed) that satisfies the schema. Unlike the matcher, Validate accepts any key order,
// whitespace and number spelling, and members additionalProperties allows.
func (s *Schema) Validate(doc []byte) error {
	v, err := parseValue(doc)
	if err != nil {
		return &ValidationError{Msg: "not valid JSON: " + err.Error()}
	}
	return validate(s.root, v, "", 0)
}

// validate checks v against n. Results are memoised per (node, value) so that anyOf branches
// over shared subschemas cannot make validation exponential.
func validate(n *node, v value, path string, depth int) error {
	return (&validator{memo: map[vkey]error{}}).check(n, &v, path, depth)
}

type vkey struct {
	n *node
	v *value
}

type validator struct {
	memo map[vkey]error
}

func (c *validator) check(n *node, v *value, path string, depth int) error {
	k := vkey{n, v}
	if err, ok := c.memo[k]; ok {
		return err
	}
	err := c.checkNode(n, v, path, depth)
	c.memo[k] = err
	return err
}

func vErr(path, format string, args ...any) error {
	return &ValidationError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

var valueKinds = map[byte]string{'o': "object", 'a': "array", 's': "string", 'n': "number", 'b': "boolean", 'z': "null"}

func (c *validator) checkNode(n *node, v *value, path string, depth int) error {
	if depth > maxValidateDepth {
		return vErr(path, "nested too deeply")
	}
	switch n.kind {
	case kAny:
		return nil
	case kRef:
		return c.check(n.ref, v, path, depth+1)
	case kAnyOf:
		var first error
		for _, b := range n.anyOf {
			err := c.check(b, v, path, depth+1)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
		return vErr(path, "matches no branch of anyOf (first branch: %v)", first)
	case kLiteral:
		for _, l := range n.lits {
			if equal(l, *v) {
				return nil
			}
		}
		if len(n.enc) == 1 {
			return vErr(path, "must be %s", n.enc[0])
		}
		return vErr(path, "must be one of %d allowed values", len(n.lits))
	case kString:
		if v.kind != 's' {
			return vErr(path, "expected string, got %s", valueKinds[v.kind])
		}
	case kNumber:
		if v.kind != 'n' {
			return vErr(path, "expected number, got %s", valueKinds[v.kind])
		}
	case kInteger:
		if v.kind != 'n' || !isInteger(v.num) {
			if v.kind == 'n' {
				return vErr(path, "expected integer, got %s", v.num)
			}
			return vErr(path, "expected integer, got %s", valueKinds[v.kind])
		}
	case kArray:
		if v.kind != 'a' {
			return vErr(path, "expected array, got %s", valueKinds[v.kind])
		}
		if len(v.arr) < n.minItems {
			return vErr(path, "%d items, fewer than minItems %d", len(v.arr), n.minItems)
		}
		if n.maxItems >= 0 && len(v.arr) > n.maxItems {
			return vErr(path, "%d items, more than maxItems %d", len(v.arr), n.maxItems)
		}
		if n.items != nil {
			for i := range v.arr {
				if err := c.check(n.items, &v.arr[i], path+"/"+strconv.Itoa(i), depth+1); err != nil {
					return err
				}
			}
		}
	case kObject:
		if v.kind != 'o' {
			return vErr(path, "expected object, got %s", valueKinds[v.kind])
		}
	members:
		for i := range v.obj {
			m := &v.obj[i]
			p := path + "/" + escapeToken(m.key)
			if j, ok := n.propIndex[m.key]; ok {
				if err := c.check(n.props[j].schema, &m.val, p, depth+1); err != nil {
					return err
				}
				continue members
			}
			if !n.additional {
				return vErr(p, "property %q is not allowed (additionalProperties is false)", m.key)
			}
		}
		for _, pr := range n.props {
			if !pr.required {
				continue
			}
			if _, ok := v.get(pr.name); !ok {
				return vErr(path, "required property %q is missing", pr.name)
			}
		}
	}
	return nil
}
