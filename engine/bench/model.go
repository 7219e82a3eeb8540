package bench

import (
	"fmt"
	"sync"
	"time"

	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/jsonschema"
)

// UnitTokens is the unit of the model figures.
const UnitTokens = "tokens/s"

// The model section: the demo model (model.SmallConfig: four layers of width 128) on one core,
// with random weights (speed does not depend on training): prefill and decode rates, the cost of
// constrained decoding against free decoding in the same run, and the training rate.

// benchSchema is what constrained decoding is held to: a strict object of three fields.
const benchSchema = `{"type":"object","properties":{"colour":{"type":"string"},"shape":{"type":"string"},"count":{"type":"integer"}},"required":["colour","shape","count"],"additionalProperties":false}`

var demo struct {
	once sync.Once
	tok  *model.Tokenizer
	m    *model.Model
	err  error
}

// demoModel builds the demo model once per process.
func demoModel() (*model.Model, error) {
	demo.once.Do(func() {
		tok, err := model.TrainBPE(model.Corpus(1, 1000), 256+len(model.SpecialTokens)+200)
		if err != nil {
			demo.err = err
			return
		}
		demo.tok = tok
		demo.m, demo.err = model.New(model.SmallConfig(tok.VocabSize()), tok)
	})
	return demo.m, demo.err
}

// oneCore runs f with the tensor kernels on one thread.
func oneCore(f func() error) error {
	defer gpu.SetThreads(gpu.SetThreads(1))
	return f()
}

func textPositions(n int) []model.Item {
	items := make([]model.Item, n)
	for i := range items {
		items[i] = model.Item{Mod: model.Text, Token: 32 + i%90}
	}
	return items
}

// modelPrefill is the prompt rate: 256 positions in one Step.
func modelPrefill(b *env) (*Result, error) {
	m, err := demoModel()
	if err != nil {
		return nil, err
	}
	prompt := textPositions(256)
	tokens := 0
	var took time.Duration
	err = oneCore(func() error {
		start := time.Now()
		for time.Since(start) < b.opts.Duration || tokens == 0 {
			if _, err := m.Step(m.NewCache(), prompt); err != nil {
				return err
			}
			tokens += len(prompt)
		}
		took = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{Value: float64(tokens) / took.Seconds(), Unit: UnitTokens, Notes: fmt.Sprintf(
		"demo model (%d parameters), a 256-token prompt in one step, one core", m.NumParams())}, nil
}

// modelDecode is the one-token-at-a-time rate with the KV cache after a 64-token prompt.
func modelDecode(b *env) (*Result, error) {
	m, err := demoModel()
	if err != nil {
		return nil, err
	}
	tokens, took, err := decodeRate(m, nil, b.opts.Duration)
	if err != nil {
		return nil, err
	}
	return &Result{Value: float64(tokens) / took.Seconds(), Unit: UnitTokens, Notes: "demo model, 64 tokens decoded after a 64-token prompt with the KV cache, one core"}, nil
}

// decodeRate decodes 64 tokens after a 64-position prompt at temperature 1, over and over for
// about d, and returns the tokens decoded and the time they took (the prompts not counted).
// With s, every step also masks the vocabulary with a jsonschema.Masker and advances the
// matcher, starting a new document when one completes: the whole cost of constraining.
func decodeRate(m *model.Model, s *jsonschema.Schema, d time.Duration) (int, time.Duration, error) {
	masker := jsonschema.NewMasker(m.Tok.Vocab())
	free := make([]bool, m.Config.Vocab)
	for i := range free {
		free[i] = !m.Tok.IsSpecial(i)
	}
	prompt := textPositions(64)
	var mask []bool
	tokens, took := 0, time.Duration(0)
	err := oneCore(func() error {
		for round := uint64(0); took < d || tokens == 0; round++ {
			c := m.NewCache()
			logits, err := m.Step(c, prompt)
			if err != nil {
				return err
			}
			sampler := model.NewSampler(1, 1, round)
			var mt *jsonschema.Matcher
			if s != nil {
				mt = s.Start()
			}
			start := time.Now()
			for k := 0; k < 64; k++ {
				allowed := free
				if mt != nil {
					mask = masker.Allowed(mt, mask)
					allowed = mask
				}
				id := sampler.Sample(logits, allowed)
				if mt != nil {
					if !mt.AdvanceBytes(m.Tok.Piece(id)) {
						return fmt.Errorf("token %d refused after the mask allowed it", id)
					}
					if mt.Done() {
						mt = s.Start()
					}
				}
				if logits, err = m.Step(c, []model.Item{{Mod: model.Text, Token: id}}); err != nil {
					return err
				}
			}
			took += time.Since(start)
			tokens += 64
		}
		return nil
	})
	return tokens, took, err
}

// modelConstrainedVsFree is the time per token of decoding held to a JSON schema as a share of
// free decoding's, both measured in turns in the same run, each from its fastest 64-token round
// (the least disturbed by neighbours). The goal is at most 115% (an overhead of at most 15%).
// It can be under 100%: the mask leaves the sampler fewer candidates to weigh.
func modelConstrainedVsFree(b *env) (*Result, error) {
	m, err := demoModel()
	if err != nil {
		return nil, err
	}
	s, err := jsonschema.Compile([]byte(benchSchema))
	if err != nil {
		return nil, err
	}
	rounds := 4
	if b.opts.Quick {
		rounds = 1
	}
	var free, con time.Duration // fastest round of each
	for range rounds {          // in turns, so that a noisy neighbour hurts both alike
		_, d, err := decodeRate(m, nil, 0)
		if err != nil {
			return nil, err
		}
		if free == 0 || d < free {
			free = d
		}
		if _, d, err = decodeRate(m, s, 0); err != nil {
			return nil, err
		}
		if con == 0 || d < con {
			con = d
		}
	}
	share := 100 * con.Seconds() / free.Seconds()
	notes := fmt.Sprintf("time per token of json_schema-constrained decoding (token-trie mask + matcher each step, sampling at temperature 1) as a share of free decoding's, fastest of %d rounds of 64 tokens each, demo model, one core; goal <= 115%% (overhead <= 15%%)", rounds)
	return &Result{Value: share, Unit: "% of free", Notes: notes, Extra: []Figure{
		{Name: "free_decode", Value: 64 / free.Seconds(), Unit: UnitTokens},
		{Name: "constrained_decode", Value: 64 / con.Seconds(), Unit: UnitTokens}}}, nil
}

// modelTrain is the training rate: AdamW steps of 16 synthetic examples of every task (4 when
// Quick).
func modelTrain(b *env) (*Result, error) {
	if _, err := demoModel(); err != nil {
		return nil, err
	}
	m, err := model.New(model.SmallConfig(demo.tok.VocabSize()), demo.tok) // its own: training changes it
	if err != nil {
		return nil, err
	}
	batch := 16
	if b.opts.Quick {
		batch = 4
	}
	tr, err := model.NewTrainer(m, model.TrainConfig{Steps: 1 << 20, Batch: batch, Seed: 1})
	if err != nil {
		return nil, err
	}
	tokens, steps := 0, 0
	var took time.Duration
	err = oneCore(func() error {
		start := time.Now()
		for time.Since(start) < b.opts.Duration || steps == 0 {
			_, n, err := tr.TrainStep()
			if err != nil {
				return err
			}
			tokens, steps = tokens+n, steps+1
		}
		took = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{Value: float64(tokens) / took.Seconds(), Unit: UnitTokens, Notes: fmt.Sprintf(
		"demo model, AdamW steps of %d synthetic examples of every task (%d steps measured; tokens are the positions of the batch), one core", batch, steps)}, nil
}
