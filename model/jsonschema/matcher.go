package jsonschema

// The matcher is a pushdown automaton run as a set of threads (one per live reading of the
// bytes so far, as anyOf can leave several open). A thread is a stack of frames, linked through
// up. Frames are immutable: a step builds new frames on top of the shared tail, so Clone copies
// only the thread list.
//
// The frame under a child is stored in the state it takes once the child value completes (an
// object after a member's value, an array with one more item), so completing a child is just
// popping it.

type fkind uint8

const (
	fDone fkind = iota // the root value is complete; nothing may follow
	fObj               // an object with listed properties, in their order
	fGObj              // a generic object: any members
	fArr               // an array (generic when n is nil or n.items is nil)
	fStr               // a string
	fNum               // a number (n.kind == kInteger: integer spelling only)
	fLit               // one of n.enc, byte by byte
)

// states
const (
	stOpen uint8 = iota // expects the first byte of the value

	// objects
	oFirst // after '{': a key or '}'
	oKey   // inside a listed key literal `"name":`
	oVal   // after the key literal: the value's first byte
	oAfter // after a member: ',' or '}'
	oComma // after ',': a key
	gColon // generic object: after the key string, ':'

	// arrays
	aFirst // after '[': an item or ']'
	aAfter // after an item: ',' or ']'
	aComma // after ',': an item

	// strings
	sIn  // inside the string
	sEsc // after '\'
	sHex // inside \uXXXX; j hex digits remain
	sUTF // inside a multi-byte UTF-8 sequence; j bytes remain, this one in [lo, hi]

	// numbers
	nMinus // after '-'
	nZero  // after a leading 0 (complete)
	nInt   // in the integer digits (complete)
	nDot   // after '.'
	nFrac  // in the fraction digits (complete)
	nExp   // after 'e'
	nExpS  // after the exponent sign
	nExpD  // in the exponent digits (complete)

	lIn // inside a literal; j bytes matched
)

type frame struct {
	up     *frame
	n      *node
	k      fkind
	st     uint8
	lo, hi uint8
	depth  int32    // containers open from the root up to and including this frame
	i      int32    // fObj: last emitted property (-1 none); fArr: items so far
	j      int32    // position in a key or literal, or bytes left in an escape or UTF-8 sequence
	set    []uint16 // fObj in oKey: candidate properties; fLit: candidate literals
}

var doneFrame = &frame{k: fDone}

// maxThreads caps the readings kept at once. Dropping readings past the cap narrows what the
// matcher accepts but never lets an invalid document through, and every kept reading can still
// be completed.
const maxThreads = 32

// Matcher is the automaton part way through a document. It is not safe for concurrent use;
// Clone it to explore alternatives.
type Matcher struct {
	threads []*frame
	spare   []*frame // the previous thread list's storage, reused by the next Advance
}

// Start returns a matcher at the start of a document.
func (s *Schema) Start() *Matcher {
	return &Matcher{threads: expand(s.root, nil, nil)}
}

// Clone returns an independent copy of m. It is cheap: the frames are shared.
func (m *Matcher) Clone() *Matcher {
	return &Matcher{threads: append([]*frame(nil), m.threads...)}
}

// Advance feeds one byte. It returns false, leaving m unchanged, when b cannot continue a valid
// document.
func (m *Matcher) Advance(b byte) bool {
	out := step(m.threads, b, m.spare[:0])
	if len(out) == 0 {
		m.spare = out
		return false
	}
	m.spare, m.threads = m.threads[:0], out
	return true
}

// AdvanceBytes feeds bs in order. It returns false, leaving m unchanged, when some byte cannot
// continue a valid document.
func (m *Matcher) AdvanceBytes(bs []byte) bool {
	cur := m.threads
	var bufs [2][]*frame
	bufs[0] = m.spare[:0]
	for i, b := range bs {
		next := step(cur, b, bufs[i%2][:0])
		if len(next) == 0 {
			return false
		}
		bufs[i%2] = next
		cur = next
	}
	if len(bs) > 0 {
		m.spare, m.threads = m.threads[:0], append(m.threads[:0:0], cur...)
	}
	return true
}

// advanceTo sets dst to src advanced by b, reusing dst's storage. It reports whether b was
// accepted; dst is meaningless when it was not.
func advanceTo(dst, src *Matcher, b byte) bool {
	dst.threads = step(src.threads, b, dst.threads[:0])
	return len(dst.threads) > 0
}

// Accepting says the bytes so far form a complete valid document.
func (m *Matcher) Accepting() bool {
	for _, t := range m.threads {
		if t == doneFrame || (t.up == nil && complete(t)) {
			return true
		}
	}
	return false
}

