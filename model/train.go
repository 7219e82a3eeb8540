package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lumenflow/lumen/gpu"
)

// TrainConfig says how a [Trainer] trains. The zero value of a field takes the default noted.
type TrainConfig struct {
	Steps       int      `json:"steps"`
	Batch       int      `json:"batch"`        // examples per step (default 16)
	LR          float64  `json:"lr"`           // peak learning rate (default 3e-3)
	Warmup      int      `json:"warmup"`       // linear warm-up steps; then cosine decay to LR/10
	WeightDecay float32  `json:"weight_decay"` // AdamW's decoupled decay (default 0.01)
	ClipNorm    float64  `json:"clip_norm"`    // global gradient-norm clip (default 1)
	Beta2       float64  `json:"beta2"`        // AdamW's second-moment decay (default 0.95)
	Seed        uint64   `json:"seed"`         // data seed: step s draws its batch from (Seed, s)
	Tasks       []string `json:"tasks"`        // task families (default all)
}

func (c TrainConfig) withDefaults() TrainConfig {
	if c.Batch <= 0 {
		c.Batch = 16
	}
	if c.LR <= 0 {
		c.LR = 3e-3
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 0.01
	}
	if c.Beta2 <= 0 || c.Beta2 >= 1 {
		c.Beta2 = 0.95
	}
	if c.ClipNorm <= 0 {
		c.ClipNorm = 1
	}
	return c
}

// Trainer trains a model with AdamW, gradient clipping and a warm-up/cosine schedule on the
// synthetic data. Each step's batch depends only on (Seed, step), so a trainer resumed from a
// checkpoint continues exactly as the original would have. Not safe for concurrent use; the
// model must not be used elsewhere while a step runs.
type Trainer struct {
	Model *Model
	Cfg   TrainConfig
	Step  int // steps taken

	tmpl Template
	m, v [][]float32 // AdamW moments, by parameter
}

// NewTrainer prepares m for training.
func NewTrainer(m *Model, cfg TrainConfig) (*Trainer, error) {
	cfg = cfg.withDefaults()
	for _, t := range cfg.Tasks {
		if !validTask(t) {
			return nil, fmt.Errorf("train config: tasks: unknown task %q (want one of %v)", t, AllTasks)
		}
	}
	tr := &Trainer{Model: m, Cfg: cfg, tmpl: Template{Tok: m.Tok, Cfg: m.Config},
		m: make([][]float32, len(m.params)), v: make([][]float32, len(m.params))}
	for i, p := range m.params {
		p.SetRequiresGrad(true)
		tr.m[i], tr.v[i] = make([]float32, p.Numel()), make([]float32, p.Numel())
	}
	return tr, nil
}

func validTask(t string) bool {
	for _, a := range AllTasks {
		if a == t {
			return true
		}
	}
	return false
}

// LR is the learning rate of step s (0-based).
func (t *Trainer) LR(s int) float64 {
	c := t.Cfg
	if s < c.Warmup {
		return c.LR * float64(s+1) / float64(c.Warmup)
	}
	span := max(1, c.Steps-c.Warmup)
	p := math.Min(1, float64(s-c.Warmup)/float64(span))
	return c.LR * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*p)))
}

// Batch renders the examples of step s into equal-length streams and labels: only the reply
// positions are predicted.
func (t *Trainer) Batch(s int) ([][]Item, [][]int, int, error) {
	g := NewGenerator(t.Cfg.Seed*0x100000001b3+uint64(s), t.Cfg.Tasks)
	return renderBatch(t.tmpl, g.Take(t.Cfg.Batch))
}

func renderBatch(tp Template, exs []Example) ([][]Item, [][]int, int, error) {
	batch := make([][]Item, len(exs))
	labels := make([][]int, len(exs))
	longest, tokens := 0, 0
	for i, e := range exs {
		p, err := tp.Prompt(e.Tools, e.Messages)
		if err != nil {
			return nil, nil, 0, err
		}
		r := tp.Reply(e.Reply)
		s := append(p, r...)
		l := make([]int, len(s))
		for j := range l {
			l[j] = -1
		}
		for j, it := range r {
			l[len(p)-1+j] = it.Token
		}
		batch[i], labels[i] = s, l
		longest = max(longest, len(s))
		tokens += len(s)
	}
	pad := Item{Mod: Text, Token: tp.Tok.Special(TokPad)}
	for i := range batch {
		for len(batch[i]) < longest {
			batch[i] = append(batch[i], pad)
			labels[i] = append(labels[i], -1)
		}
	}
	return batch, labels, tokens, nil
}

