package model

import (
	"testing"
	"time"

	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/model/jsonschema"
)

// benchModel is the small (demo) config with random weights: speed does not depend on training.
func benchModel(b *testing.B) *Model {
	b.Helper()
	tok, err := TrainBPE(Corpus(1, 1000), 256+len(SpecialTokens)+200)
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(SmallConfig(tok.VocabSize()), tok)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// oneCore runs the benchmark on one thread, as the figures are quoted.
func oneCore(b *testing.B) {
	prev := gpu.SetThreads(1)
	b.Cleanup(func() { gpu.SetThreads(prev) })
}

func textItems(m *Model, n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Mod: Text, Token: 32 + i%90}
	}
	return items
}

// BenchmarkPrefill is the prompt rate of the demo model on one core: 256 positions at once.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	oneCore(b)
	items := textItems(m, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Step(m.NewCache(), items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(items)*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode is the one-token-at-a-time rate with the KV cache after a 64-position prompt.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	oneCore(b)
	const steps = 64
	prompt := textItems(m, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := m.NewCache()
		if _, err := m.Step(c, prompt); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for s := 0; s < steps; s++ {
			if _, err := m.Step(c, []Item{{Mod: Text, Token: 40 + s%50}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(steps*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkTrainStep is one AdamW step of the demo model on a batch of 16 synthetic examples
// of every task, on one core.
func BenchmarkTrainStep(b *testing.B) {
	m := benchModel(b)
	oneCore(b)
	tr, err := NewTrainer(m, TrainConfig{Steps: b.N, Batch: 16, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	tokens := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, n, err := tr.TrainStep()
		if err != nil {
			b.Fatal(err)
		}
		tokens += n
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// decodeBench decodes 48 tokens after a 32-position prompt, sampling at temperature 1. With a
// schema, every step also masks the vocabulary with jsonschema.Masker and advances the matcher
// (starting a new document when one completes), which is the whole cost of constraining.
func decodeBench(b *testing.B, schema string) {
	m := benchModel(b)
	oneCore(b)
	var s *jsonschema.Schema
	if schema != "" {
		var err error
		if s, err = jsonschema.Compile([]byte(schema)); err != nil {
			b.Fatal(err)
		}
	}
	masker := jsonschema.NewMasker(m.Tok.Vocab())
	text := make([]bool, m.Config.Vocab)
	for i := range text {
		text[i] = !m.Tok.IsSpecial(i)
	}
	const steps = 48
	prompt := textItems(m, 32)
	var mask []bool
	var maskTime time.Duration // time in Masker.Allowed and the matcher, inside the timed steps
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := m.NewCache()
		logits, err := m.Step(c, prompt)
		if err != nil {
			b.Fatal(err)
		}
		sampler := NewSampler(1, 1, uint64(i))
		var mt *jsonschema.Matcher
		if s != nil {
			mt = s.Start()
		}
		b.StartTimer()
		for k := 0; k < steps; k++ {
			allowed := text
			t0 := time.Now()
			if mt != nil {
				mask = masker.Allowed(mt, mask)
				allowed = mask
			}
			maskTime += time.Since(t0)
			id := sampler.Sample(logits, allowed)
			t0 = time.Now()
			if mt != nil {
				if !mt.AdvanceBytes(m.Tok.Piece(id)) {
					b.Fatalf("token %d refused after the mask allowed it", id)
				}
				if mt.Done() {
					mt = s.Start()
				}
			}
			maskTime += time.Since(t0)
			if logits, err = m.Step(c, []Item{{Mod: Text, Token: id}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(steps*b.N)/b.Elapsed().Seconds(), "tokens/s")
	if s != nil {
		// The overhead against free decoding measured inside the same steps, so that load from
		// other processes, which swings the tokens/s of separate runs, cancels out.
		b.ReportMetric(float64(maskTime)/float64(steps*b.N), "mask-ns/token")
		b.ReportMetric(100*float64(maskTime)/float64(b.Elapsed()-maskTime), "overhead-%")
	}
}

// BenchmarkFreeDecode is unconstrained decoding, the baseline of BenchmarkConstrainedDecode.
func BenchmarkFreeDecode(b *testing.B) { decodeBench(b, "") }

// BenchmarkConstrainedDecode is the same decoding held to a json_schema.
func BenchmarkConstrainedDecode(b *testing.B) {
	decodeBench(b, `{"type":"object","properties":{"colour":{"type":"string"},"shape":{"type":"string"},"count":{"type":"integer"}},"required":["colour","shape","count"],"additionalProperties":false}`)
}