// Done says the document is complete and no byte can follow it: the decoder must stop.
func (m *Matcher) Done() bool {
	if !m.Accepting() {
		return false
	}
	var buf []*frame
	for c := 0; c < 256; c++ {
		if buf = step(m.threads, byte(c), buf[:0]); len(buf) > 0 {
			return false
		}
	}
	return true
}

// complete says a frame that ends without a closing byte (a number or a literal) could end here.
func complete(f *frame) bool {
	switch f.k {
	case fNum:
		return f.st == nZero || f.st == nInt || f.st == nFrac || f.st == nExpD
	case fLit:
		for _, c := range f.set {
			if int(f.j) == len(f.n.enc[c]) {
				return true
			}
		}
	}
	return false
}

func step(threads []*frame, b byte, out []*frame) []*frame {
	for _, t := range threads {
		out = feed(t, b, out)
	}
	return dedupe(out)
}

// dedupe drops threads equal to an earlier one and caps their number.
func dedupe(ts []*frame) []*frame {
	if len(ts) < 2 {
		return ts
	}
	k := 0
outer:
	for _, t := range ts {
		for _, u := range ts[:k] {
			if sameStack(t, u) {
				continue outer
			}
		}
		ts[k] = t
		k++
		if k == maxThreads {
			break
		}
	}
	return ts[:k]
}

func sameStack(a, b *frame) bool {
	for a != b {
		if a == nil || b == nil || a.n != b.n || a.k != b.k || a.st != b.st || a.i != b.i || a.j != b.j ||
			a.lo != b.lo || a.hi != b.hi || len(a.set) != len(b.set) {
			return false
		}
		for i := range a.set {
			if a.set[i] != b.set[i] {
				return false
			}
		}
		a, b = a.up, b.up
	}
	return true
}

// expand returns the frames that can start a value of n, each in its open state, above up.
// Unsatisfiable branches are left out, so every frame returned can be completed.
func expand(n *node, up *frame, out []*frame) []*frame {
	if n.kind == kRef || n.kind == kAnyOf {
		for _, l := range n.leaves {
			if fits(l, up) {
				out = expandLeaf(l, up, out)
			}
		}
		return out
	}
	if !fits(n, up) {
		return out
	}
	return expandLeaf(n, up, out)
}

func expandLeaf(n *node, up *frame, out []*frame) []*frame {
	d := depthOf(up)
	switch n.kind {
	case kAny:
		out = append(out, &frame{up: up, k: fStr, depth: d}, &frame{up: up, k: fNum, n: n, depth: d},
			&frame{up: up, k: fLit, n: jsonLiterals, set: literalSet(jsonLiterals, d), depth: d})
		if d < MaxNesting {
			out = append(out, &frame{up: up, k: fGObj, depth: d + 1}, &frame{up: up, k: fArr, depth: d + 1})
		}
		return out
	case kObject:
		if n.generic {
			return append(out, &frame{up: up, k: fGObj, depth: d + 1})
		}
		return append(out, &frame{up: up, k: fObj, n: n, i: -1, depth: d + 1})
	case kArray:
		return append(out, &frame{up: up, k: fArr, n: n, depth: d + 1})
	case kString:
		return append(out, &frame{up: up, k: fStr, depth: d})
	case kNumber, kInteger:
		return append(out, &frame{up: up, k: fNum, n: n, depth: d})
	case kLiteral:
		return append(out, &frame{up: up, k: fLit, n: n, set: literalSet(n, d), depth: d})
	}
	return out
}

var jsonLiterals = &node{kind: kLiteral, sat: true, minLen: 4,
	enc: [][]byte{[]byte("true"), []byte("false"), []byte("null")}, litNest: []int{0, 0, 0}, allLits: []uint16{0, 1, 2}}

// literalSet lists the literals of n that fit below depth containers.
func literalSet(n *node, depth int32) []uint16 {
	if int(depth)+n.maxLitNest <= MaxNesting && n.allLits != nil {
		return n.allLits // shared: frames never modify their sets
	}
	s := make([]uint16, 0, len(n.enc))
	for i := range n.enc {
		if int(depth)+n.litNest[i] <= MaxNesting {
			s = append(s, uint16(i))
		}
	}
	return s
}

func depthOf(f *frame) int32 {
	if f == nil {
		return 0
	}
	return f.depth
}

// fits says a value of n can start above up within MaxNesting.
func fits(n *node, up *frame) bool {
	return n.sat && int(depthOf(up))+n.minNest <= MaxNesting
}

