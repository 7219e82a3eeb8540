package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Special tokens. Their ids follow the byte tokens and the learned merges; plain text never
// encodes to them, so a user cannot forge a role marker by typing its name.
const (
	TokBOS        = "<|bos|>"
	TokEOS        = "<|eos|>"
	TokEnd        = "<|end|>" // end of one message
	TokSystem     = "<|system|>"
	TokUser       = "<|user|>"
	TokAssistant  = "<|assistant|>"
	TokTool       = "<|tool|>"
	TokTools      = "<|tools|>" // the tool definitions the assistant may call
	TokImageStart = "<|image|>"
	TokImageEnd   = "<|/image|>"
	TokAudioStart = "<|audio|>"
	TokAudioEnd   = "<|/audio|>"
	TokCallStart  = "<|tool_call|>"
	TokCallEnd    = "<|/tool_call|>"
	TokPad        = "<|pad|>"
)

// SpecialTokens lists the special tokens in id order (after the merges).
var SpecialTokens = []string{TokBOS, TokEOS, TokEnd, TokSystem, TokUser, TokAssistant, TokTool, TokTools,
	TokImageStart, TokImageEnd, TokAudioStart, TokAudioEnd, TokCallStart, TokCallEnd, TokPad}

// Tokenizer is a byte-level BPE tokenizer: ids 0..255 are the bytes, then one id per learned
// merge, then the special tokens. Encode never fails and Decode(Encode(x)) == x for any bytes.
// A Tokenizer is immutable and safe for concurrent use.
type Tokenizer struct {
	merges  [][2]int       // merge i makes token 256+i from the pair
	rank    map[[2]int]int // pair -> merge index
	pieces  [][]byte       // bytes of each non-special token
	special map[string]int // special token name -> id
	names   []string       // special names, by id - firstSpecial
}

// ErrTokenizer is wrapped by every tokenizer load error.
var ErrTokenizer = errors.New("model: bad tokenizer")

