package gpu

import (
	"math"

	"github.com/lumenflow/lumen/gpu/internal/blas"
)

// Attention is scaled dot-product attention softmax(q·kᵀ/√D)·v for q [..., Tq, D], k [..., Tk, D]
// and v [..., Tk, Dv], built from MatMul and Softmax; it materialises the [Tq, Tk] scores. With
// causal set, query i sees keys j <= i + Tk - Tq (the queries are the last Tq positions).
func Attention(q, k, v *Tensor, causal bool) (*Tensor, error) {
	if err := checkAttention("attention", q, k, v); err != nil {
		return nil, err
	}
	kt, err := Transpose(k, -2, -1)
	if err != nil {
		return nil, err
	}
	s, err := MatMul(q, kt)
	if err != nil {
		return nil, err
	}
	d := q.shape[q.Rank()-1]
	if s, err = Scale(s, float32(1/math.Sqrt(float64(d))), 0); err != nil {
		return nil, err
	}
	if causal {
		if s, err = causalMask(s); err != nil {
			return nil, err
		}
	}
	p, err := Softmax(s, -1)
	if err != nil {
		return nil, err
	}
	return MatMul(p, v)
}

func checkAttention(op string, q, k, v *Tensor) error {
	for _, t := range []*Tensor{q, k, v} {
		if err := t.check(op, Float32); err != nil {
			return err
		}
	}
	r := q.Rank()
	if r < 2 || k.Rank() != r || v.Rank() != r ||
		!sameShape(q.shape[:r-2], k.shape[:r-2]) || !sameShape(q.shape[:r-2], v.shape[:r-2]) ||
		q.shape[r-1] != k.shape[r-1] || k.shape[r-2] != v.shape[r-2] {
		return shapeErr(op, "want q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]", q, k, v)
	}
	return nil
}

// causalMask sets scores [..., Tq, Tk] above the shifted diagonal to -Inf.
func causalMask(s *Tensor) (*Tensor, error) {
	const op = "causal_mask"
	r := s.Rank()
	tq, tk := s.shape[r-2], s.shape[r-1]
	off := tk - tq
	out, err := contiguousCopy(op, s)
	if err != nil {
		return nil, err
	}
	mask := func(d []float32, v float32) {
		for b := 0; b < len(d)/max(tq*tk, 1); b++ {
			for i := 0; i < tq; i++ {
				for j := max(0, i+off+1); j < tk; j++ {
					d[(b*tq+i)*tk+j] = v
				}
			}
		}
	}
	mask(out.st.f32, float32(math.Inf(-1)))
	return record(out, op, []*Tensor{s}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := contiguousCopy(op, g)
		if err != nil {
			return nil, err
		}
		mask(gx.st.f32, 0)
		return []*Tensor{gx}, nil
	}), nil
}