// pop is what remains once f's value completes.
func pop(f *frame) *frame {
	if f.up == nil {
		return doneFrame
	}
	return f.up
}

// with returns a copy of f in state st.
func (f *frame) with(st uint8) *frame {
	c := *f
	c.st = st
	return &c
}

// startValue feeds b as the first byte of a value of n above up.
func startValue(n *node, up *frame, b byte, out []*frame) []*frame {
	var buf [8]*frame
	for _, c := range expand(n, up, buf[:0]) {
		out = feed(c, b, out)
	}
	return out
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// feed appends to out the threads that follow from f on byte b.
func feed(f *frame, b byte, out []*frame) []*frame {
	switch f.k {
	case fDone:
		return out
	case fStr:
		return feedString(f, b, out)
	case fNum:
		return feedNumber(f, b, out)
	case fLit:
		return feedLiteral(f, b, out)
	case fArr:
		return feedArray(f, b, out)
	case fGObj:
		return feedGenericObject(f, b, out)
	case fObj:
		return feedObject(f, b, out)
	}
	return out
}

func feedString(f *frame, b byte, out []*frame) []*frame {
	switch f.st {
	case stOpen:
		if b == '"' {
			return append(out, f.with(sIn))
		}
	case sIn:
		switch {
		case b == '"':
			return append(out, pop(f))
		case b == '\\':
			return append(out, f.with(sEsc))
		case b < 0x20:
		case b < 0x80:
			return append(out, f) // unchanged: share the frame
		case b >= 0xC2 && b <= 0xDF:
			return append(out, utf(f, 1, 0x80, 0xBF))
		case b == 0xE0:
			return append(out, utf(f, 2, 0xA0, 0xBF))
		case b == 0xED:
			return append(out, utf(f, 2, 0x80, 0x9F))
		case b >= 0xE1 && b <= 0xEF:
			return append(out, utf(f, 2, 0x80, 0xBF))
		case b == 0xF0:
			return append(out, utf(f, 3, 0x90, 0xBF))
		case b >= 0xF1 && b <= 0xF3:
			return append(out, utf(f, 3, 0x80, 0xBF))
		case b == 0xF4:
			return append(out, utf(f, 3, 0x80, 0x8F))
		}
	case sUTF:
		if b >= f.lo && b <= f.hi {
			if f.j == 1 {
				return append(out, f.with(sIn))
			}
			return append(out, utf(f, f.j-1, 0x80, 0xBF))
		}
	case sEsc:
		switch b {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			return append(out, f.with(sIn))
		case 'u':
			c := f.with(sHex)
			c.j = 4
			return append(out, c)
		}
	case sHex:
		if isDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F') {
			if f.j == 1 {
				return append(out, f.with(sIn))
			}
			c := f.with(sHex)
			c.j = f.j - 1
			return append(out, c)
		}
	}
	return out
}

func utf(f *frame, left int32, lo, hi uint8) *frame {
	c := f.with(sUTF)
	c.j, c.lo, c.hi = left, lo, hi
	return c
}

// Digit limits of the numbers the matcher emits, so every one fits a float64 (encoding/json
// refuses 1e400) and a decoder cannot spin on digits forever.
const (
	maxIntDigits  = 16
	maxFracDigits = 16
	maxExpDigits  = 2
)

func feedNumber(f *frame, b byte, out []*frame) []*frame {
	integer := f.n != nil && f.n.kind == kInteger
	next := uint8(255)
	more := func(limit int32) []*frame { // one more digit in the current part
		if f.j >= limit {
			return out
		}
		c := f.with(f.st)
		c.j = f.j + 1
		return append(out, c)
	}
	switch f.st {
	case stOpen:
		switch {
		case b == '-':
			next = nMinus
		case b == '0':
			next = nZero
		case isDigit(b):
			next = nInt
		}
	case nMinus:
		switch {
		case b == '0':
			next = nZero
		case isDigit(b):
			next = nInt
		}
	case nZero, nInt:
		switch {
		case f.st == nInt && isDigit(b):
			return more(maxIntDigits)
		case b == '.' && !integer:
			next = nDot
		case (b == 'e' || b == 'E') && !integer:
			next = nExp
		}
	case nDot:
		if isDigit(b) {
			next = nFrac
		}
	case nFrac:
		switch {
		case isDigit(b):
			return more(maxFracDigits)
		case b == 'e' || b == 'E':
			next = nExp
		}
	case nExp:
		switch {
		case b == '+' || b == '-':
			next = nExpS
		case isDigit(b):
			next = nExpD
		}
	case nExpS:
		if isDigit(b) {
			next = nExpD
		}
	case nExpD:
		if isDigit(b) {
			return more(maxExpDigits)
		}
	}
	if next != 255 {
		c := f.with(next)
		c.j = 1 // digits in the part just begun (when it is a digit part)
		return append(out, c)
	}
	// b ends the number: it belongs to the enclosing value.
	if complete(f) && f.up != nil {
		return feed(f.up, b, out)
	}
	return out
}

