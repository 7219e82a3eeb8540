package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Template is a JSON value with references to step outputs, compiled once: the literal JSON
// between references is precomputed, so rendering appends bytes and reads only the referenced
// parts of the outputs. A Template is immutable and safe for concurrent use.
type Template struct {
	src    []byte // the template as written, compact
	lit    []byte // the whole rendering when there is no reference
	parts  []part // a literal, then a value to insert; in document order
	tail   []byte // the literal after the last reference
	litLen int    // bytes of literal in parts and tail
	whole  *ref   // the template is exactly one "${ref}" string
	top    kind   // the kind of the template as written
	broken bool   // a reference was malformed or refused: the shape is not what was written
	owner  string // the step whose template this is; "" for the workflow's output
	path   string // the JSON path of the template in the workflow
	refs   []*ref
	uniq   []*ref // the distinct references of parts, each resolved once per render
}

type part struct {
	lit    []byte
	ref    *ref
	slot   int  // the index of ref's value in uniq
	inline bool // the reference sits inside a string: insert its value as text
}

type rootKind uint8

const (
	rootStep  rootKind = iota // a step's output
	rootItem                  // the current element of a map step
	rootIndex                 // the position of the current element
	rootInput                 // the workflow's input
)

// InputRef is the key of outputs under which Render finds the workflow's input, read by
// templates as ${input}. A workflow given no input sees null.
const InputRef = "input"

// ref is one "${...}" of a template.
type ref struct {
	text  string // as written between "${" and "}"
	path  string // the JSON path of the string that holds it
	root  rootKind
	step  string // for rootStep
	sels  []selector
	bytes bool // the step's output is bytes: no selectors, inserted as a string
}

// String returns the template as written, as compact JSON.
func (t *Template) String() string { return string(t.src) }