// TrainStep runs one step and returns its loss and the number of real (unpadded) positions.
func (t *Trainer) TrainStep() (loss float64, tokens int, err error) {
	batch, labels, tokens, err := t.Batch(t.Step)
	if err != nil {
		return 0, 0, err
	}
	m := t.Model
	l, err := m.Loss(batch, labels)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range m.params {
		p.ZeroGrad()
	}
	if err := gpu.Backward(l); err != nil {
		return 0, 0, fmt.Errorf("train step %d: backward: %w", t.Step, err)
	}
	lv, _ := l.Item()
	if math.IsNaN(float64(lv)) || math.IsInf(float64(lv), 0) {
		return 0, 0, fmt.Errorf("train step %d: loss is %v", t.Step, lv)
	}
	if _, err := gpu.ClipGradNorm(m.params, t.Cfg.ClipNorm); err != nil {
		return 0, 0, fmt.Errorf("train step %d: %w", t.Step, err)
	}
	if err := t.adamW(t.LR(t.Step)); err != nil {
		return 0, 0, fmt.Errorf("train step %d: %w", t.Step, err)
	}
	t.Step++
	return float64(lv), tokens, nil
}

// adamW is AdamW (β1 0.9, β2 from the config, ε 1e-8) with its moments kept here rather than in gpu.AdamW,
// whose state is unexported and so cannot be checkpointed. Parameters are replaced by updated
// copies, since gpu offers no in-place write outside its optimisers.
func (t *Trainer) adamW(lr float64) error {
	const b1, eps = 0.9, 1e-8
	b2 := t.Cfg.Beta2
	step := float64(t.Step + 1)
	bc1, bc2 := 1-math.Pow(b1, step), 1-math.Pow(b2, step)
	m := t.Model
	for i, p := range m.params {
		if p.Grad() == nil {
			continue
		}
		g, err := p.Grad().Float32s()
		if err != nil {
			return err
		}
		w, err := p.Float32s()
		if err != nil {
			return err
		}
		mm, vv := t.m[i], t.v[i]
		wd := float64(t.Cfg.WeightDecay)
		if p.Rank() < 2 { // norm gains are not decayed
			wd = 0
		}
		for j := range w {
			mm[j] = float32(b1*float64(mm[j]) + (1-b1)*float64(g[j]))
			vv[j] = float32(b2*float64(vv[j]) + (1-b2)*float64(g[j])*float64(g[j]))
			mh, vh := float64(mm[j])/bc1, float64(vv[j])/bc2
			w[j] = float32(float64(w[j]) - lr*(mh/(math.Sqrt(vh)+eps)+wd*float64(w[j])))
		}
		np, err := gpu.FromFloat32(w, p.Shape()...)
		if err != nil {
			return err
		}
		np.SetRequiresGrad(true)
		m.params[i] = np
		m.byName[m.names[i]] = np
	}
	return nil
}

// Checkpoint metadata keys.
const (
	ckptStep  = "lumen.step"
	ckptTrain = "lumen.train_config"
	ckptModel = "lumen.model_config"
	ckptTok   = "lumen.tokenizer"
)

