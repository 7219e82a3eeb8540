package model

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func testModel(t testing.TB) *Model {
	tok, err := TrainBPE(testCorpus(), 300)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TinyConfig(tok.VocabSize())
	cfg.Dim, cfg.Hidden, cfg.Heads, cfg.MaxSeq = 32, 48, 2, 64
	m, err := New(cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mixedStream is text, an image span and an audio span.
func mixedStream(m *Model) []Item {
	c := m.Config
	var items []Item
	for _, id := range m.Tok.Encode([]byte("what is it?")) {
		items = append(items, Item{Mod: Text, Token: id})
	}
	items = append(items, Item{Mod: Text, Token: m.Tok.Special(TokImageStart)})
	for i := 0; i < 3; i++ {
		v := make([]float32, c.PatchDim())
		for j := range v {
			v[j] = float32(math.Sin(float64(i*7 + j)))
		}
		items = append(items, Item{Mod: Image, Vec: v})
	}
	for i := 0; i < 2; i++ {
		v := make([]float32, c.FrameDim())
		for j := range v {
			v[j] = float32(math.Cos(float64(i*5 + j)))
		}
		items = append(items, Item{Mod: Audio, Vec: v})
	}
	items = append(items, Item{Mod: Text, Token: m.Tok.Special(TokEnd)})
	return items
}

func TestModel_CachedDecodingMatchesFullForward(t *testing.T) {
	m := testModel(t)
	items := mixedStream(m)
	full, err := m.Logits(items)
	if err != nil {
		t.Fatal(err)
	}
	// Prefill a prefix, then one position at a time.
	c := m.NewCache()
	split := 5
	last, err := m.Step(c, items[:split])
	if err != nil {
		t.Fatal(err)
	}
	check := func(pos int, got []float32) {
		for j := range got {
			if d := math.Abs(float64(got[j] - full[pos][j])); d > 1e-4 {
				t.Fatalf("position %d logit %d: cached %v, full %v", pos, j, got[j], full[pos][j])
			}
		}
	}
	check(split-1, last)
	// A chunk of several positions after the cache (the queries are the last of the keys).
	got, err := m.Step(c, items[split:split+3])
	if err != nil {
		t.Fatal(err)
	}
	check(split+2, got)
	for i := split + 3; i < len(items); i++ {
		got, err := m.Step(c, items[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		check(i, got)
	}
	if c.Len() != len(items) {
		t.Fatalf("cache holds %d, want %d", c.Len(), len(items))
	}
}

func TestModel_RejectsBadInputs(t *testing.T) {
	m := testModel(t)
	for _, c := range []struct {
		items []Item
		want  string
	}{
		{[]Item{{Mod: Text, Token: -1}}, "token -1"},
		{[]Item{{Mod: Image, Vec: []float32{1}}}, "image vector"},
		{[]Item{{Mod: Audio}}, "audio vector"},
		{[]Item{{Mod: 7}}, "modality"},
	} {
		if _, err := m.Logits(c.items); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q: %v", c.want, err)
		}
	}
	long := make([]Item, m.Config.MaxSeq+1)
	if _, err := m.Logits(long); !errors.Is(err, ErrContext) {
		t.Errorf("over max_seq: %v", err)
	}
	c := m.NewCache()
	if _, err := m.Step(c, long); !errors.Is(err, ErrContext) || c.Len() != 0 {
		t.Errorf("step over max_seq: %v, cache %d", err, c.Len())
	}
	cfg := m.Config
	cfg.Heads = 3
	if _, err := New(cfg, m.Tok); err == nil || !strings.Contains(err.Error(), "heads") {
		t.Errorf("bad heads: %v", err)
	}
}

func TestModel_SaveLoadRoundTrip(t *testing.T) {
	m := testModel(t)
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config != m.Config || m2.NumParams() != m.NumParams() {
		t.Fatalf("config %+v vs %+v", m2.Config, m.Config)
	}
	items := mixedStream(m)
	a, _ := m.Logits(items)
	b, err := m2.Logits(items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("logit [%d][%d]: %v after load, %v before", i, j, b[i][j], a[i][j])
			}
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("load of a missing dir succeeded")
	}
}

func TestSampler_GreedyTemperatureTopP(t *testing.T) {
	logits := []float32{1, 3, 2, 0.5}
	if g := NewSampler(0, 1, 1).Sample(logits, nil); g != 1 {
		t.Fatalf("greedy = %d", g)
	}
	if g := NewSampler(0, 1, 1).Sample(logits, []bool{true, false, true, true}); g != 2 {
		t.Fatalf("masked greedy = %d", g)
	}
	if g := NewSampler(1, 1, 1).Sample(logits, make([]bool, 4)); g != -1 {
		t.Fatalf("nothing allowed = %d", g)
	}
	draw := func(seed uint64, topP float64) []int {
		s := NewSampler(1, topP, seed)
		out := make([]int, 200)
		for i := range out {
			out[i] = s.Sample(logits, nil)
		}
		return out
	}
	a, b, c := draw(7, 1), draw(7, 1), draw(8, 1)
	if !equalInts(a, b) {
		t.Fatal("same seed, different draws")
	}
	if equalInts(a, c) {
		t.Fatal("different seeds, same 200 draws")
	}
	seen := map[int]bool{}
	for _, x := range a {
		seen[x] = true
	}
	if len(seen) < 3 {
		t.Fatalf("temperature 1 drew only %v", seen)
	}
	// p(1) ≈ 0.61, p(2) ≈ 0.22: top-p 0.7 keeps just those two.
	for _, x := range draw(9, 0.7) {
		if x != 1 && x != 2 {
			t.Fatalf("top-p 0.7 drew %d", x)
		}
	}
}
