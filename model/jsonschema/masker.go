package jsonschema

// Masker marks, for a matcher state, the tokens of a vocabulary that keep the matcher live. It
// holds the vocabulary as a byte trie, so a mask step walks each shared prefix once and drops a
// whole subtree at the first byte the matcher refuses.
//
// A Masker is immutable and safe for concurrent use; each Allowed call allocates its own scratch.
type Masker struct {
	size   int
	maxLen int
	nodes  []trieNode
	order  []int32 // token ids in trie order: a node's subtree holds order[lo:hi]
}

type trieNode struct {
	edges  []trieEdge // sorted by byte
	tokens []int32    // tokens whose bytes end here
	lo, hi int32      // the subtree's tokens in order
	plain  bool       // every byte in the subtree is a printable ASCII string byte (not '"' or '\\')
}

type trieEdge struct {
	b     byte
	child int32
}

// NewMasker builds the trie of vocab, where vocab[i] is the bytes of token i. Empty entries
// (special tokens) are never allowed; the decoder decides about end-of-sequence itself, from
// [Matcher.Accepting] and [Matcher.Done].
func NewMasker(vocab [][]byte) *Masker {
	k := &Masker{size: len(vocab), nodes: []trieNode{{}}}
	for id, tok := range vocab {
		if len(tok) == 0 {
			continue
		}
		k.maxLen = max(k.maxLen, len(tok))
		cur := int32(0)
		for _, b := range tok {
			next := int32(-1)
			for _, e := range k.nodes[cur].edges {
				if e.b == b {
					next = e.child
					break
				}
			}
			if next < 0 {
				next = int32(len(k.nodes))
				k.nodes = append(k.nodes, trieNode{})
				edges := append(k.nodes[cur].edges, trieEdge{b: b, child: next})
				for i := len(edges) - 1; i > 0 && edges[i].b < edges[i-1].b; i-- {
					edges[i], edges[i-1] = edges[i-1], edges[i]
				}
				k.nodes[cur].edges = edges
			}
			cur = next
		}
		k.nodes[cur].tokens = append(k.nodes[cur].tokens, int32(id))
	}
	k.number(0)
	return k
}

// plainByte says b continues a string unchanged: printable ASCII other than '"' and '\\'.
func plainByte(b byte) bool { return b >= 0x20 && b < 0x7f && b != '"' && b != '\\' }

// number lays out the subtree of node at in k.order and computes its plain flag.
func (k *Masker) number(at int32) bool {
	n := &k.nodes[at]
	n.lo = int32(len(k.order))
	k.order = append(k.order, n.tokens...)
	plain := true
	for _, e := range n.edges {
		if !k.number(e.child) || !plainByte(e.b) {
			plain = false
		}
	}
	n = &k.nodes[at] // re-take: nodes is not reallocated here, but stay safe
	n.hi = int32(len(k.order))
	n.plain = plain
	return plain
}

// inPlainString says every reading of m is inside a string, where printable ASCII bytes other
// than '"' and '\\' are always accepted and change nothing.
func inPlainString(m *Matcher) bool {
	for _, t := range m.threads {
		if t.k != fStr || t.st != sIn {
			return false
		}
	}
	return len(m.threads) > 0
}

// Len is the size of the vocabulary.
func (k *Masker) Len() int { return k.size }

// Allowed sets dst[i] to whether every byte of token i can follow m's bytes, and returns dst
// (grown or allocated to the vocabulary's size when too short). m is not changed.
func (k *Masker) Allowed(m *Matcher, dst []bool) []bool {
	if cap(dst) < k.size {
		dst = make([]bool, k.size)
	}
	dst = dst[:k.size]
	clear(dst)
	levels := make([]Matcher, k.maxLen) // one scratch matcher per depth, reused across siblings
	k.walk(0, m, 0, levels, dst)
	return dst
}

func (k *Masker) walk(at int32, m *Matcher, depth int, levels []Matcher, dst []bool) {
	next := &levels[depth]
	plain := inPlainString(m)
	for _, e := range k.nodes[at].edges {
		if plain && plainByte(e.b) && k.nodes[e.child].plain {
			// Inside a string, a token of plain bytes is always allowed: mark the whole
			// subtree without walking it.
			c := &k.nodes[e.child]
			for _, t := range k.order[c.lo:c.hi] {
				dst[t] = true
			}
			continue
		}
		if !advanceTo(next, m, e.b) {
			continue
		}
		child := &k.nodes[e.child]
		for _, t := range child.tokens {
			dst[t] = true
		}
		if len(child.edges) > 0 {
			k.walk(e.child, next, depth+1, levels, dst)
		}
	}
}
