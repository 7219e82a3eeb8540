package model

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/lumenflow/lumen/gpu"
)

// Modality says what one position of the stream holds.
type Modality uint8

// The three modalities; each has a learned modality embedding added to its positions.
const (
	Text Modality = iota
	Image
	Audio
)

// String names the modality: text, image or audio.
func (m Modality) String() string {
	switch m {
	case Text:
		return "text"
	case Image:
		return "image"
	case Audio:
		return "audio"
	}
	return fmt.Sprintf("modality(%d)", uint8(m))
}

// Item is one position of the model's input stream: a text token (Token) or an image patch or
// audio frame group (Vec, of length Config.PatchDim or Config.FrameDim).
type Item struct {
	Mod   Modality
	Token int
	Vec   []float32
}

// Config is the shape of a model. It is validated by [New] and saved as config.json.
type Config struct {
	Vocab      int     `json:"vocab_size"`
	Dim        int     `json:"dim"`
	Layers     int     `json:"layers"`
	Heads      int     `json:"heads"`
	Hidden     int     `json:"hidden"` // SwiGLU inner width
	MaxSeq     int     `json:"max_seq"`
	ImageSize  int     `json:"image_size"`  // images are resized to ImageSize²
	Patch      int     `json:"patch"`       // and cut into Patch² patches
	Mels       int     `json:"mels"`        // log-mel bands per 10 ms frame
	FrameGroup int     `json:"frame_group"` // frames per audio position
	RopeBase   float64 `json:"rope_base"`
	Eps        float32 `json:"norm_eps"`
	Seed       uint64  `json:"seed"` // initialisation seed
}

// TinyConfig is the model trained inside the tests: two layers of width 64.
func TinyConfig(vocab int) Config {
	return Config{Vocab: vocab, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, MaxSeq: 512,
		ImageSize: 24, Patch: 8, Mels: 32, FrameGroup: 10, RopeBase: 10000, Eps: 1e-5, Seed: 1}
}

// SmallConfig is the demo model trained in minutes on a CPU: four layers of width 128.
func SmallConfig(vocab int) Config {
	return Config{Vocab: vocab, Dim: 128, Layers: 4, Heads: 4, Hidden: 320, MaxSeq: 2048,
		ImageSize: 32, Patch: 8, Mels: 32, FrameGroup: 10, RopeBase: 10000, Eps: 1e-5, Seed: 1}
}

// PatchDim is the length of one image position's vector.
func (c Config) PatchDim() int { return c.Patch * c.Patch * 3 }

// FrameDim is the length of one audio position's vector.
func (c Config) FrameDim() int { return c.Mels * c.FrameGroup }

// Validate checks the config's fields, naming the first bad one.
func (c Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("model config: %s = %v, want %s", field, v, want)
	}
	switch {
	case c.Vocab < 256:
		return bad("vocab_size", c.Vocab, ">= 256")
	case c.Dim <= 0:
		return bad("dim", c.Dim, "> 0")
	case c.Heads <= 0 || c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0:
		return bad("heads", c.Heads, "a divisor of dim leaving an even head width")
	case c.Layers <= 0:
		return bad("layers", c.Layers, "> 0")
	case c.Hidden <= 0:
		return bad("hidden", c.Hidden, "> 0")
	case c.MaxSeq <= 0:
		return bad("max_seq", c.MaxSeq, "> 0")
	case c.Patch <= 0 || c.ImageSize <= 0 || c.ImageSize%c.Patch != 0:
		return bad("patch", c.Patch, "a divisor of image_size")
	case c.Mels <= 0 || c.Mels > 128:
		return bad("mels", c.Mels, "1..128")
	case c.FrameGroup <= 0:
		return bad("frame_group", c.FrameGroup, "> 0")
	case !(c.RopeBase > 0):
		return bad("rope_base", c.RopeBase, "> 0")
	case !(c.Eps > 0):
		return bad("norm_eps", c.Eps, "> 0")
	}
	return nil
}

// ErrContext is returned when a stream is longer than Config.MaxSeq.
var ErrContext = errors.New("model: sequence longer than the context")

// Model is the decoder-only transformer. Its parameters are gpu tensors; it is read-only
// outside a [Trainer] and safe for concurrent inference, each goroutine with its own [Cache].
type Model struct {
	Config Config
	Tok    *Tokenizer

	names  []string
	params []*gpu.Tensor
	byName map[string]*gpu.Tensor
}

