package jsonschema

import (
	"math/rand"
	"os"
	"sort"
	"testing"
)

// benchVocab builds a 4096-token vocabulary shaped like a byte-level BPE one: the 256 single
// bytes, then the most frequent substrings (2-8 bytes) of a corpus of JSON documents drawn from
// the test schemas with a fixed seed.
func benchVocab(tb testing.TB) [][]byte {
	tb.Helper()
	rng := rand.New(rand.NewSource(1))
	var corpus []byte
	words := []string{"the", "name", "value", "type", "label", "city", "Paris", "answer", "steps", "output",
		"explanation", "children", "attributes", "button", "section", "true", "false", "null", "0.5", "42"}
	for i := 0; i < 400; i++ {
		corpus = append(corpus, `{"steps":[{"explanation":"`...)
		for j := 0; j < 6; j++ {
			corpus = append(corpus, words[rng.Intn(len(words))]...)
			corpus = append(corpus, ' ')
		}
		corpus = append(corpus, `","output":"x = `...)
		corpus = append(corpus, words[rng.Intn(len(words))]...)
		corpus = append(corpus, `"}],"final_answer":`...)
		corpus = append(corpus, words[18+rng.Intn(2)]...)
		corpus = append(corpus, `,"confidence":null}`...)
	}
	counts := map[string]int{}
	for l := 2; l <= 8; l++ {
		for i := 0; i+l <= len(corpus); i++ {
			counts[string(corpus[i:i+l])]++
		}
	}
	type kv struct {
		s string
		n int
	}
	var all []kv
	for s, n := range counts {
		all = append(all, kv{s, n * len(s)})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].s < all[j].s
	})
	vocab := make([][]byte, 0, 4096)
	for b := 0; b < 256; b++ {
		vocab = append(vocab, []byte{byte(b)})
	}
	vocab = append(vocab, nil) // a special token
	for _, e := range all {
		if len(vocab) == 4096 {
			break
		}
		vocab = append(vocab, []byte(e.s))
	}
	return vocab
}

// naiveAllowed is the baseline the Masker replaces: every token walked on its own.
func naiveAllowed(m *Matcher, vocab [][]byte, dst []bool) []bool {
	for i, tok := range vocab {
		dst[i] = len(tok) > 0 && m.Clone().AdvanceBytes(tok)
	}
	return dst
}

func benchStates(tb testing.TB) map[string]*Matcher {
	b, err := os.ReadFile("testdata/math_reasoning.json")
	if err != nil {
		tb.Fatal(err)
	}
	s := mustCompile(tb, string(b))
	at := func(prefix string) *Matcher {
		m := s.Start()
		if !m.AdvanceBytes([]byte(prefix)) {
			tb.Fatalf("prefix %q refused", prefix)
		}
		return m
	}
	return map[string]*Matcher{
		"in_string": at(`{"steps":[{"explanation":"the answer is `),
		"after_key": at(`{"steps":[{"explanation":"a","output":"b"}],"final_answer":`),
		"structure": at(`{"steps":[{"explanation":"a","output":"b"}`),
	}
}

func TestMasker_AgreesWithPerTokenWalk(t *testing.T) {
	vocab := benchVocab(t)
	k := NewMasker(vocab)
	if k.Len() != len(vocab) {
		t.Fatalf("Len %d, want %d", k.Len(), len(vocab))
	}
	for name, m := range benchStates(t) {
		got := k.Allowed(m, nil)
		want := naiveAllowed(m, vocab, make([]bool, len(vocab)))
		n := 0
		for i := range vocab {
			if got[i] != want[i] {
				t.Fatalf("%s: token %q: masker %v, walk %v", name, vocab[i], got[i], want[i])
			}
			if got[i] {
				n++
			}
		}
		if n == 0 || n == len(vocab) {
			t.Fatalf("%s: %d of %d tokens allowed: the state does not discriminate", name, n, len(vocab))
		}
		t.Logf("%s: %d of %d tokens allowed", name, n, len(vocab))
		if got[256] {
			t.Fatalf("the empty special token is allowed")
		}
	}
}

func BenchmarkMasker(b *testing.B) {
	vocab := benchVocab(b)
	k := NewMasker(vocab)
	states := benchStates(b)
	for _, name := range []string{"in_string", "after_key", "structure"} {
		m := states[name]
		dst := make([]bool, len(vocab))
		b.Run(name+"/trie", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				dst = k.Allowed(m, dst)
			}
		})
		b.Run(name+"/naive", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				dst = naiveAllowed(m, vocab, dst)
			}
		})
	}
}
