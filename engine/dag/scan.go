package dag

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file reads step outputs at render time: untrusted bytes, scanned in place without
// building values. Every value it hands back has been checked to be valid JSON in valid UTF-8.

// maxScanDepth bounds the nesting of a step output that a template reads into.
const maxScanDepth = 10_000

type scanError struct {
	off int
	msg string
}

func (e *scanError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func unexpectedAt(b []byte, i int, want string) *scanError {
	if i >= len(b) {
		return &scanError{i, "unexpected end, want " + want}
	}
	if c := b[i]; c < utf8.RuneSelf && c >= 0x20 {
		return &scanError{i, fmt.Sprintf("unexpected %q, want %s", rune(c), want)}
	}
	return &scanError{i, fmt.Sprintf("unexpected byte 0x%02x, want %s", b[i], want)}
}

// skipValue checks the JSON value starting at b[i] (no leading space) and returns the index
// after it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, unexpectedAt(b, i, "a value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, msg := scanString(b, i)
		if msg != "" {
			return end, &scanError{end, msg}
		}
		return end, nil
	case c == '{' || c == '[':
		if depth >= maxScanDepth {
			return i, &scanError{i, fmt.Sprintf("nested deeper than %d levels", maxScanDepth)}
		}
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, unexpectedAt(b, i, "a string key")
				}
				end, _, msg := scanString(b, i)
				if msg != "" {
					return end, &scanError{end, msg}
				}
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return i, unexpectedAt(b, i, "':'")
				}
				i = skipWS(b, i+1)
			}
			end, err := skipValue(b, i, depth+1)
			if err != nil {
				return end, err
			}
			i = skipWS(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == closer {
				return i + 1, nil
			}
			return i, unexpectedAt(b, i, "',' or '"+string(closer)+"'")
		}
	case c == '-' || isDigit(c):
		end, ok := scanNumber(b, i)
		if !ok {
			return end, unexpectedAt(b, end, "a digit")
		}
		return end, nil
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return i, unexpectedAt(b, i, "a value")
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, unexpectedAt(b, i, "a value")
}

// rawKind names the kind of the valid JSON value starting at b[0].
func rawKind(b []byte) kind {
	switch b[0] {
	case '{':
		return kObject
	case '[':
		return kArray
	case '"':
		return kString
	case 't', 'f':
		return kBool
	case 'n':
		return kNull
	}
	return kNumber
}

// validDoc checks b is one JSON value, with optional space around it, and returns the value.
func validDoc(b []byte) ([]byte, error) {
	i := skipWS(b, 0)
	end, err := skipValue(b, i, 0)
	if err != nil {
		return nil, err
	}
	if j := skipWS(b, end); j != len(b) {
		return nil, &scanError{j, "data after the JSON value"}
	}
	return b[i:end], nil
}

// lookup returns the value of b reached by sels. With no selectors b must be one valid JSON
// document; with selectors only what is read on the way is checked (the value returned always
// is), and of a key that appears twice the first is taken.
// Errors that are not *scanError say which selector failed, naming the value by root and the
// selectors before it.
func lookup(b []byte, root string, sels []selector) ([]byte, error) {
	if len(sels) == 0 {
		return validDoc(b)
	}
	i := skipWS(b, 0)
	for k, s := range sels {
		if i >= len(b) {
			return nil, unexpectedAt(b, i, "a value")
		}
		if s.field != "" {
			if b[i] != '{' {
				if _, err := skipValue(b, i, k); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("%s is %s; it has no field %s", refText(root, sels[:k]), kindText(rawKind(b[i:])), quote(s.field))
			}
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == '}' {
				return nil, fmt.Errorf("%s has no field %s", refText(root, sels[:k]), quote(s.field))
			}
			for {
				if i >= len(b) || b[i] != '"' {
					return nil, unexpectedAt(b, i, "a string key")
				}
				end, esc, msg := scanString(b, i)
				if msg != "" {
					return nil, &scanError{end, msg}
				}
				match := keyEqual(b[i+1:end-1], esc, s.field)
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return nil, unexpectedAt(b, i, "':'")
				}
				i = skipWS(b, i+1)
				if match {
					break
				}
				end2, err := skipValue(b, i, k+1)
				if err != nil {
					return nil, err
				}
				i = skipWS(b, end2)
				if i < len(b) && b[i] == ',' {
					i = skipWS(b, i+1)
					continue
				}
				if i < len(b) && b[i] == '}' {
					return nil, fmt.Errorf("%s has no field %s", refText(root, sels[:k]), quote(s.field))
				}
				return nil, unexpectedAt(b, i, "',' or '}'")
			}
			continue
		}
		if b[i] != '[' {
			if _, err := skipValue(b, i, k); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s is %s; it cannot be indexed with %s", refText(root, sels[:k]), kindText(rawKind(b[i:])), s)
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return nil, fmt.Errorf("%s has length 0; %s is out of range", refText(root, sels[:k]), s)
		}
		for n := 0; n < s.index; n++ {
			end, err := skipValue(b, i, k+1)
			if err != nil {
				return nil, err
			}
			i = skipWS(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				return nil, fmt.Errorf("%s has length %d; %s is out of range", refText(root, sels[:k]), n+1, s)
			}
			return nil, unexpectedAt(b, i, "',' or ']'")
		}
	}
	end, err := skipValue(b, i, len(sels))
	if err != nil {
		return nil, err
	}
	return b[i:end], nil
}

// keyEqual reports whether the raw contents of a key literal equal name.
func keyEqual(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	if len(raw) < len(name) {
		return false
	}
	var buf [64]byte
	return string(unescape(buf[:0], raw)) == name
}

// unquote returns the value of a valid JSON string literal (quotes included).
func unquote(lit []byte) []byte {
	raw := lit[1 : len(lit)-1]
	for _, c := range raw {
		if c == '\\' {
			return unescape(make([]byte, 0, len(raw)), raw)
		}
	}
	return append([]byte{}, raw...)
}

// splitArray returns the elements of a valid JSON array, each a sub-slice of b.
func splitArray(b []byte, max int) ([]json.RawMessage, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, fmt.Errorf("not an array")
	}
	i = skipWS(b, i+1)
	var out []json.RawMessage
	if i < len(b) && b[i] == ']' {
		return []json.RawMessage{}, nil
	}
	for {
		if len(out) == max {
			return nil, fmt.Errorf("more than %d elements", max)
		}
		end, err := skipValue(b, i, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, b[i:end:end])
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return out, nil
		}
		return nil, unexpectedAt(b, i, "',' or ']'")
	}
}

// selector is one step of a reference into a value: .field or [index].
type selector struct {
	field string // "" for an index
	index int
}

func (s selector) String() string {
	if s.field != "" {
		return "." + s.field
	}
	return "[" + strconv.Itoa(s.index) + "]"
}

// refText writes a reference as in a template: root followed by its selectors.
func refText(root string, sels []selector) string {
	b := []byte(root)
	for _, s := range sels {
		b = append(b, s.String()...)
	}
	return string(b)
}