// FlashAttention computes the same result as Attention without materialising the scores: it
// walks key blocks of size block for each block of queries, keeping a running max and sum of
// the softmax (online softmax), and recomputes the blocks in the backward pass from the saved
// log-sum-exp. Memory is O(T·D) instead of O(T²). block <= 0 picks 64.
func FlashAttention(q, k, v *Tensor, causal bool, block int) (*Tensor, error) {
	const op = "flash_attention"
	if err := checkAttention(op, q, k, v); err != nil {
		return nil, err
	}
	if block <= 0 {
		block = 64
	}
	r := q.Rank()
	tq, d, tk, dv := q.shape[r-2], q.shape[r-1], k.shape[r-2], v.shape[r-1]
	bh := 1
	for _, x := range q.shape[:r-2] {
		bh *= x
	}
	qd, err := q.data(op)
	if err != nil {
		return nil, err
	}
	kd, err := k.data(op)
	if err != nil {
		return nil, err
	}
	vd, err := v.data(op)
	if err != nil {
		return nil, err
	}
	oshape := append(q.Shape()[:r-1], dv)
	out, err := alloc(op, arenaOf(q, k, v), q.Device(), Float32, oshape)
	if err != nil {
		return nil, err
	}
	f := &flash{tq: tq, tk: tk, d: d, dv: dv, br: block, bc: block, causal: causal,
		scale: float32(1 / math.Sqrt(float64(d))), off: tk - tq}
	lse := make([]float32, bh*tq)
	od := out.st.f32
	nqb := (tq + block - 1) / block
	parallelFor(bh*nqb, 1, func(lo, hi int) {
		ws := f.newWork()
		for job := lo; job < hi; job++ {
			b, qb := job/nqb, job%nqb
			f.forward(ws, qd[b*tq*d:], kd[b*tk*d:], vd[b*tk*dv:], od[b*tq*dv:], lse[b*tq:], qb*block)
		}
	})
	oDet := out.Detach()
	return record(out, op, []*Tensor{q, k, v}, func(g *Tensor) ([]*Tensor, error) {
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		a := arenaOf(g)
		gq, err := alloc(op, a, g.Device(), Float32, q.shape)
		if err != nil {
			return nil, err
		}
		gk, err := alloc(op, a, g.Device(), Float32, k.shape)
		if err != nil {
			return nil, err
		}
		gv, err := alloc(op, a, g.Device(), Float32, v.shape)
		if err != nil {
			return nil, err
		}
		o := oDet.st.f32
		parallelFor(bh, 1, func(lo, hi int) {
			ws := f.newWork()
			for b := lo; b < hi; b++ {
				f.backward(ws, qd[b*tq*d:], kd[b*tk*d:], vd[b*tk*dv:], o[b*tq*dv:], gd[b*tq*dv:], lse[b*tq:],
					gq.st.f32[b*tq*d:], gk.st.f32[b*tk*d:], gv.st.f32[b*tk*dv:])
			}
		})
		return []*Tensor{gq, gk, gv}, nil
	}), nil
}

type flash struct {
	tq, tk, d, dv, br, bc int
	causal                bool
	scale                 float32
	off                   int
}

type flashWork struct {
	s, p, dp []float32 // [br, bc]
	m, l, dd []float32 // [br]
	acc      []float32 // [br, dv]
}

func (f *flash) newWork() *flashWork {
	return &flashWork{
		s: make([]float32, f.br*f.bc), p: make([]float32, f.br*f.bc), dp: make([]float32, f.br*f.bc),
		m: make([]float32, f.br), l: make([]float32, f.br), dd: make([]float32, f.br),
		acc: make([]float32, f.br*f.dv),
	}
}

// scores fills ws.s[:nr*nc] with scale·Q[i0:i0+nr]·K[j0:j0+nc]ᵀ, -Inf where masked, and
// reports whether any entry is visible.
func (f *flash) scores(ws *flashWork, q, k []float32, i0, nr, j0, nc int) bool {
	if f.causal && j0 > i0+nr-1+f.off {
		return false
	}
	s := ws.s[:nr*nc]
	blas.Sgemm(cpuImpl, 1, nr, nc, f.d,
		blas.Matrix{Data: q, Off: i0 * f.d, RS: f.d, CS: 1},
		blas.Matrix{Data: k, Off: j0 * f.d, RS: 1, CS: f.d}, s, nc, false)
	ninf := float32(math.Inf(-1))
	for i := 0; i < nr; i++ {
		row := s[i*nc : (i+1)*nc]
		lim := i0 + i + f.off // last visible key
		for j := range row {
			if f.causal && j0+j > lim {
				row[j] = ninf
			} else {
				row[j] *= f.scale
			}
		}
	}
	return true
}