// SaveCheckpoint writes the parameters, the AdamW moments, the step and both configs and the
// tokenizer to one safetensors file, atomically.
func (t *Trainer) SaveCheckpoint(path string) error {
	ts := map[string]*gpu.Tensor{}
	for i, n := range t.Model.names {
		p := t.Model.params[i]
		ts["param."+n] = p.Detach()
		var err error
		if ts["adam_m."+n], err = gpu.FromFloat32(t.m[i], p.Shape()...); err != nil {
			return err
		}
		if ts["adam_v."+n], err = gpu.FromFloat32(t.v[i], p.Shape()...); err != nil {
			return err
		}
	}
	tc, _ := json.Marshal(t.Cfg)
	mc, _ := json.Marshal(t.Model.Config)
	tk, _ := t.Model.Tok.MarshalJSON()
	meta := map[string]string{ckptStep: strconv.Itoa(t.Step), ckptTrain: string(tc), ckptModel: string(mc), ckptTok: string(tk)}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	tmp := path + ".tmp"
	if err := gpu.SaveSafetensors(tmp, ts, meta); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// ErrCheckpoint is wrapped by every checkpoint load error.
var ErrCheckpoint = errors.New("model: bad checkpoint")

// ResumeTrainer loads a checkpoint written by SaveCheckpoint; training continues exactly where
// it stopped.
func ResumeTrainer(path string) (*Trainer, error) {
	ts, meta, err := gpu.LoadSafetensors(path, nil)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrCheckpoint, path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrCheckpoint, path, fmt.Sprintf(format, args...))
	}
	step, err := strconv.Atoi(meta[ckptStep])
	if err != nil || step < 0 {
		return nil, bad("metadata %s = %q", ckptStep, meta[ckptStep])
	}
	var tc TrainConfig
	var mc Config
	if err := json.Unmarshal([]byte(meta[ckptTrain]), &tc); err != nil {
		return nil, bad("metadata %s: %v", ckptTrain, err)
	}
	if err := json.Unmarshal([]byte(meta[ckptModel]), &mc); err != nil {
		return nil, bad("metadata %s: %v", ckptModel, err)
	}
	if err := mc.Validate(); err != nil {
		return nil, bad("metadata %s: %v", ckptModel, err)
	}
	tok, err := ParseTokenizer([]byte(meta[ckptTok]))
	if err != nil {
		return nil, bad("metadata %s: %v", ckptTok, err)
	}
	params := map[string]*gpu.Tensor{}
	for k, v := range ts {
		if n, ok := cutPrefix(k, "param."); ok {
			params[n] = v
		}
	}
	m, err := fromTensors(mc, tok, params)
	if err != nil {
		return nil, bad("%v", err)
	}
	tr, err := NewTrainer(m, tc)
	if err != nil {
		return nil, bad("%v", err)
	}
	tr.Step = step
	for i, n := range m.names {
		for _, mo := range []struct {
			key string
			dst []float32
		}{{"adam_m." + n, tr.m[i]}, {"adam_v." + n, tr.v[i]}} {
			t, ok := ts[mo.key]
			if !ok || t.Numel() != len(mo.dst) {
				return nil, bad("tensor %q missing or of the wrong size", mo.key)
			}
			v, err := t.Float32s()
			if err != nil {
				return nil, bad("tensor %q: %v", mo.key, err)
			}
			copy(mo.dst, v)
		}
	}
	return tr, nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// Freeze turns off gradient tracking on the parameters, for inference after training.
func (m *Model) Freeze() {
	for _, p := range m.params {
		p.SetRequiresGrad(false)
	}
}

// Complete decodes greedily from prompt until <|end|> or <|eos|> or maxTokens, and returns the
// reply tokens (without the end token).
func (m *Model) Complete(prompt []Item, maxTokens int) ([]int, error) {
	c := m.NewCache()
	logits, err := m.Step(c, prompt)
	if err != nil {
		return nil, err
	}
	end, eos := m.Tok.Special(TokEnd), m.Tok.Special(TokEOS)
	s := NewSampler(0, 1, 0)
	var out []int
	for len(out) < maxTokens {
		id := s.Sample(logits, nil)
		if id == end || id == eos {
			break
		}
		out = append(out, id)
		if len(out) == maxTokens || c.Len() >= m.Config.MaxSeq {
			break
		}
		if logits, err = m.Step(c, []Item{{Mod: Text, Token: id}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Accuracy is the exact-match accuracy of one task family.
type Accuracy struct {
	Correct int `json:"correct"`
	Total   int `json:"total"`
}

// Rate is Correct/Total (0 with no examples).
func (a Accuracy) Rate() float64 {
	if a.Total == 0 {
		return 0
	}
	return float64(a.Correct) / float64(a.Total)
}

// Evaluate decodes each example's reply greedily and scores it by exact match, per task family
// and per "family/kind".
func Evaluate(m *Model, exs []Example) (map[string]Accuracy, error) {
	tp := Template{Tok: m.Tok, Cfg: m.Config}
	out := map[string]Accuracy{}
	for i, e := range exs {
		p, err := tp.Prompt(e.Tools, e.Messages)
		if err != nil {
			return nil, fmt.Errorf("evaluate example %d: %w", i, err)
		}
		want := tp.Reply(e.Reply)
		ids, err := m.Complete(p, len(want)+8)
		if err != nil {
			return nil, fmt.Errorf("evaluate example %d: %w", i, err)
		}
		ok := string(m.Tok.Decode(ids)) == e.ReplyText()
		for _, k := range []string{e.Task, e.Task + "/" + e.Kind} {
			a := out[k]
			a.Total++
			if ok {
				a.Correct++
			}
			out[k] = a
		}
	}
	return out, nil
}