// TrainBPE learns vocabSize-256-len(SpecialTokens) merges from corpus, GPT-2 style: the corpus
// is first cut into chunks (a run of letters with its leading space, each digit alone, a run of
// other bytes) and merges never cross a chunk boundary. Ties between equally frequent pairs go
// to the smallest pair, so training is deterministic.
func TrainBPE(corpus [][]byte, vocabSize int) (*Tokenizer, error) {
	nMerges := vocabSize - 256 - len(SpecialTokens)
	if nMerges < 0 {
		return nil, fmt.Errorf("train bpe: vocabSize %d is below the %d byte and special tokens", vocabSize, 256+len(SpecialTokens))
	}
	counts := map[string]int{}
	for _, doc := range corpus {
		for _, c := range chunks(doc) {
			counts[string(c)]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([][]int, len(keys))
	freq := make([]int, len(keys))
	for i, k := range keys {
		w := make([]int, len(k))
		for j := 0; j < len(k); j++ {
			w[j] = int(k[j])
		}
		words[i], freq[i] = w, counts[k]
	}
	t := &Tokenizer{rank: map[[2]int]int{}}
	for m := 0; m < nMerges; m++ {
		pairs := map[[2]int]int{}
		for i, w := range words {
			for j := 0; j+1 < len(w); j++ {
				pairs[[2]int{w[j], w[j+1]}] += freq[i]
			}
		}
		best, bestN := [2]int{}, 0
		for p, n := range pairs {
			if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break // nothing repeats: more merges would only memorise
		}
		id := 256 + len(t.merges)
		t.rank[best] = len(t.merges)
		t.merges = append(t.merges, best)
		for i, w := range words {
			words[i] = mergePair(w, best, id)
		}
	}
	t.build()
	return t, nil
}

func mergePair(w []int, p [2]int, id int) []int {
	out := w[:0]
	for j := 0; j < len(w); j++ {
		if j+1 < len(w) && w[j] == p[0] && w[j+1] == p[1] {
			out = append(out, id)
			j++
		} else {
			out = append(out, w[j])
		}
	}
	return out
}

// build fills pieces and the special-token table from merges.
func (t *Tokenizer) build() {
	t.pieces = make([][]byte, 256+len(t.merges))
	for i := 0; i < 256; i++ {
		t.pieces[i] = []byte{byte(i)}
	}
	for i, m := range t.merges {
		t.pieces[256+i] = append(append([]byte{}, t.pieces[m[0]]...), t.pieces[m[1]]...)
	}
	if t.rank == nil {
		t.rank = map[[2]int]int{}
		for i, m := range t.merges {
			t.rank[m] = i
		}
	}
	t.special = map[string]int{}
	t.names = append([]string(nil), SpecialTokens...)
	for i, s := range SpecialTokens {
		t.special[s] = len(t.pieces) + i
	}
}

func class(b byte) int {
	switch {
	case b >= '0' && b <= '9':
		return 1
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= 0x80:
		return 2
	case b == ' ':
		return 3
	}
	return 0
}

// maxChunk caps a chunk so that encoding stays linear in the input on long runs.
const maxChunk = 32

// chunks cuts text where merges may not cross: a space joins the letters after it, each digit
// stands alone, and other bytes group with their own kind.
func chunks(b []byte) [][]byte {
	var out [][]byte
	i := 0
	for i < len(b) {
		j := i + 1
		switch class(b[i]) {
		case 1:
		case 3:
			if j < len(b) && class(b[j]) == 2 {
				for j < len(b) && class(b[j]) == 2 {
					j++
				}
			} else {
				for j < len(b) && class(b[j]) == 3 {
					j++
				}
			}
		default:
			k := class(b[i])
			for j < len(b) && class(b[j]) == k {
				j++
			}
		}
		if j-i > maxChunk {
			j = i + maxChunk
		}
		out = append(out, b[i:j])
		i = j
	}
	return out
}

// VocabSize is the number of token ids, special tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) + len(t.names) }

// Special returns the id of a special token such as [TokEOS]; it panics on an unknown name,
// which is a programmer error.
func (t *Tokenizer) Special(name string) int {
	id, ok := t.special[name]
	if !ok {
		panic("model: unknown special token " + name)
	}
	return id
}

// IsSpecial reports whether id is a special token.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= len(t.pieces) && id < t.VocabSize() }

// Encode turns bytes into token ids. It never yields a special token.
func (t *Tokenizer) Encode(b []byte) []int {
	var out []int
	for _, c := range chunks(b) {
		w := make([]int, len(c))
		for j := range c {
			w[j] = int(c[j])
		}
		for len(w) > 1 {
			best, bestR := -1, len(t.merges)
			for j := 0; j+1 < len(w); j++ {
				if r, ok := t.rank[[2]int{w[j], w[j+1]}]; ok && r < bestR {
					best, bestR = j, r
				}
			}
			if best < 0 {
				break
			}
			w = mergePair(w, t.merges[bestR], 256+bestR)
		}
		out = append(out, w...)
	}
	return out
}

// Decode turns ids back into bytes; a special token decodes to its name and an id outside the
// vocabulary to nothing.
func (t *Tokenizer) Decode(ids []int) []byte {
	var out []byte
	for _, id := range ids {
		out = append(out, t.Piece(id)...)
	}
	return out
}

// Piece returns the bytes of one token (a special token's name). The caller must not modify it.
func (t *Tokenizer) Piece(id int) []byte {
	switch {
	case id >= 0 && id < len(t.pieces):
		return t.pieces[id]
	case t.IsSpecial(id):
		return []byte(t.names[id-len(t.pieces)])
	}
	return nil
}

// Vocab returns the bytes of every token for constrained decoding: special tokens are empty, so
// a byte-level matcher never allows them. The caller must not modify the slices.
func (t *Tokenizer) Vocab() [][]byte {
	v := make([][]byte, t.VocabSize())
	copy(v, t.pieces)
	return v
}

type tokenizerJSON struct {
	Type    string   `json:"type"`
	Merges  [][2]int `json:"merges"`
	Special []string `json:"special_tokens"`
}

// MarshalJSON writes the tokenizer as {"type":"byte_bpe","merges":[[a,b],...],"special_tokens":[...]}.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	return json.Marshal(tokenizerJSON{Type: "byte_bpe", Merges: t.merges, Special: t.names})
}

// ParseTokenizer reads the JSON that MarshalJSON writes, checking every merge refers to an
// earlier token.
func ParseTokenizer(data []byte) (*Tokenizer, error) {
	var j tokenizerJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenizer, err)
	}
	if j.Type != "byte_bpe" {
		return nil, fmt.Errorf("%w: type %q, want \"byte_bpe\"", ErrTokenizer, j.Type)
	}
	if strings.Join(j.Special, ",") != strings.Join(SpecialTokens, ",") {
		return nil, fmt.Errorf("%w: special_tokens %v differ from this build's %v", ErrTokenizer, j.Special, SpecialTokens)
	}
	t := &Tokenizer{rank: map[[2]int]int{}}
	for i, m := range j.Merges {
		id := 256 + i
		if m[0] < 0 || m[0] >= id || m[1] < 0 || m[1] >= id {
			return nil, fmt.Errorf("%w: merges[%d] = %v refers to a token not yet defined", ErrTokenizer, i, m)
		}
		if _, dup := t.rank[m]; dup {
			return nil, fmt.Errorf("%w: merges[%d] = %v repeats an earlier merge", ErrTokenizer, i, m)
		}
		t.rank[m] = i
		t.merges = append(t.merges, m)
	}
	t.build()
	return t, nil
}

// LoadTokenizer reads a tokenizer.json file.
func LoadTokenizer(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := ParseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}