func feedLiteral(f *frame, b byte, out []*frame) []*frame {
	enc := f.n.enc
	var keep []uint16
	done := false
	for _, c := range f.set {
		e := enc[c]
		if int(f.j) < len(e) && e[f.j] == b {
			keep = append(keep, c)
		} else if int(f.j) == len(e) {
			done = true
		}
	}
	if len(keep) > 0 {
		c := f.with(lIn)
		c.j = f.j + 1
		c.set = keep
		if len(keep) == len(f.set) {
			c.set = f.set // share: nothing dropped
		}
		if len(keep) == 1 && int(c.j) == len(enc[keep[0]]) && !numberish(enc[keep[0]]) {
			// A self-delimiting literal is complete: pop at once.
			out = append(out, pop(f))
		} else {
			out = append(out, c)
		}
	}
	if done && f.up != nil {
		// A complete number literal ended by b, which belongs to the enclosing value.
		out = feed(f.up, b, out)
	}
	return out
}

func arrayBounds(f *frame) (minItems, maxItems int, items *node) {
	if f.n == nil {
		return 0, -1, anyNode
	}
	maxItems = f.n.maxItems
	items = f.n.items
	if items == nil {
		items = anyNode
	} else if !items.sat {
		maxItems = 0
	}
	return f.n.minItems, maxItems, items
}

func feedArray(f *frame, b byte, out []*frame) []*frame {
	minItems, maxItems, items := arrayBounds(f)
	canClose := int(f.i) >= minItems
	canAdd := (maxItems < 0 || int(f.i) < maxItems) && fits(items, f)
	switch f.st {
	case stOpen:
		if b == '[' {
			return append(out, f.with(aFirst))
		}
	case aFirst, aComma:
		if b == ']' && f.st == aFirst && canClose {
			return append(out, pop(f))
		}
		if canAdd {
			after := f.with(aAfter)
			after.i = f.i + 1
			return startValue(items, after, b, out)
		}
	case aAfter:
		if b == ']' && canClose {
			return append(out, pop(f))
		}
		if b == ',' && canAdd {
			return append(out, f.with(aComma))
		}
	}
	return out
}

func feedGenericObject(f *frame, b byte, out []*frame) []*frame {
	switch f.st {
	case stOpen:
		if b == '{' {
			return append(out, f.with(oFirst))
		}
	case oFirst, oComma:
		if b == '}' && f.st == oFirst {
			return append(out, pop(f))
		}
		if b == '"' {
			return append(out, &frame{up: f.with(gColon), k: fStr, st: sIn, depth: f.depth})
		}
	case gColon:
		if b == ':' {
			return append(out, f.with(oVal))
		}
	case oVal:
		return startValue(anyNode, f.with(oAfter), b, out)
	case oAfter:
		if b == '}' {
			return append(out, pop(f))
		}
		if b == ',' {
			return append(out, f.with(oComma))
		}
	}
	return out
}

// canClose says no required property follows the last emitted one.
func canClose(n *node, last int32) bool {
	for p := int(last) + 1; p < len(n.props); p++ {
		if n.props[p].required {
			return false
		}
	}
	return true
}

