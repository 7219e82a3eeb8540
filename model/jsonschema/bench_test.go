package jsonschema

import (
	"os"
	"sync"
	"testing"
)

func loadSchema(tb testing.TB, name string) (*Schema, []byte) {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	s := mustCompile(tb, string(b))
	return s, b
}

const reasoningDoc = `{"steps":[{"explanation":"Subtract 7 from both sides: 8x = -30.","output":"8x = -30"},{"explanation":"Divide by 8.","output":"x = -3.75"}],"final_answer":-3.75,"confidence":0.9}`

// BenchmarkMatcher_Advance is the per-byte cost of following a document (bytes/s = the rate a
// decoder can check its output).
func BenchmarkMatcher_Advance(b *testing.B) {
	s, _ := loadSchema(b, "math_reasoning.json")
	doc := []byte(reasoningDoc)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m := s.Start()
		for _, c := range doc {
			if !m.Advance(c) {
				b.Fatal("refused")
			}
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	s, _ := loadSchema(b, "math_reasoning.json")
	doc := []byte(reasoningDoc)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := s.Validate(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	_, raw := loadSchema(b, "recursive_ui.json")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// A Schema and a Masker are shared by concurrent decodes (run with -race).
func TestMasker_ConcurrentUse(t *testing.T) {
	vocab := benchVocab(t)
	k := NewMasker(vocab)
	s, _ := loadSchema(t, "math_reasoning.json")
	doc := []byte(reasoningDoc)
	want := make([][]bool, len(doc))
	m := s.Start()
	for i, c := range doc {
		want[i] = k.Allowed(m, nil)
		m.Advance(c)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := s.Start()
			var dst []bool
			for i, c := range doc {
				dst = k.Allowed(m, dst)
				for j := range dst {
					if dst[j] != want[i][j] {
						t.Errorf("byte %d token %d differs", i, j)
						return
					}
				}
				m.Advance(c)
			}
		}()
	}
	wg.Wait()
}
