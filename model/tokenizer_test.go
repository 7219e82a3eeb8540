package model

import (
	"bytes"
	"errors"
	"testing"
)

func testCorpus() [][]byte {
	return [][]byte{
		[]byte("the red circle is on the left. the blue square is on the right."),
		[]byte("what colour is the shape? red. what shape is it? circle."),
		[]byte("how many beeps? three beeps. the tone is high."),
		[]byte(`{"name":"get_weather","arguments":{"city":"Paris"}}`),
	}
}

func TestTokenizer_LearnsMergesAndRoundTrips(t *testing.T) {
	tok, err := TrainBPE(testCorpus(), 256+len(SpecialTokens)+40)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() > 256+len(SpecialTokens)+40 || len(tok.merges) < 20 {
		t.Fatalf("vocab %d with %d merges", tok.VocabSize(), len(tok.merges))
	}
	in := []byte("the red circle")
	ids := tok.Encode(in)
	if len(ids) >= len(in) {
		t.Fatalf("merges did not shorten %q: %d ids", in, len(ids))
	}
	if got := tok.Decode(ids); !bytes.Equal(got, in) {
		t.Fatalf("decode = %q", got)
	}
	for _, id := range tok.Encode([]byte("<|eos|> 12 \xff\x00")) {
		if tok.IsSpecial(id) {
			t.Fatalf("plain text encoded to special token %d", id)
		}
	}
	// Digits stay single tokens so arithmetic sees each digit.
	if ids := tok.Encode([]byte("123")); len(ids) != 3 {
		t.Fatalf("digits merged: %v", ids)
	}
	eos := tok.Special(TokEOS)
	if !tok.IsSpecial(eos) || string(tok.Piece(eos)) != TokEOS || len(tok.Vocab()[eos]) != 0 {
		t.Fatalf("special token %d: piece %q", eos, tok.Piece(eos))
	}
}

func TestTokenizer_TrainingIsDeterministic(t *testing.T) {
	a, _ := TrainBPE(testCorpus(), 320)
	b, _ := TrainBPE(testCorpus(), 320)
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Fatal("two trainings on one corpus differ")
	}
}

func TestTokenizer_JSONRoundTrip(t *testing.T) {
	a, _ := TrainBPE(testCorpus(), 320)
	j, err := a.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseTokenizer(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"the blue circle", `{"city":"Paris"}`, "\x00\xfe"} {
		if x, y := a.Encode([]byte(s)), b.Encode([]byte(s)); !equalInts(x, y) {
			t.Fatalf("%q: %v vs %v", s, x, y)
		}
	}
}

func TestTokenizer_RejectsBadJSON(t *testing.T) {
	for _, in := range []string{
		`{`,
		`{"type":"wordpiece"}`,
		`{"type":"byte_bpe","merges":[[300,1]],"special_tokens":` + specialJSON() + `}`,
		`{"type":"byte_bpe","merges":[[1,2],[1,2]],"special_tokens":` + specialJSON() + `}`,
		`{"type":"byte_bpe","merges":[],"special_tokens":["<|bos|>"]}`,
	} {
		if _, err := ParseTokenizer([]byte(in)); !errors.Is(err, ErrTokenizer) {
			t.Errorf("%s: err = %v", in, err)
		}
	}
}

func TestTrainBPE_RejectsTooSmallVocab(t *testing.T) {
	if _, err := TrainBPE(testCorpus(), 100); err == nil {
		t.Fatal("vocab 100 accepted")
	}
}

func specialJSON() string {
	b := []byte("[")
	for i, s := range SpecialTokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	return string(append(b, ']'))
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzTokenizer_DecodeEncode(f *testing.F) {
	tok, err := TrainBPE(testCorpus(), 330)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range testCorpus() {
		f.Add(c)
	}
	f.Add([]byte{0, 0xff, ' ', ' ', 'a'})
	f.Add([]byte("<|eos|>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ids := tok.Encode(in)
		if got := tok.Decode(ids); !bytes.Equal(got, in) {
			t.Fatalf("Decode(Encode(%q)) = %q", in, got)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() || tok.IsSpecial(id) {
				t.Fatalf("id %d out of range", id)
			}
		}
	})
}

func FuzzParseTokenizer(f *testing.F) {
	tok, _ := TrainBPE(testCorpus(), 300)
	j, _ := tok.MarshalJSON()
	f.Add(j)
	f.Add([]byte(`{"type":"byte_bpe"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tk, err := ParseTokenizer(in)
		if err != nil {
			return
		}
		s := []byte("fuzz me 42")
		if got := tk.Decode(tk.Encode(s)); !bytes.Equal(got, s) {
			t.Fatalf("round trip %q", got)
		}
	})
}
