package dag

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads the workflow document into a tree that remembers key order and number
// literals, refuses duplicate keys and invalid UTF-8, and names the JSON path of every mistake.
// encoding/json does none of those, and its errors give byte offsets rather than paths.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// kindText is the kind with its article: "an object".
func kindText(k kind) string {
	if k == kArray || k == kObject {
		return "an " + k.String()
	}
	return "a " + k.String()
}

// node is one JSON value of the workflow document.
type node struct {
	kind  kind
	text  string   // boolean: "true" or "false"; number: the literal as written; string: the value
	elems []*node  // array elements, or object values in document order
	keys  []string // object keys, parallel to elems
}

// jpath is a JSON path built while descending, formatted only when a mistake needs it.
type jpath struct {
	up  *jpath
	key string
	idx int // -1 for an object key; baseIdx for a path given already formatted
}

const baseIdx = -2

func (p *jpath) field(k string) *jpath { return &jpath{up: p, key: k, idx: -1} }
func (p *jpath) index(i int) *jpath    { return &jpath{up: p, idx: i} }

func (p *jpath) String() string {
	if p == nil {
		return "$"
	}
	var chain []*jpath
	for q := p; q != nil; q = q.up {
		chain = append(chain, q)
	}
	b := []byte{'$'}
	for i := len(chain) - 1; i >= 0; i-- {
		q := chain[i]
		if q.idx == baseIdx {
			b = append(b[:0], q.key...)
			continue
		}
		if q.idx >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(q.idx), 10)
			b = append(b, ']')
		} else {
			b = appendPathKey(b, q.key)
		}
	}
	return string(b)
}

// appendPathKey writes ".key" for identifier-like keys and `["key"]` for any other.
func appendPathKey(b []byte, k string) []byte {
	plain := k != ""
	for i := 0; i < len(k) && plain; i++ {
		c := k[i]
		plain = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && isDigit(c))
	}
	if plain {
		return append(append(b, '.'), k...)
	}
	b = append(b, '[')
	b = appendQuoted(b, k)
	return append(b, ']')
}

func fieldPath(base, k string) string { return string(appendPathKey([]byte(base), k)) }
func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

type docParser struct {
	b     []byte
	i     int
	depth int
	errs  ErrorList // duplicate keys; parsing goes on
}

// parseDoc reads one JSON document. A syntax error ends parsing and is returned alone with a nil
// node; duplicate keys are reported together and the first value of each key is kept.
func parseDoc(b []byte, base *jpath) (*node, ErrorList) {
	p := &docParser{b: b}
	p.ws()
	n, err := p.value(base)
	if err != nil {
		return nil, ErrorList{err}
	}
	p.ws()
	if p.i < len(p.b) {
		return nil, ErrorList{p.syntax(base, "data after the JSON value")}
	}
	return n, p.errs
}

func (p *docParser) syntax(at *jpath, format string, args ...any) *PathError {
	line, col := 1, 1
	for _, c := range p.b[:min(p.i, len(p.b))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	msg := fmt.Sprintf(format, args...)
	return &PathError{Path: at.String(), Msg: fmt.Sprintf("invalid JSON: %s (line %d, column %d)", msg, line, col)}
}

func (p *docParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *docParser) unexpected(at *jpath, want string) *PathError {
	if p.i >= len(p.b) {
		return p.syntax(at, "unexpected end, want %s", want)
	}
	c := p.b[p.i]
	if c < utf8.RuneSelf {
		return p.syntax(at, "unexpected %q, want %s", rune(c), want)
	}
	return p.syntax(at, "unexpected byte 0x%02x, want %s", c, want)
}

func (p *docParser) value(at *jpath) (*node, *PathError) {
	if p.i >= len(p.b) {
		return nil, p.unexpected(at, "a value")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(at)
	case c == '[':
		return p.array(at)
	case c == '"':
		s, err := p.str(at)
		if err != nil {
			return nil, err
		}
		return &node{kind: kString, text: s}, nil
	case c == '-' || isDigit(c):
		start := p.i
		end, ok := scanNumber(p.b, p.i)
		if !ok {
			p.i = end
			return nil, p.unexpected(at, "a digit")
		}
		p.i = end
		return &node{kind: kNumber, text: string(p.b[start:end])}, nil
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
				p.i += len(lit)
				if lit == "null" {
					return &node{kind: kNull, text: lit}, nil
				}
				return &node{kind: kBool, text: lit}, nil
			}
		}
		return nil, p.unexpected(at, "a value")
	}
}

