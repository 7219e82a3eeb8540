package jsonschema

// Shortest documents: how long and how deeply nested the smallest valid document of each node
// is. They decide which subschemas are satisfiable, keep the matcher within MaxNesting, and
// give Completion its bytes.

// MaxMinDocument is the longest "shortest document" a subschema may have: a subschema whose
// shortest valid document is longer (minItems compounded through nesting) is treated as
// unsatisfiable, so the matcher can always finish a document within this many bytes per level.
const MaxMinDocument = 1 << 16

// MaxNesting is the deepest the matcher nests objects and arrays. encoding/json refuses
// documents nested over 10000 levels; the matcher stops well before, and never opens a container
// it could not close within the limit, so no state is a dead end.
const MaxNesting = 512

const inf = 1 << 40

// solveSat computes each node's shortest document length and least nesting as a least fixed
// point; a node is satisfiable when both are within MaxMinDocument and MaxNesting.
func (c *compiler) solveSat() {
	for _, n := range c.nodes {
		n.minLen, n.minNest = inf, inf
	}
	for changed := true; changed; {
		changed = false
		for _, n := range c.nodes {
			l, d := nodeMin(n)
			if l > MaxMinDocument || d > MaxNesting {
				l, d = inf, inf
			}
			if l < n.minLen {
				n.minLen = l
				changed = true
			}
			if d < n.minNest {
				n.minNest = d
				changed = true
			}
		}
	}
	for _, n := range c.nodes {
		n.sat = n.minLen <= MaxMinDocument && n.minNest <= MaxNesting
	}
}

func sat(a, b int) int { return min(a+b, inf) }

// nodeMin is the length of n's shortest document and the least nesting of any document, given
// its children's current estimates.
func nodeMin(n *node) (length, nest int) {
	switch n.kind {
	case kAny, kNumber, kInteger:
		return 1, 0 // 0
	case kString:
		return 2, 0 // ""
	case kLiteral:
		length, nest = inf, inf
		for i, e := range n.enc {
			length = min(length, len(e))
			nest = min(nest, n.litNest[i])
		}
		return length, nest
	case kObject:
		length, nest = 2, 1
		first := true
		for _, p := range n.props {
			if !p.required {
				continue
			}
			if !first {
				length = sat(length, 1)
			}
			first = false
			length = sat(length, sat(len(p.key), p.schema.minLen))
			nest = max(nest, sat(p.schema.minNest, 1))
		}
		return length, nest
	case kArray:
		if n.minItems == 0 {
			return 2, 1
		}
		itemLen, itemNest := 1, 0
		if n.items != nil {
			itemLen, itemNest = n.items.minLen, n.items.minNest
		}
		if itemLen >= inf || n.minItems > inf/(itemLen+1) {
			return inf, inf
		}
		return 2 + n.minItems*itemLen + n.minItems - 1, sat(itemNest, 1)
	case kAnyOf:
		length, nest = inf, inf
		for _, b := range n.anyOf {
			length = min(length, b.minLen)
			nest = min(nest, b.minNest)
		}
		return length, nest
	case kRef:
		return n.ref.minLen, n.ref.minNest
	}
	return inf, inf
}

// nesting is how many containers deep a literal value goes.
func nesting(v value) int {
	d := 0
	switch v.kind {
	case 'o':
		for _, m := range v.obj {
			d = max(d, nesting(m.val))
		}
		return d + 1
	case 'a':
		for _, e := range v.arr {
			d = max(d, nesting(e))
		}
		return d + 1
	}
	return 0
}

// writeMin appends a short document of n that nests at most budget levels (n must be
// satisfiable with n.minNest <= budget). It takes the shortest option at each step among those
// that fit the budget, so it always succeeds, though not always with the shortest document.
func writeMin(n *node, budget int, buf []byte) []byte {
	switch n.kind {
	case kAny, kNumber, kInteger:
		return append(buf, '0')
	case kString:
		return append(buf, '"', '"')
	case kLiteral:
		best := -1
		for i, e := range n.enc {
			if n.litNest[i] <= budget && (best < 0 || len(e) < len(n.enc[best])) {
				best = i
			}
		}
		return append(buf, n.enc[best]...)
	case kObject:
		return writeMembers(n, -1, budget-1, append(buf, '{'), false, false)
	case kArray:
		buf = append(buf, '[')
		buf = writeItems(n, 0, budget-1, buf)
		return append(buf, ']')
	case kAnyOf:
		var best *node
		for _, b := range n.anyOf {
			if b.sat && b.minNest <= budget && (best == nil || b.minLen < best.minLen) {
				best = b
			}
		}
		return writeMin(best, budget, buf)
	case kRef:
		return writeMin(n.ref, budget, buf)
	}
	return buf
}

// writeMembers appends the required members after property last, then '}'; each member's value
// nests at most budget levels. lead says a comma goes before the first member written; one says
// at least one member must be written (after a comma already consumed).
func writeMembers(n *node, last, budget int, buf []byte, lead, one bool) []byte {
	wrote := false
	for p := last + 1; p < len(n.props); p++ {
		pr := n.props[p]
		optionalOK := one && !wrote && pr.schema.sat && pr.schema.minNest <= budget && !requiredAfter(n, p)
		if !pr.required && !optionalOK {
			continue
		}
		if lead || wrote {
			buf = append(buf, ',')
		}
		wrote = true
		buf = append(buf, pr.key...)
		buf = writeMin(pr.schema, budget, buf)
	}
	return append(buf, '}')
}

// requiredAfter says a required property follows p.
func requiredAfter(n *node, p int) bool {
	for q := p + 1; q < len(n.props); q++ {
		if n.props[q].required {
			return true
		}
	}
	return false
}

// writeItems appends the items an array with have items needs to reach minItems, each preceded
// by a comma when have > 0; each item nests at most budget levels.
func writeItems(n *node, have, budget int, buf []byte) []byte {
	for i := have; i < n.minItems; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		if n.items == nil {
			buf = append(buf, '0')
		} else {
			buf = writeMin(n.items, budget, buf)
		}
	}
	return buf
}