// paramSpec lists every parameter's name, shape and initial standard deviation, in a fixed
// order (the order of the optimiser state in checkpoints).
func (c Config) paramSpec() (names []string, shapes [][]int, stds []float32) {
	add := func(n string, std float32, shape ...int) {
		names, shapes, stds = append(names, n), append(shapes, shape), append(stds, std)
	}
	in := func(fan int) float32 { return float32(1 / math.Sqrt(float64(fan))) }
	out := func(fan int) float32 { return in(fan) / float32(math.Sqrt(2*float64(c.Layers))) }
	add("tok_emb", 0.5, c.Vocab, c.Dim)
	add("mod_emb", 0.5, 3, c.Dim)
	add("img_proj", in(c.PatchDim()), c.Dim, c.PatchDim())
	add("aud_proj", in(c.FrameDim()), c.Dim, c.FrameDim())
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("layers.%d.", l)
		add(p+"attn_norm", -1, c.Dim)
		add(p+"wqkv", in(c.Dim), 3*c.Dim, c.Dim)
		add(p+"wo", out(c.Dim), c.Dim, c.Dim)
		add(p+"mlp_norm", -1, c.Dim)
		add(p+"w_gate", in(c.Dim), c.Hidden, c.Dim)
		add(p+"w_up", in(c.Dim), c.Hidden, c.Dim)
		add(p+"w_down", out(c.Hidden), c.Dim, c.Hidden)
	}
	add("norm", -1, c.Dim)
	add("lm_head", in(c.Dim), c.Vocab, c.Dim)
	return
}

// New returns a freshly initialised model (seeded by cfg.Seed) over tok's vocabulary.
func New(cfg Config, tok *Tokenizer) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tok == nil || tok.VocabSize() != cfg.Vocab {
		return nil, fmt.Errorf("model config: vocab_size %d differs from the tokenizer's", cfg.Vocab)
	}
	names, shapes, stds := cfg.paramSpec()
	ts := make(map[string]*gpu.Tensor, len(names))
	for i, n := range names {
		var t *gpu.Tensor
		var err error
		if stds[i] < 0 {
			t, err = gpu.Full(1, shapes[i]...)
		} else {
			t, err = gpu.Randn(cfg.Seed*1000003+uint64(i), stds[i], shapes[i]...)
		}
		if err != nil {
			return nil, fmt.Errorf("init %s: %w", n, err)
		}
		ts[n] = t
	}
	return fromTensors(cfg, tok, ts)
}

// fromTensors checks that ts holds exactly the parameters of cfg with the right shapes.
func fromTensors(cfg Config, tok *Tokenizer, ts map[string]*gpu.Tensor) (*Model, error) {
	names, shapes, _ := cfg.paramSpec()
	m := &Model{Config: cfg, Tok: tok, names: names, byName: map[string]*gpu.Tensor{}}
	for i, n := range names {
		t, ok := ts[n]
		if !ok {
			return nil, fmt.Errorf("model weights: tensor %q missing", n)
		}
		if !slices.Equal(t.Shape(), shapes[i]) {
			return nil, fmt.Errorf("model weights: tensor %q has shape %v, want %v", n, t.Shape(), shapes[i])
		}
		m.params = append(m.params, t)
		m.byName[n] = t
	}
	if len(ts) != len(names) {
		for n := range ts {
			if _, ok := m.byName[n]; !ok {
				return nil, fmt.Errorf("model weights: unexpected tensor %q", n)
			}
		}
	}
	return m, nil
}

// NumParams is the number of scalar parameters.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += p.Numel()
	}
	return n
}

func (m *Model) p(name string) *gpu.Tensor { return m.byName[name] }

// checkItems validates one input stream against the config.
func (m *Model) checkItems(items []Item) error {
	for i, it := range items {
		switch it.Mod {
		case Text:
			if it.Token < 0 || it.Token >= m.Config.Vocab {
				return fmt.Errorf("model input: item %d: token %d outside [0, %d)", i, it.Token, m.Config.Vocab)
			}
		case Image:
			if len(it.Vec) != m.Config.PatchDim() {
				return fmt.Errorf("model input: item %d: image vector of %d, want %d", i, len(it.Vec), m.Config.PatchDim())
			}
		case Audio:
			if len(it.Vec) != m.Config.FrameDim() {
				return fmt.Errorf("model input: item %d: audio vector of %d, want %d", i, len(it.Vec), m.Config.FrameDim())
			}
		default:
			return fmt.Errorf("model input: item %d: unknown modality %d", i, it.Mod)
		}
	}
	return nil
}