// Render returns the JSON the template stands for, given the outputs of finished steps (the
// raw bytes each produced, keyed by step id) and, for a map step, the current element and its
// position. A template without references returns the same precomputed bytes on every call;
// the caller must not modify what Render returns. Every inserted value is checked to be valid
// JSON in valid UTF-8, so the result always is. Errors are *RenderError.
func (t *Template) Render(outputs map[string][]byte, item json.RawMessage, index int) ([]byte, error) {
	if t.parts == nil {
		return t.lit, nil
	}
	var stack [8]value
	vals := stack[:0]
	if len(t.uniq) > len(stack) {
		vals = make([]value, 0, len(t.uniq))
	}
	for _, r := range t.uniq {
		v, err := t.resolve(r, outputs, item)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	n := t.litLen
	for i := range t.parts {
		p := &t.parts[i]
		v := &vals[p.slot]
		switch {
		case v.index:
			n += 20
		case v.bytes:
			if !utf8.Valid(v.b) {
				return nil, t.fail(p.ref, fmt.Sprintf("the output of step %s is bytes that are not valid UTF-8, so it cannot be placed in JSON", quote(p.ref.step)))
			}
			n += escapedLen(v.b) + 2
		case p.inline:
			switch rawKind(v.b) {
			case kString:
				n += len(v.b) - 2
			case kNumber:
				n += len(v.b)
			default:
				return nil, t.fail(p.ref, fmt.Sprintf("is %s; only strings and numbers can be placed inside text", kindText(rawKind(v.b))))
			}
		default:
			n += len(v.b)
		}
	}
	out := make([]byte, 0, n)
	for i := range t.parts {
		p := &t.parts[i]
		v := &vals[p.slot]
		out = append(out, p.lit...)
		switch {
		case v.index:
			out = strconv.AppendInt(out, int64(index), 10)
		case v.bytes && p.inline:
			out = appendEscaped(out, v.b)
		case v.bytes:
			out = appendQuoted(out, v.b)
		case p.inline && v.b[0] == '"':
			out = append(out, v.b[1:len(v.b)-1]...)
		default:
			out = append(out, v.b...)
		}
	}
	return append(out, t.tail...), nil
}

type value struct {
	b     []byte
	bytes bool // raw bytes of a bytes step, not JSON
	index bool // the element's position
}

func (t *Template) resolve(r *ref, outputs map[string][]byte, item json.RawMessage) (value, error) {
	switch r.root {
	case rootIndex:
		return value{index: true}, nil
	case rootInput:
		in, ok := outputs[InputRef]
		if !ok || len(in) == 0 {
			in = []byte("null")
		}
		b, err := lookup(in, "input", r.sels)
		if err != nil {
			return value{}, t.lookupFail(r, "the workflow's input", err)
		}
		return value{b: b}, nil
	case rootItem:
		if item == nil {
			return value{}, t.fail(r, "no current element: the template is not being rendered for an element of a map")
		}
		b, err := lookup(item, "item", r.sels)
		if err != nil {
			return value{}, t.lookupFail(r, "the element", err)
		}
		return value{b: b}, nil
	}
	out, ok := outputs[r.step]
	if !ok {
		return value{}, t.fail(r, fmt.Sprintf("step %s has no output yet", quote(r.step)))
	}
	if r.bytes {
		return value{b: out, bytes: true}, nil
	}
	b, err := lookup(out, r.step, r.sels)
	if err != nil {
		return value{}, t.lookupFail(r, "the output of step "+quote(r.step), err)
	}
	return value{b: b}, nil
}

func (t *Template) fail(r *ref, reason string) *RenderError {
	e := &RenderError{Step: t.owner, Path: t.path, Reason: reason}
	if r != nil {
		e.Path, e.Ref = r.path, r.text
	}
	return e
}

func (t *Template) lookupFail(r *ref, what string, err error) *RenderError {
	var se *scanError
	if errors.As(err, &se) {
		return t.fail(r, what+" is not valid JSON: "+se.Error())
	}
	return t.fail(r, err.Error())
}

// tctx is what compiling a template needs to know about the workflow.
type tctx struct {
	owner   string // the step; "" for the workflow output
	field   string // "args", "map" or "output"
	mapStep bool   // the template is the args of a map step: item and index are defined
	steps   map[string]*stepInfo
	errs    *ErrorList
}

// stepInfo is what a template may assume about a step it refers to.
type stepInfo struct {
	at    int          // position in Workflow.Steps
	out   abi.Encoding // of the step's whole output: json for a map step; "" when unknown
	isMap bool
}

// compileTemplate compiles a template document at path. It reports mistakes to ctx.errs and
// returns nil when the document is not JSON.
func compileTemplate(doc []byte, path string, ctx *tctx) *Template {
	base := pathFrom(path)
	root, errs := parseDoc(doc, base)
	if root == nil || len(errs) > 0 {
		*ctx.errs = append(*ctx.errs, errs...)
		if root == nil {
			return nil
		}
	}
	return compileNode(root, base, ctx)
}

func compileNode(root *node, base *jpath, ctx *tctx) *Template {
	b := &tbuilder{ctx: ctx}
	b.walk(root, base)
	t := &Template{src: appendNode(nil, root), top: root.kind, owner: ctx.owner, path: base.String(), refs: b.refs, broken: b.broken}
	if len(b.parts) == 0 {
		t.lit = b.buf
		return t
	}
	t.parts = make([]part, len(b.parts))
	slots := map[string]int{}
	for i, p := range b.parts {
		slot, ok := slots[p.ref.text]
		if !ok {
			slot = len(t.uniq)
			slots[p.ref.text] = slot
			t.uniq = append(t.uniq, p.ref)
		}
		t.parts[i] = part{lit: b.buf[p.start:p.end:p.end], ref: p.ref, slot: slot, inline: p.inline}
	}
	t.tail = b.buf[b.last:]
	t.litLen = len(b.buf)
	if root.kind == kString && len(b.parts) == 1 && !b.parts[0].inline {
		t.whole = b.parts[0].ref
	}
	return t
}

// pathFrom turns a formatted path back into a jpath base for the template's own descent.
func pathFrom(path string) *jpath {
	if path == "$" {
		return nil
	}
	return &jpath{key: path, idx: baseIdx}
}

type tbuilder struct {
	ctx   *tctx
	buf   []byte
	parts []struct {
		start, end int
		ref        *ref
		inline     bool
	}
	last   int
	refs   []*ref
	broken bool
}

func (b *tbuilder) hole(r *ref, inline bool) {
	b.parts = append(b.parts, struct {
		start, end int
		ref        *ref
		inline     bool
	}{b.last, len(b.buf), r, inline})
	b.last = len(b.buf)
	b.refs = append(b.refs, r)
}

func (b *tbuilder) walk(n *node, at *jpath) {
	switch n.kind {
	case kString:
		b.str(n.text, at)
	case kArray:
		b.buf = append(b.buf, '[')
		for i, e := range n.elems {
			if i > 0 {
				b.buf = append(b.buf, ',')
			}
			b.walk(e, at.index(i))
		}
		b.buf = append(b.buf, ']')
	case kObject:
		b.buf = append(b.buf, '{')
		for i, e := range n.elems {
			if i > 0 {
				b.buf = append(b.buf, ',')
			}
			b.buf = appendQuoted(b.buf, n.keys[i])
			b.buf = append(b.buf, ':')
			b.walk(e, at.field(n.keys[i]))
		}
		b.buf = append(b.buf, '}')
	default:
		b.buf = append(b.buf, n.text...)
	}
}

// str compiles a string of the template: a literal, exactly one "${ref}", or text with
// references in it. "$${" is a literal "${".
func (b *tbuilder) str(s string, at *jpath) {
	if !strings.Contains(s, "${") {
		b.buf = appendQuoted(b.buf, s)
		return
	}
	type seg struct {
		text string
		ref  *ref
	}
	var segs []seg
	var text []byte
	path := at.String()
	for i := 0; i < len(s); {
		if s[i] == '$' && strings.HasPrefix(s[i+1:], "${") {
			text = append(text, "${"...)
			i += 3
			continue
		}
		if s[i] != '$' || !strings.HasPrefix(s[i+1:], "{") {
			text = append(text, s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			b.ctx.errs.add(path, `unterminated "${" (write "$${" for a literal "${")`)
			b.broken = true
			return
		}
		r, err := parseRef(s[i+2 : i+2+end])
		if err != "" {
			b.ctx.errs.add(path, fmt.Sprintf("bad reference %s: %s", quote(s[i:i+3+end]), err))
			b.broken = true
			return
		}
		r.path = path
		if !b.ctx.check(r) {
			b.broken = true
			return
		}
		if len(text) > 0 {
			segs = append(segs, seg{text: string(text)})
			text = text[:0]
		}
		segs = append(segs, seg{ref: r})
		i += 3 + end
	}
	if len(text) > 0 {
		segs = append(segs, seg{text: string(text)})
	}
	switch {
	case len(segs) == 1 && segs[0].ref != nil:
		b.hole(segs[0].ref, false)
	case len(segs) <= 1:
		b.buf = appendQuoted(b.buf, string(text))
	default:
		for _, g := range segs {
			if r := g.ref; r != nil && r.root == rootStep && len(r.sels) == 0 && b.ctx.steps[r.step].isMap {
				b.ctx.errs.add(path, fmt.Sprintf("step %s has map, so its output is an array; it cannot be placed inside text", quote(r.step)))
				b.broken = true
				return
			}
		}
		b.buf = append(b.buf, '"')
		for _, g := range segs {
			if g.ref == nil {
				b.buf = appendEscaped(b.buf, g.text)
			} else {
				b.hole(g.ref, true)
			}
		}
		b.buf = append(b.buf, '"')
	}
}

// check reports whether r may appear in this template, reporting why not.
func (c *tctx) check(r *ref) bool {
	bad := func(format string, args ...any) bool {
		c.errs.add(r.path, fmt.Sprintf(format, args...))
		return false
	}
	switch r.root {
	case rootInput:
		return true
	case rootItem, rootIndex:
		name := "${" + r.text + "}"
		if r.root == rootIndex {
			name = "${index}"
		}
		switch {
		case c.field == "map":
			return bad("%s cannot be used in map: the elements are not known yet", name)
		case !c.mapStep:
			return bad("%s is only defined in the args of a step with map", name)
		case r.root == rootIndex && len(r.sels) > 0:
			return bad("${index} is a number; %s cannot select from it", r.sels[0])
		}
		return true
	}
	info, ok := c.steps[r.step]
	if !ok {
		return bad("unknown step %s", quote(r.step))
	}
	if len(r.sels) > 0 && info.out == abi.EncBytes {
		return bad("step %s outputs bytes; ${%s} cannot select inside them", quote(r.step), r.text)
	}
	if len(r.sels) > 0 && info.isMap && r.sels[0].field != "" {
		return bad("step %s has map, so its output is an array; %s cannot select from it", quote(r.step), r.sels[0])
	}
	r.bytes = info.out == abi.EncBytes
	return true
}

// parseRef reads what is between "${" and "}": a name, then any number of ".field" and
// "[index]". It returns a reason when the reference is malformed.
func parseRef(s string) (*ref, string) {
	if s == "" {
		return nil, "empty reference"
	}
	i := 0
	for i < len(s) && isIDByte(s[i], i == 0) {
		i++
	}
	if i == 0 {
		return nil, fmt.Sprintf("a reference starts with a step name, not %q", rune(s[0]))
	}
	if i > MaxIDLen {
		return nil, fmt.Sprintf("name longer than %d bytes", MaxIDLen)
	}
	r := &ref{text: s, step: s[:i]}
	switch r.step {
	case "item":
		r.root = rootItem
	case "index":
		r.root = rootIndex
	case InputRef:
		r.root = rootInput
	}
	for i < len(s) {
		switch s[i] {
		case '.':
			j := i + 1
			for j < len(s) && isIDByte(s[j], false) {
				j++
			}
			if j == i+1 {
				return nil, fmt.Sprintf("a field name must follow '.' at offset %d", i)
			}
			r.sels = append(r.sels, selector{field: s[i+1 : j]})
			i = j
		case '[':
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j == i+1 || j >= len(s) || s[j] != ']' {
				return nil, fmt.Sprintf("an index is digits between '[' and ']' (offset %d)", i)
			}
			if j-i-1 > 1 && s[i+1] == '0' {
				return nil, fmt.Sprintf("index %s has a leading zero", s[i+1:j])
			}
			n, err := strconv.Atoi(s[i+1 : j])
			if err != nil || n > 1<<30 {
				return nil, fmt.Sprintf("index %s is too large", s[i+1:j])
			}
			r.sels = append(r.sels, selector{index: n})
			i = j + 1
		default:
			return nil, fmt.Sprintf("unexpected %q at offset %d (want '.' or '[')", rune(s[i]), i)
		}
	}
	return r, ""
}

// isIDByte reports whether c may appear in a step id (at its start when first).
func isIDByte(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(!first && (isDigit(c) || c == '-'))
}
