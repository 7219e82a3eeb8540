// Command guest trains a small CNN to read digits it draws itself, through Lumen's host tensor
// ops: the data never leaves the guest but as batches, and every op, gradient and optimiser step
// runs on the host (on its GPU when it has one).
//
// The digits are a 5×7 bitmap font scaled to 10×14 and placed at a random offset in a 16×16
// image, with random stroke thickening, intensity and noise, all from a seeded generator, so a
// run is reproducible. The model is conv2d(1→8, 3×3, padding 1) → relu → max_pool(2) →
// linear(512→10), trained with AdamW on cross-entropy.
package main

import (
	"math"
	"math/rand/v2"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

// Params is the train task's input; zero fields take defaults.
type Params struct {
	Seed  uint64  `json:"seed"`
	Train int     `json:"train"` // training images (default 1000)
	Test  int     `json:"test"`  // held-out images (default 500)
	Steps int     `json:"steps"` // optimiser steps (default 150)
	Batch int     `json:"batch"` // images per step (default 50)
	LR    float64 `json:"lr"`    // AdamW learning rate (default 0.01)
}

// Result is what train returns.
type Result struct {
	TrainLoss    float64 `json:"train_loss"`    // mean loss over the last 20 steps
	TestAccuracy float64 `json:"test_accuracy"` // on the held-out images
	Steps        int     `json:"steps"`
	Train        int     `json:"train"`
	Test         int     `json:"test"`
}

const side = 16 // images are side×side

func init() {
	lumen.Require(abi.CapTensors)
	lumen.Task("train", train)
}

func main() {}

// font is a 5×7 bitmap of each digit, one string per row.
var font = [10][7]string{
	{".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	{"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	{".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	{"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	{"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	{"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	{"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	{"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	{".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	{".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
}

// draw renders digit d into img (side×side) with random placement, thickness and noise.
func draw(r *rand.Rand, d int, img []float32) {
	clear(img)
	ox, oy := r.IntN(side-10+1), r.IntN(side-14+1)
	ink := float32(0.7 + 0.3*r.Float64())
	thick := r.IntN(3) == 0
	for y := range 7 {
		for x := range 5 {
			if font[d][y][x] != '#' {
				continue
			}
			for dy := range 2 {
				for dx := range 2 + b2i(thick) {
					px, py := ox+2*x+dx, oy+2*y+dy
					if px < side && py < side {
						img[py*side+px] = ink
					}
				}
			}
		}
	}
	for i := range img {
		img[i] += float32(r.NormFloat64() * 0.15)
		if r.IntN(50) == 0 {
			img[i] = 1 - img[i] // flipped pixels
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dataset draws n labelled images.
func dataset(r *rand.Rand, n int) ([]float32, []int64) {
	x := make([]float32, n*side*side)
	y := make([]int64, n)
	for i := range n {
		y[i] = int64(r.IntN(10))
		draw(r, int(y[i]), x[i*side*side:(i+1)*side*side])
	}
	return x, y
}

// model is the CNN's parameters, host tensors that require grad.
type model struct{ convW, convB, fcW, fcB *lumen.Tensor }

func param(r *rand.Rand, shape []int, fanIn int) (*lumen.Tensor, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	std := math.Sqrt(2 / float64(fanIn))
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return lumen.NewTensor(shape, v, true)
}

func newModel(r *rand.Rand) (*model, error) {
	var m model
	var err error
	if m.convW, err = param(r, []int{8, 1, 3, 3}, 9); err != nil {
		return nil, err
	}
	if m.convB, err = lumen.NewTensor([]int{8}, nil, true); err != nil {
		return nil, err
	}
	if m.fcW, err = param(r, []int{10, 8 * 8 * 8}, 8*8*8); err != nil {
		return nil, err
	}
	if m.fcB, err = lumen.NewTensor([]int{10}, nil, true); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *model) params() []*lumen.Tensor { return []*lumen.Tensor{m.convW, m.convB, m.fcW, m.fcB} }

// forward returns the logits of x [n, 1, side, side] and the intermediates to free.
func (m *model) forward(x *lumen.Tensor, n int) (*lumen.Tensor, []*lumen.Tensor, error) {
	var made []*lumen.Tensor
	step := func(t *lumen.Tensor, err error) (*lumen.Tensor, error) {
		if t != nil {
			made = append(made, t)
		}
		return t, err
	}
	h, err := step(lumen.Conv2d(x, m.convW, m.convB, 1, 1))
	if err == nil {
		h, err = step(h.ReLU())
	}
	if err == nil {
		h, err = step(lumen.MaxPool2d(h, 2, 2))
	}
	if err == nil {
		h, err = step(h.Reshape(n, 8*8*8))
	}
	if err == nil {
		h, err = step(lumen.Linear(h, m.fcW, m.fcB))
	}
	return h, made, err
}

func free(ts []*lumen.Tensor) {
	for _, t := range ts {
		_ = t.Free()
	}
}

func train(p Params) (*Result, error) {
	p = withDefaults(p)
	r := rand.New(rand.NewPCG(p.Seed, 0x6c756d656e))
	trainX, trainY := dataset(r, p.Train)
	testX, testY := dataset(r, p.Test)
	m, err := newModel(r)
	if err != nil {
		return nil, err
	}
	opt, err := lumen.NewAdamW(m.params(), p.LR, 1e-4)
	if err != nil {
		return nil, err
	}
	const px = side * side
	var recent []float64
	for s := range p.Steps {
		xb := make([]float32, p.Batch*px)
		yb := make([]int64, p.Batch)
		for i := range p.Batch {
			j := r.IntN(p.Train)
			copy(xb[i*px:], trainX[j*px:(j+1)*px])
			yb[i] = trainY[j]
		}
		loss, err := trainStep(m, opt, xb, yb, p.Batch)
		if err != nil {
			return nil, lumen.NewError("E_TRAIN", "step %d: %v", s, err)
		}
		recent = append(recent, loss)
		if len(recent) > 20 {
			recent = recent[1:]
		}
	}
	acc, err := evaluate(m, testX, testY)
	if err != nil {
		return nil, err
	}
	var sum float64
	for _, l := range recent {
		sum += l
	}
	return &Result{TrainLoss: sum / float64(len(recent)), TestAccuracy: acc, Steps: p.Steps, Train: p.Train, Test: p.Test}, nil
}

// trainStep runs one forward, backward and AdamW step on a batch and returns its loss. It frees
// what it made, so that a long run holds only the model.
func trainStep(m *model, opt *lumen.Optimizer, xb []float32, yb []int64, n int) (float64, error) {
	x, err := lumen.NewTensor([]int{n, 1, side, side}, xb, false)
	if err != nil {
		return 0, err
	}
	defer x.Free()
	y, err := lumen.NewIndexTensor([]int{n}, yb)
	if err != nil {
		return 0, err
	}
	defer y.Free()
	logits, made, err := m.forward(x, n)
	defer free(made)
	if err != nil {
		return 0, err
	}
	loss, err := lumen.CrossEntropy(logits, y)
	if err != nil {
		return 0, err
	}
	defer loss.Free()
	if err := opt.ZeroGrad(); err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	if err := opt.Step(); err != nil {
		return 0, err
	}
	l, err := loss.Item()
	return float64(l), err
}

// evaluate returns the fraction of images whose largest logit is their label.
func evaluate(m *model, xs []float32, ys []int64) (float64, error) {
	n := len(ys)
	x, err := lumen.NewTensor([]int{n, 1, side, side}, xs, false)
	if err != nil {
		return 0, err
	}
	defer x.Free()
	logits, made, err := m.forward(x, n)
	defer free(made)
	if err != nil {
		return 0, err
	}
	v, err := logits.Float32s()
	if err != nil {
		return 0, err
	}
	right := 0
	for i, want := range ys {
		row := v[i*10 : (i+1)*10]
		best := 0
		for k := range row {
			if row[k] > row[best] {
				best = k
			}
		}
		if int64(best) == want {
			right++
		}
	}
	return float64(right) / float64(n), nil
}

func withDefaults(p Params) Params {
	if p.Train <= 0 {
		p.Train = 1000
	}
	if p.Test <= 0 {
		p.Test = 500
	}
	if p.Steps <= 0 {
		p.Steps = 150
	}
	if p.Batch <= 0 {
		p.Batch = 50
	}
	if p.LR <= 0 {
		p.LR = 0.01
	}
	return p
}