// embed returns the input embeddings [B, T, D] of equal-length streams.
func (m *Model) embed(batch [][]Item) *gpu.Tensor {
	c := m.Config
	b, t := len(batch), len(batch[0])
	ids := make([]int32, b*t)
	mods := make([]int32, b*t)
	textMask := make([]float32, b*t)
	var img, aud []float32
	for i, s := range batch {
		for j, it := range s {
			k := i*t + j
			mods[k] = int32(it.Mod)
			switch it.Mod {
			case Text:
				ids[k], textMask[k] = int32(it.Token), 1
			case Image:
				if img == nil {
					img = make([]float32, b*t*c.PatchDim())
				}
				copy(img[k*c.PatchDim():], it.Vec)
			case Audio:
				if aud == nil {
					aud = make([]float32, b*t*c.FrameDim())
				}
				copy(aud[k*c.FrameDim():], it.Vec)
			}
		}
	}
	idT := gpu.Must(gpu.FromInt32(ids, b*t))
	x := gpu.Must(gpu.Embedding(m.p("tok_emb"), idT))
	x = x.Mul(gpu.Must(gpu.FromFloat32(textMask, b*t, 1)))
	x = x.Add(gpu.Must(gpu.Embedding(m.p("mod_emb"), gpu.Must(gpu.FromInt32(mods, b*t)))))
	if img != nil {
		x = x.Add(gpu.Must(gpu.Linear(gpu.Must(gpu.FromFloat32(img, b*t, c.PatchDim())), m.p("img_proj"), nil)))
	}
	if aud != nil {
		x = x.Add(gpu.Must(gpu.Linear(gpu.Must(gpu.FromFloat32(aud, b*t, c.FrameDim())), m.p("aud_proj"), nil)))
	}
	return x.Reshape(b, t, c.Dim)
}

// layerKV is one layer's cached keys and values, [1, H, T, hd] each, after RoPE.
type layerKV struct{ k, v *gpu.Tensor }

// Cache holds the keys and values of the positions a stream has seen so far, for decoding one
// position at a time. A Cache belongs to one stream and is not safe for concurrent use.
type Cache struct {
	layers []layerKV
	n      int
}

// Len is the number of positions cached.
func (c *Cache) Len() int { return c.n }

// Clone returns an independent copy (tensors are immutable, so this is cheap).
func (c *Cache) Clone() *Cache {
	return &Cache{layers: append([]layerKV(nil), c.layers...), n: c.n}
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache { return &Cache{layers: make([]layerKV, m.Config.Layers)} }

// forward runs the blocks over x [B, T, D]. With cache (B must be 1) the positions continue
// the cached ones and the cache is extended.
func (m *Model) forward(x *gpu.Tensor, cache *Cache) *gpu.Tensor {
	c := m.Config
	b, t := x.Dim(0), x.Dim(1)
	hd := c.Dim / c.Heads
	pos0 := 0
	if cache != nil {
		pos0 = cache.n
	}
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("layers.%d.", l)
		h := gpu.Must(gpu.RMSNorm(x, m.p(p+"attn_norm"), c.Eps))
		qkv := gpu.Must(gpu.Linear(h, m.p(p+"wqkv"), nil)).Reshape(b, t, 3, c.Heads, hd).Permute(2, 0, 3, 1, 4)
		q := gpu.Must(gpu.RoPE(qkv.Slice(0, 0, 1).Reshape(b, c.Heads, t, hd), pos0, c.RopeBase))
		k := gpu.Must(gpu.RoPE(qkv.Slice(0, 1, 2).Reshape(b, c.Heads, t, hd), pos0, c.RopeBase))
		v := qkv.Slice(0, 2, 3).Reshape(b, c.Heads, t, hd)
		if cache != nil {
			if kv := cache.layers[l]; kv.k != nil {
				k = gpu.Must(gpu.Concat([]*gpu.Tensor{kv.k, k}, 2))
				v = gpu.Must(gpu.Concat([]*gpu.Tensor{kv.v, v}, 2))
			} else {
				v = v.Contiguous()
			}
			cache.layers[l] = layerKV{k, v}
		}
		var a *gpu.Tensor
		if t == 1 { // one query sees every cached key: no mask, no flash tiling needed
			a = gpu.Must(gpu.Attention(q, k, v, false))
		} else {
			a = gpu.Must(gpu.FlashAttention(q, k, v, true, 64))
		}
		a = a.Permute(0, 2, 1, 3).Reshape(b, t, c.Dim)
		x = x.Add(gpu.Must(gpu.Linear(a, m.p(p+"wo"), nil)))
		h = gpu.Must(gpu.RMSNorm(x, m.p(p+"mlp_norm"), c.Eps))
		g := gpu.Must(gpu.Linear(h, m.p(p+"w_gate"), nil)).SiLU()
		u := gpu.Must(gpu.Linear(h, m.p(p+"w_up"), nil))
		x = x.Add(gpu.Must(gpu.Linear(g.Mul(u), m.p(p+"w_down"), nil)))
	}
	if cache != nil {
		cache.n += t
	}
	return gpu.Must(gpu.RMSNorm(x, m.p("norm"), c.Eps))
}

