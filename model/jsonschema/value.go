package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// value is a parsed JSON value that keeps object members in document order.
type value struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' boolean, 'z' null
	obj  []member
	arr  []value
	str  string
	num  json.Number
	b    bool
}

type member struct {
	key string
	val value
}

// parseValue parses exactly one JSON document (surrounding whitespace allowed).
func parseValue(doc []byte) (value, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := readValue(dec)
	if err != nil {
		return value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return value{}, errors.New("unexpected data after the top-level value")
		}
		return value{}, err
	}
	return v, nil
}

func readValue(dec *json.Decoder) (value, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return value{}, io.ErrUnexpectedEOF
		}
		return value{}, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := value{kind: 'o', obj: []member{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return value{}, err
				}
				k, ok := kt.(string)
				if !ok {
					return value{}, fmt.Errorf("object key is %v, not a string", kt)
				}
				mv, err := readValue(dec)
				if err != nil {
					return value{}, err
				}
				v.obj = append(v.obj, member{key: k, val: mv})
			}
			if _, err := dec.Token(); err != nil {
				return value{}, err
			}
			return v, nil
		case '[':
			v := value{kind: 'a', arr: []value{}}
			for dec.More() {
				ev, err := readValue(dec)
				if err != nil {
					return value{}, err
				}
				v.arr = append(v.arr, ev)
			}
			if _, err := dec.Token(); err != nil {
				return value{}, err
			}
			return v, nil
		}
		return value{}, fmt.Errorf("unexpected %v", t)
	case string:
		return value{kind: 's', str: t}, nil
	case json.Number:
		return value{kind: 'n', num: t}, nil
	case bool:
		return value{kind: 'b', b: t}, nil
	case nil:
		return value{kind: 'z'}, nil
	}
	return value{}, fmt.Errorf("unexpected token %v", tok)
}

// get returns the member named key of an object value.
func (v value) get(key string) (value, bool) {
	for _, m := range v.obj {
		if m.key == key {
			return m.val, true
		}
	}
	return value{}, false
}

// compact writes v as compact JSON, keeping object member order.
func (v value) compact(buf *bytes.Buffer) {
	switch v.kind {
	case 'o':
		buf.WriteByte('{')
		for i, m := range v.obj {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(encodeString(m.key))
			buf.WriteByte(':')
			m.val.compact(buf)
		}
		buf.WriteByte('}')
	case 'a':
		buf.WriteByte('[')
		for i, e := range v.arr {
			if i > 0 {
				buf.WriteByte(',')
			}
			e.compact(buf)
		}
		buf.WriteByte(']')
	case 's':
		buf.Write(encodeString(v.str))
	case 'n':
		buf.WriteString(v.num.String())
	case 'b':
		buf.WriteString(strconv.FormatBool(v.b))
	default:
		buf.WriteString("null")
	}
}

// encodeString is the canonical encoding the matcher emits for a literal string: encoding/json's
// escaping without HTML escapes.
func encodeString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// equal is JSON value equality: numbers compare by value, objects as unordered maps.
func equal(a, b value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case 'o':
		if len(a.obj) != len(b.obj) {
			return false
		}
		for _, m := range a.obj {
			o, ok := b.get(m.key)
			if !ok || !equal(m.val, o) {
				return false
			}
		}
		return true
	case 'a':
		if len(a.arr) != len(b.arr) {
			return false
		}
		for i := range a.arr {
			if !equal(a.arr[i], b.arr[i]) {
				return false
			}
		}
		return true
	case 's':
		return a.str == b.str
	case 'n':
		x, ok1 := numRat(a.num)
		y, ok2 := numRat(b.num)
		if !ok1 || !ok2 {
			return a.num == b.num
		}
		return x.Cmp(y) == 0
	case 'b':
		return a.b == b.b
	}
	return true
}

// numRat parses a JSON number exactly. Exponents are bounded so a hostile "1e999999999" cannot
// make big.Rat allocate without limit.
func numRat(n json.Number) (*big.Rat, bool) {
	s := n.String()
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 4096 || e < -4096 {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// isInteger says whether a JSON number has an integral value (1, 1.0 and 1e2 all do).
func isInteger(n json.Number) bool {
	r, ok := numRat(n)
	if !ok {
		// Out of the exact range: decide from the text.
		s := n.String()
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			return !strings.HasPrefix(s[i+1:], "-")
		}
		return !strings.Contains(s, ".")
	}
	return r.IsInt()
}

// canonical is a string that is the same exactly for values equal reports equal (for values
// without repeated object keys): numbers by value, objects with sorted keys.
func canonical(v value) string {
	var b strings.Builder
	writeCanonical(&b, v)
	return b.String()
}

func writeCanonical(b *strings.Builder, v value) {
	switch v.kind {
	case 'o':
		keys := make([]string, 0, len(v.obj))
		vals := map[string]value{}
		for _, m := range v.obj {
			if _, dup := vals[m.key]; !dup {
				keys = append(keys, m.key)
				vals[m.key] = m.val // the first, as get returns
			}
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for _, k := range keys {
			b.Write(encodeString(k))
			b.WriteByte(':')
			writeCanonical(b, vals[k])
			b.WriteByte(',')
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for _, e := range v.arr {
			writeCanonical(b, e)
			b.WriteByte(',')
		}
		b.WriteByte(']')
	case 'n':
		if r, ok := numRat(v.num); ok {
			b.WriteString("n" + r.RatString())
		} else {
			b.WriteString("N" + v.num.String())
		}
	case 's':
		b.WriteByte('s')
		b.Write(encodeString(v.str))
	case 'b':
		b.WriteString(strconv.FormatBool(v.b))
	default:
		b.WriteString("null")
	}
}