func (p *docParser) enter(at *jpath) *PathError {
	p.depth++
	if p.depth > MaxDepth {
		return p.syntax(at, "nested deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *docParser) object(at *jpath) (*node, *PathError) {
	if err := p.enter(at); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // '{'
	n := &node{kind: kObject}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return n, nil
	}
	var seen map[string]bool
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.unexpected(at, "a string key")
		}
		k, err := p.str(at)
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.unexpected(at, "':' after an object key")
		}
		p.i++
		p.ws()
		child := at.field(k)
		v, err := p.value(child)
		if err != nil {
			return nil, err
		}
		if seen == nil {
			seen = make(map[string]bool, 8)
		}
		if seen[k] {
			p.errs.add(child.String(), fmt.Sprintf("duplicate key %s", quote(k)))
		} else {
			seen[k] = true
			n.keys = append(n.keys, k)
			n.elems = append(n.elems, v)
		}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return n, nil
		}
		return nil, p.unexpected(at, "',' or '}' in an object")
	}
}

func (p *docParser) array(at *jpath) (*node, *PathError) {
	if err := p.enter(at); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // '['
	n := &node{kind: kArray}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return n, nil
	}
	for {
		p.ws()
		v, err := p.value(at.index(len(n.elems)))
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, v)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return n, nil
		}
		return nil, p.unexpected(at, "',' or ']' in an array")
	}
}

// str reads a string literal at p.i and returns its value.
func (p *docParser) str(at *jpath) (string, *PathError) {
	end, esc, msg := scanString(p.b, p.i)
	if msg != "" {
		p.i = end
		return "", p.syntax(at, "%s", msg)
	}
	raw := p.b[p.i+1 : end-1]
	p.i = end
	if !esc {
		return string(raw), nil
	}
	return string(unescape(nil, raw)), nil
}

// scanNumber returns the end of the number literal at b[i] and whether it is well formed:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

// scanString checks the string literal at b[i] (b[i] is '"'): escapes, no control characters,
// valid UTF-8. It returns the index after the closing quote, whether it holds escapes, and a
// reason when it is malformed ("" when well formed).
func scanString(b []byte, i int) (end int, escaped bool, reason string) {
	i++
	for i < len(b) {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, ""
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, true, "unterminated string"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, true, "unterminated string"
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, true, "bad \\u escape in a string"
					}
				}
				i += 6
			default:
				return i, true, fmt.Sprintf("bad escape \\%c in a string", rune(b[i+1]))
			}
		case c < 0x20:
			return i, escaped, "control character in a string (escape it)"
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, escaped, "invalid UTF-8 in a string"
			}
			i += n
		}
	}
	return i, escaped, "unterminated string"
}

// plainByte marks the bytes a string literal holds as they are: printable ASCII but '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case isDigit(c):
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape appends the value of the contents of a well-formed string literal (without its
// quotes) to dst. A lone surrogate becomes U+FFFD, as encoding/json does.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := hexVal(raw[i+2 : i+6]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						dst = utf8.AppendRune(dst, utf16.DecodeRune(r, r2))
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as a JSON string literal. s must be valid UTF-8; non-ASCII runes are
// written as they are, control characters escaped.
func appendQuoted[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends the contents of a JSON string literal holding s, without the quotes.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// escapedLen is len(appendEscaped(nil, s)).
func escapedLen(s []byte) int {
	n := len(s)
	for _, c := range s {
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

// appendNode appends n as compact JSON; numbers keep their literal.
func appendNode(dst []byte, n *node) []byte {
	switch n.kind {
	case kString:
		return appendQuoted(dst, n.text)
	case kArray:
		dst = append(dst, '[')
		for i, e := range n.elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendNode(dst, e)
		}
		return append(dst, ']')
	case kObject:
		dst = append(dst, '{')
		for i, e := range n.elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendQuoted(dst, n.keys[i])
			dst = append(dst, ':')
			dst = appendNode(dst, e)
		}
		return append(dst, '}')
	default:
		return append(dst, n.text...)
	}
}
