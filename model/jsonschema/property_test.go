package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// check runs a property with rapid: 100 cases by default (-rapid.checks), 50 rounds of them
// under LUMEN_ROBUSTNESS=1.
func check(t *testing.T, prop func(*rapid.T)) {
	rounds := 1
	if os.Getenv("LUMEN_ROBUSTNESS") == "1" {
		rounds = 50
	}
	for i := 0; i < rounds; i++ {
		rapid.Check(t, prop)
	}
}

// probeBytes are the bytes a random walk tries at each step: every byte JSON's structure can
// use, some letters, escapes, UTF-8 lead and continuation bytes, and bytes that are never valid.
var probeBytes = func() []byte {
	b := []byte(`{}[],:"\-+.0123456789eEtrufalsnbxyz/ `)
	return append(b, 0x00, 0x1f, 0x7f, 0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xc0, 0xed, 0xa0)
}()

func compileGenerated(t *rapid.T) (*Schema, *gs, *gdefs, string) {
	g, d := genRoot(t)
	text, _ := renderRoot(g, d)
	s, err := Compile([]byte(text))
	if err != nil {
		t.Fatalf("Compile(%s): %v", text, err)
	}
	return s, g, d, text
}

// A random walk through the automaton, finished with Completion, always ends in a document that
// encoding/json parses and Validate accepts.
func TestProperty_RandomWalksEndInValidDocuments(t *testing.T) {
	check(t, func(t *rapid.T) {
		s, _, _, text := compileGenerated(t)
		m := s.Start()
		var doc []byte
		budget := 10 + rapid.IntRange(0, 200).Draw(t, "budget")
		for step := 0; step < budget; step++ {
			var allowed []byte
			for _, b := range probeBytes {
				if m.Clone().Advance(b) {
					allowed = append(allowed, b)
				}
			}
			if len(allowed) == 0 {
				for c := 0; c < 256; c++ {
					if m.Clone().Advance(byte(c)) {
						allowed = append(allowed, byte(c))
					}
				}
			}
			if len(allowed) == 0 {
				if !m.Accepting() {
					t.Fatalf("schema %s: dead end after %q", text, doc)
				}
				break
			}
			if m.Accepting() && rapid.IntRange(0, 9).Draw(t, "stop") == 0 {
				break
			}
			b := rapid.SampledFrom(allowed).Draw(t, "byte")
			before := m.Clone()
			if !m.Advance(b) {
				t.Fatalf("Advance(%q) refused a byte the clone took", b)
			}
			if before.Advance(0xff) {
				t.Fatalf("0xff accepted")
			}
			doc = append(doc, b)
		}
		for _, b := range m.Completion() {
			if !m.Advance(b) {
				t.Fatalf("schema %s: completion byte %q of %q refused after %q", text, b, m.Completion(), doc)
			}
			doc = append(doc, b)
		}
		if !m.Accepting() {
			t.Fatalf("schema %s: %q not accepting after completion", text, doc)
		}
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("schema %s: walk %q does not parse: %v", text, doc, err)
		}
		if err := s.Validate(doc); err != nil {
			t.Fatalf("schema %s: walk %q does not validate: %v", text, doc, err)
		}
	})
}

// Documents drawn from the schema by an independent generator are accepted byte by byte.
func TestProperty_GeneratedDocumentsAccepted(t *testing.T) {
	check(t, func(t *rapid.T) {
		s, g, d, text := compileGenerated(t)
		var bb bytes.Buffer
		genDoc(t, g, d, 0, &bb)
		doc := bb.Bytes()
		if err := s.Validate(doc); err != nil {
			t.Fatalf("schema %s: generated %s does not validate: %v", text, doc, err)
		}
		m := s.Start()
		for i, b := range doc {
			if !m.Advance(b) {
				t.Fatalf("schema %s: doc %s refused at byte %d (%q)", text, doc, i, b)
			}
		}
		if !m.Accepting() {
			t.Fatalf("schema %s: doc %s not accepting", text, doc)
		}
		// The masker agrees with a per-token walk on the prefixes of this document.
		cut := rapid.IntRange(0, len(doc)).Draw(t, "cut")
		m = s.Start()
		if !m.AdvanceBytes(doc[:cut]) {
			t.Fatalf("prefix refused")
		}
		vocab := vocabFrom(string(doc))
		got := NewMasker(vocab).Allowed(m, nil)
		for i, tok := range vocab {
			want := len(tok) > 0 && m.Clone().AdvanceBytes(tok)
			if got[i] != want {
				t.Fatalf("schema %s after %q: token %q allowed=%v, per-token walk says %v", text, doc[:cut], tok, got[i], want)
			}
		}
	})
}

