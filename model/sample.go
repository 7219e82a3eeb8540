package model

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Sampler picks the next token from logits: greedy at temperature 0, otherwise softmax at the
// temperature restricted to the smallest set of tokens whose probability reaches TopP (nucleus
// sampling). Its random stream is seeded, so one seed gives one sequence. Not safe for
// concurrent use.
type Sampler struct {
	Temperature float64
	TopP        float64 // in (0, 1]; 0 means 1
	rng         *rand.Rand
	idx         []int
	prob        []float64
}

// NewSampler returns a sampler with its own random stream for seed.
func NewSampler(temperature, topP float64, seed uint64) *Sampler {
	return &Sampler{Temperature: temperature, TopP: topP, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Sample returns the chosen token id, considering only tokens with allowed[i] true when allowed
// is non-nil, or -1 when no token is allowed.
func (s *Sampler) Sample(logits []float32, allowed []bool) int {
	ok := func(i int) bool { return allowed == nil || (i < len(allowed) && allowed[i]) }
	best := -1
	for i, l := range logits {
		if ok(i) && !math.IsNaN(float64(l)) && (best < 0 || l > logits[best]) {
			best = i
		}
	}
	if best < 0 || s.Temperature <= 0 {
		return best
	}
	s.idx, s.prob = s.idx[:0], s.prob[:0]
	var z float64
	mx := float64(logits[best])
	for i, l := range logits {
		if ok(i) && !math.IsNaN(float64(l)) {
			p := math.Exp((float64(l) - mx) / s.Temperature)
			s.idx, s.prob = append(s.idx, i), append(s.prob, p)
			z += p
		}
	}
	order := make([]int, len(s.idx))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return s.prob[order[a]] > s.prob[order[b]] })
	topP := s.TopP
	if !(topP > 0 && topP < 1) {
		topP = 1
	}
	var keep, mass float64
	n := 0
	for _, o := range order {
		n++
		keep += s.prob[o]
		if keep/z >= topP {
			break
		}
	}
	r := s.rng.Float64() * keep
	for _, o := range order[:n] {
		mass += s.prob[o]
		if r < mass {
			return s.idx[o]
		}
	}
	return s.idx[order[n-1]]
}