// Logits runs a full forward pass over one stream without a cache and returns the logits of
// every position.
func (m *Model) Logits(items []Item) ([][]float32, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if err := m.checkItems(items); err != nil {
		return nil, err
	}
	if len(items) > m.Config.MaxSeq {
		return nil, fmt.Errorf("%w: %d positions, max_seq %d", ErrContext, len(items), m.Config.MaxSeq)
	}
	var flat []float32
	err := gpu.Try(func() {
		h := m.forward(m.embed([][]Item{items}), nil)
		flat = values(gpu.Must(gpu.Linear(h, m.p("lm_head"), nil)))
	})
	if err != nil {
		return nil, fmt.Errorf("model forward: %w", err)
	}
	v := m.Config.Vocab
	out := make([][]float32, len(items))
	for i := range out {
		out[i] = flat[i*v : (i+1)*v]
	}
	return out, nil
}

// Step feeds items after the positions in cache, extends the cache, and returns the logits
// of the last item. On error the cache is left as it was.
func (m *Model) Step(cache *Cache, items []Item) ([]float32, error) {
	if len(items) == 0 {
		return nil, errors.New("model step: no items")
	}
	if err := m.checkItems(items); err != nil {
		return nil, err
	}
	if n := cache.n + len(items); n > m.Config.MaxSeq {
		return nil, fmt.Errorf("%w: %d positions, max_seq %d", ErrContext, n, m.Config.MaxSeq)
	}
	saved := cache.Clone()
	var logits []float32
	err := gpu.Try(func() {
		h := m.forward(m.embed([][]Item{items}), cache)
		last := h.Slice(1, len(items)-1, len(items))
		logits = values(gpu.Must(gpu.Linear(last, m.p("lm_head"), nil)))
	})
	if err != nil {
		*cache = *saved
		return nil, fmt.Errorf("model step: %w", err)
	}
	return logits, nil
}

// Loss is the mean cross-entropy of predicting labels (-1: not counted) from equal-length
// streams; it is the training objective and carries the autograd graph.
func (m *Model) Loss(batch [][]Item, labels [][]int) (*gpu.Tensor, error) {
	if len(batch) == 0 || len(batch) != len(labels) {
		return nil, fmt.Errorf("model loss: %d streams and %d label rows", len(batch), len(labels))
	}
	t := len(batch[0])
	// Only labelled positions reach the output layer: gather their rows first, which saves
	// the [B·T, vocab] logits of positions that are not scored.
	var rows, lab []int32
	for i, s := range batch {
		if len(s) != t || len(labels[i]) != t {
			return nil, fmt.Errorf("model loss: stream %d has %d items and %d labels, want %d", i, len(s), len(labels[i]), t)
		}
		if err := m.checkItems(s); err != nil {
			return nil, err
		}
		for j, l := range labels[i] {
			if l >= m.Config.Vocab {
				return nil, fmt.Errorf("model loss: label %d at stream %d position %d outside the vocabulary", l, i, j)
			}
			if l >= 0 {
				rows, lab = append(rows, int32(i*t+j)), append(lab, int32(l))
			}
		}
	}
	if len(rows) == 0 {
		return nil, errors.New("model loss: no labelled positions")
	}
	if t > m.Config.MaxSeq {
		return nil, fmt.Errorf("%w: %d positions, max_seq %d", ErrContext, t, m.Config.MaxSeq)
	}
	var loss *gpu.Tensor
	err := gpu.Try(func() {
		h := m.forward(m.embed(batch), nil).Reshape(len(batch)*t, m.Config.Dim)
		h = gpu.Must(gpu.Embedding(h, gpu.Must(gpu.FromInt32(rows, len(rows)))))
		logits := gpu.Must(gpu.Linear(h, m.p("lm_head"), nil))
		loss = gpu.Must(gpu.CrossEntropy(logits, gpu.Must(gpu.FromInt32(lab, len(lab)))))
	})
	if err != nil {
		return nil, fmt.Errorf("model loss: %w", err)
	}
	return loss, nil
}

// values copies a tensor's values out, panicking (for gpu.Try) with its *gpu.OpError.
func values(t *gpu.Tensor) []float32 {
	v, err := t.Float32s()
	if err != nil {
		panic(err)
	}
	return v
}