// Invalid keywords injected anywhere are refused with their JSON pointer.
func TestProperty_InvalidSchemasRefusedWithPointer(t *testing.T) {
	check(t, func(t *rapid.T) {
		g, d := genRoot(t)
		var nodes []*gs
		var collect func(x *gs)
		collect = func(x *gs) {
			if x.typ != "ref" {
				nodes = append(nodes, x)
			}
			for _, p := range x.props {
				collect(p.s)
			}
			if x.items != nil {
				collect(x.items)
			}
			for _, a := range x.anyOf {
				collect(a)
			}
		}
		collect(g)
		for _, name := range d.names {
			collect(d.defs[name])
		}
		if len(nodes) == 0 {
			return
		}
		victim := rapid.SampledFrom(nodes).Draw(t, "victim")
		victim.bad = rapid.SampledFrom([]string{"pattern", "oneOf", "minItems"}).Draw(t, "bad")
		text, ptr := renderRoot(g, d)
		_, err := Compile([]byte(text))
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Fatalf("Compile(%s) = %v, want a SchemaError", text, err)
		}
		if se.Pointer != ptr {
			t.Fatalf("Compile(%s): error at %q (%v), want %q", text, se.Pointer, se, ptr)
		}
	})
}

// vocabFrom cuts a vocabulary out of a document: every substring of length 1-4 plus some
// multi-byte ones and an empty special token.
func vocabFrom(doc string) [][]byte {
	seen := map[string]bool{}
	vocab := [][]byte{nil}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			vocab = append(vocab, []byte(s))
		}
	}
	for i := range doc {
		for l := 1; l <= 4 && i+l <= len(doc); l++ {
			add(doc[i : i+l])
		}
	}
	for _, s := range []string{`{"`, `":`, `",`, `"}`, `}]`, `true`, `null`, `0`, `1.5`, "é", " ", `\n`} {
		add(s)
	}
	return vocab
}

var sharedVocab struct {
	once  sync.Once
	vocab [][]byte
	k     *Masker
}

// Decoding token by token through the Masker, as a model does (a random model: any allowed
// token), always ends in a valid document: every masked-in token is accepted whole.
func TestProperty_MaskedDecodingEndsValid(t *testing.T) {
	sharedVocab.once.Do(func() {
		sharedVocab.vocab = benchVocab(t)
		sharedVocab.k = NewMasker(sharedVocab.vocab)
	})
	vocab, k := sharedVocab.vocab, sharedVocab.k
	check(t, func(t *rapid.T) {
		s, _, _, text := compileGenerated(t)
		m := s.Start()
		var doc []byte
		var allowed []bool
		steps := rapid.IntRange(0, 40).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			allowed = k.Allowed(m, allowed)
			var ids []int
			for id, ok := range allowed {
				if ok {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				if !m.Accepting() {
					t.Fatalf("schema %s: no token allowed after %q", text, doc)
				}
				break
			}
			if m.Accepting() && rapid.IntRange(0, 4).Draw(t, "eos") == 0 {
				break
			}
			id := rapid.SampledFrom(ids).Draw(t, "token")
			if !m.AdvanceBytes(vocab[id]) {
				t.Fatalf("schema %s: allowed token %q refused after %q", text, vocab[id], doc)
			}
			doc = append(doc, vocab[id]...)
		}
		comp := m.Completion()
		if !m.AdvanceBytes(comp) || !m.Accepting() {
			t.Fatalf("schema %s: completion %q of %q refused", text, comp, doc)
		}
		doc = append(doc, comp...)
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("schema %s: %q does not parse: %v", text, doc, err)
		}
		if err := s.Validate(doc); err != nil {
			t.Fatalf("schema %s: %q does not validate: %v", text, doc, err)
		}
	})
}