func feedObject(f *frame, b byte, out []*frame) []*frame {
	n := f.n
	switch f.st {
	case stOpen:
		if b == '{' {
			return append(out, f.with(oFirst))
		}
	case oFirst, oComma:
		if b == '}' && f.st == oFirst && canClose(n, f.i) {
			return append(out, pop(f))
		}
		if b != '"' {
			return out
		}
		// Candidates: the properties after the last one, up to and including the next
		// required one, whose schema can be satisfied.
		var set []uint16
		for p := int(f.i) + 1; p < len(n.props); p++ {
			if fits(n.props[p].schema, f) {
				set = append(set, uint16(p))
			}
			if n.props[p].required {
				break
			}
		}
		if len(set) == 0 {
			return out
		}
		c := f.with(oKey)
		c.j = 1
		c.set = set
		return append(out, c)
	case oKey:
		var keep []uint16
		for _, p := range f.set {
			k := n.props[p].key
			if int(f.j) < len(k) && k[f.j] == b {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			return out
		}
		if len(keep) == 1 && int(f.j)+1 == len(n.props[keep[0]].key) {
			c := f.with(oVal)
			c.i = int32(keep[0])
			c.j = 0
			c.set = nil
			return append(out, c)
		}
		c := f.with(oKey)
		c.j = f.j + 1
		if len(keep) < len(f.set) {
			c.set = keep
		} // else share f.set: nothing was dropped
		return append(out, c)
	case oVal:
		return startValue(n.props[f.i].schema, f.with(oAfter), b, out)
	case oAfter:
		if b == '}' && canClose(n, f.i) {
			return append(out, pop(f))
		}
		if b == ',' {
			// A comma needs a property to follow.
			for p := int(f.i) + 1; p < len(n.props); p++ {
				if fits(n.props[p].schema, f) {
					return append(out, f.with(oComma))
				}
				if n.props[p].required {
					break
				}
			}
		}
	}
	return out
}

// numberish says a literal's encoding ends in a digit, so it ends only at the next byte.
func numberish(enc []byte) bool {
	c := enc[len(enc)-1]
	return c >= '0' && c <= '9'
}

// Completion returns bytes that take m to a complete document, short but not always the
// shortest: the open frames are closed from the top with the shortest value each still needs.
// A decoder near its token budget can force these bytes. It returns nil when m is accepting.
func (m *Matcher) Completion() []byte {
	if m.Accepting() || len(m.threads) == 0 {
		return nil
	}
	var buf []byte
	for f := m.threads[0]; f != nil && f != doneFrame; f = f.up {
		buf = closeFrame(f, buf)
	}
	return buf
}

// closeFrame appends what f needs to complete; the frame below is already in its after-child
// state. Values inside f nest at most budget levels, so the bytes stay within MaxNesting.
func closeFrame(f *frame, buf []byte) []byte {
	budget := MaxNesting - int(f.depth)
	switch f.k {
	case fStr:
		switch f.st {
		case stOpen:
			return append(buf, '"', '"')
		case sEsc:
			return append(buf, 'n', '"')
		case sHex:
			for i := int32(0); i < f.j; i++ {
				buf = append(buf, '0')
			}
			return append(buf, '"')
		case sUTF:
			buf = append(buf, f.lo)
			for i := int32(1); i < f.j; i++ {
				buf = append(buf, 0x80)
			}
			return append(buf, '"')
		}
		return append(buf, '"')
	case fNum:
		if complete(f) {
			return buf
		}
		return append(buf, '0')
	case fLit:
		best := -1
		for _, c := range f.set {
			e := f.n.enc[c]
			if int(f.j) <= len(e) && (best < 0 || len(e) < len(f.n.enc[best])) {
				best = int(c)
			}
		}
		return append(buf, f.n.enc[best][f.j:]...)
	case fArr:
		minItems, _, items := arrayBounds(f)
		have := int(f.i)
		switch f.st {
		case stOpen:
			buf = append(buf, '[')
			fallthrough
		case aFirst:
			have = 0
		case aComma:
			buf = writeMin(items, budget, buf)
			have++
		}
		for ; have < minItems; have++ {
			if have > 0 {
				buf = append(buf, ',')
			}
			buf = writeMin(items, budget, buf)
		}
		return append(buf, ']')
	case fGObj:
		switch f.st {
		case stOpen:
			return append(buf, '{', '}')
		case oComma:
			return append(buf, `"":0}`...)
		case gColon:
			return append(buf, ":0}"...)
		case oVal:
			return append(buf, "0}"...)
		}
		return append(buf, '}')
	case fObj:
		n := f.n
		switch f.st {
		case stOpen:
			return writeMembers(n, -1, budget, append(buf, '{'), false, false)
		case oFirst:
			return writeMembers(n, -1, budget, buf, false, false)
		case oComma:
			return writeMembers(n, int(f.i), budget, buf, false, true)
		case oKey:
			c := int(f.set[0])
			if last := int(f.set[len(f.set)-1]); n.props[last].required {
				c = last
			}
			buf = append(buf, n.props[c].key[f.j:]...)
			buf = writeMin(n.props[c].schema, budget, buf)
			return writeMembers(n, c, budget, buf, true, false)
		case oVal:
			buf = writeMin(n.props[f.i].schema, budget, buf)
			return writeMembers(n, int(f.i), budget, buf, true, false)
		case oAfter:
			return writeMembers(n, int(f.i), budget, buf, true, false)
		}
	}
	return buf
}