func (f *flash) forward(ws *flashWork, q, k, v, o, lse []float32, i0 int) {
	nr := min(f.br, f.tq-i0)
	m, l, acc := ws.m[:nr], ws.l[:nr], ws.acc[:nr*f.dv]
	ninf := float32(math.Inf(-1))
	for i := range m {
		m[i], l[i] = ninf, 0
	}
	clear(acc)
	for j0 := 0; j0 < f.tk; j0 += f.bc {
		nc := min(f.bc, f.tk-j0)
		if !f.scores(ws, q, k, i0, nr, j0, nc) {
			break
		}
		s, p := ws.s[:nr*nc], ws.p[:nr*nc]
		for i := 0; i < nr; i++ {
			row := s[i*nc : (i+1)*nc]
			mx := m[i]
			for _, x := range row {
				mx = max(mx, x)
			}
			if mx == ninf {
				clear(p[i*nc : (i+1)*nc])
				continue
			}
			corr := float32(math.Exp(float64(m[i] - mx)))
			var sum float32
			for j, x := range row {
				e := float32(math.Exp(float64(x - mx)))
				p[i*nc+j] = e
				sum += e
			}
			l[i] = l[i]*corr + sum
			m[i] = mx
			ar := acc[i*f.dv : (i+1)*f.dv]
			for c := range ar {
				ar[c] *= corr
			}
		}
		blas.Sgemm(cpuImpl, 1, nr, f.dv, nc,
			blas.Matrix{Data: p, RS: nc, CS: 1},
			blas.Matrix{Data: v, Off: j0 * f.dv, RS: f.dv, CS: 1}, acc, f.dv, true)
	}
	for i := 0; i < nr; i++ {
		or := o[(i0+i)*f.dv : (i0+i+1)*f.dv]
		if l[i] == 0 {
			clear(or)
			lse[i0+i] = float32(math.Inf(1))
			continue
		}
		inv := 1 / l[i]
		for c := range or {
			or[c] = acc[i*f.dv+c] * inv
		}
		lse[i0+i] = m[i] + float32(math.Log(float64(l[i])))
	}
}

func (f *flash) backward(ws *flashWork, q, k, v, o, do, lse, dq, dk, dv []float32) {
	dd := make([]float32, f.tq)
	for i := 0; i < f.tq; i++ {
		var s float32
		for c := 0; c < f.dv; c++ {
			s += do[i*f.dv+c] * o[i*f.dv+c]
		}
		dd[i] = s
	}
	for j0 := 0; j0 < f.tk; j0 += f.bc {
		nc := min(f.bc, f.tk-j0)
		for i0 := 0; i0 < f.tq; i0 += f.br {
			nr := min(f.br, f.tq-i0)
			if !f.scores(ws, q, k, i0, nr, j0, nc) {
				continue
			}
			s, p, dp := ws.s[:nr*nc], ws.p[:nr*nc], ws.dp[:nr*nc]
			for i := 0; i < nr; i++ {
				for j := 0; j < nc; j++ {
					p[i*nc+j] = float32(math.Exp(float64(s[i*nc+j] - lse[i0+i])))
				}
			}
			// dV_j += Pᵀ·dO_i
			blas.Sgemm(cpuImpl, 1, nc, f.dv, nr,
				blas.Matrix{Data: p, RS: 1, CS: nc},
				blas.Matrix{Data: do, Off: i0 * f.dv, RS: f.dv, CS: 1}, dv[j0*f.dv:], f.dv, true)
			// dP = dO_i·V_jᵀ
			blas.Sgemm(cpuImpl, 1, nr, nc, f.dv,
				blas.Matrix{Data: do, Off: i0 * f.dv, RS: f.dv, CS: 1},
				blas.Matrix{Data: v, Off: j0 * f.dv, RS: 1, CS: f.dv}, dp, nc, false)
			// dS = P∘(dP − D)·scale, stored in dp
			for i := 0; i < nr; i++ {
				for j := 0; j < nc; j++ {
					dp[i*nc+j] = p[i*nc+j] * (dp[i*nc+j] - dd[i0+i]) * f.scale
				}
			}
			// dQ_i += dS·K_j ; dK_j += dSᵀ·Q_i
			blas.Sgemm(cpuImpl, 1, nr, f.d, nc,
				blas.Matrix{Data: dp, RS: nc, CS: 1},
				blas.Matrix{Data: k, Off: j0 * f.d, RS: f.d, CS: 1}, dq[i0*f.d:], f.d, true)
			blas.Sgemm(cpuImpl, 1, nc, f.d, nr,
				blas.Matrix{Data: dp, RS: 1, CS: nc},
				blas.Matrix{Data: q, Off: i0 * f.d, RS: f.d, CS: 1}, dk[j0*f.d:], f.d, true)
		}
	}
}
