// Package blas is the CPU backend's single-precision matrix multiply: packed panels, cache
// blocking, a 6x16 register-tile microkernel (AVX2/FMA assembly on amd64 CPUs that have it, Go
// elsewhere) and goroutines over blocks of the output.
package blas

import (
	"runtime"
	"sync"
)

// Tile and cache-block sizes. A packed A block (mc x kc) stays in L2, a packed B micro-panel
// (kc x nr) in L1, and the packed B block (kc x nc) in L3.
const (
	mr = 6
	nr = 16
	kc = 256
	mc = 96
	nc = 3072
)

// Impl names the microkernels.
type Impl int

const (
	// Auto picks the assembly kernel when the CPU supports it, the Go kernel otherwise.
	Auto Impl = iota
	// Go forces the portable Go microkernel.
	Go
	// Naive is the triple loop, kept as a reference and a benchmark baseline.
	Naive
)

// HasAsm reports whether the AVX2/FMA microkernel is in use under Auto.
func HasAsm() bool { return hasAsm }

// Matrix describes a strided float32 matrix inside a slice: element (i, j) is
// Data[Off+i*RS+j*CS].
type Matrix struct {
	Data   []float32
	Off    int
	RS, CS int
}

func (m Matrix) at(i, j int) float32 { return m.Data[m.Off+i*m.RS+j*m.CS] }

// Sgemm computes C = A·B (or C += A·B when acc) for an m x k matrix A, a k x n matrix B and a
// row-major C with leading dimension ldc starting at c[0]. A and B may have any strides, so
// transposed operands cost nothing extra. threads <= 0 means GOMAXPROCS. The caller guarantees the
// slices are large enough; Sgemm is safe for concurrent use on disjoint outputs.
func Sgemm(impl Impl, threads, m, n, k int, a, b Matrix, c []float32, ldc int, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if impl == Naive {
		naive(m, n, k, a, b, c, ldc, acc)
		return
	}
	kern := goKernel
	if impl == Auto && hasAsm {
		kern = asmKernel
	}
	// Tiny products: packing costs more than it saves.
	if m*n*k <= 8*8*8 {
		naive(m, n, k, a, b, c, ldc, acc)
		return
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	// At least ~2 MFLOP per worker, split along the larger dimension in whole tiles.
	if w := (2 * m * n * k) / (1 << 21); w < threads {
		threads = max(w, 1)
	}
	if threads == 1 {
		gemm(kern, m, n, k, a, b, c, ldc, acc)
		return
	}
	var wg sync.WaitGroup
	if m >= n {
		parts := splitRange(m, threads, mr)
		for _, p := range parts {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				sa := a
				sa.Off += lo * a.RS
				gemm(kern, hi-lo, n, k, sa, b, c[lo*ldc:], ldc, acc)
			}(p[0], p[1])
		}
	} else {
		parts := splitRange(n, threads, nr)
		for _, p := range parts {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				sb := b
				sb.Off += lo * b.CS
				gemm(kern, m, hi-lo, k, a, sb, c[lo:], ldc, acc)
			}(p[0], p[1])
		}
	}
	wg.Wait()
}

// splitRange cuts [0, n) into at most parts pieces whose boundaries are multiples of unit.
func splitRange(n, parts, unit int) [][2]int {
	units := (n + unit - 1) / unit
	parts = min(parts, units)
	out := make([][2]int, 0, parts)
	lo := 0
	for i := 0; i < parts; i++ {
		hi := min(n, (units*(i+1)/parts)*unit)
		if hi > lo {
			out = append(out, [2]int{lo, hi})
		}
		lo = hi
	}
	return out
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

type buffers struct{ a, b []float32 }

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

type kernelFunc func(k int, a, b, c []float32, ldc int, acc bool)

// gemm is the single-threaded blocked loop nest (Goto's algorithm).
func gemm(kern kernelFunc, m, n, k int, a, b Matrix, c []float32, ldc int, acc bool) {
	bufs := bufPool.Get().(*buffers)
	defer bufPool.Put(bufs)
	var tmp [mr * nr]float32
	for jc := 0; jc < n; jc += nc {
		ncb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kcb := min(kc, k-pc)
			bufs.b = grow(bufs.b, kcb*roundUp(ncb, nr))
			packB(bufs.b, b, pc, jc, kcb, ncb)
			accum := acc || pc > 0
			for ic := 0; ic < m; ic += mc {
				mcb := min(mc, m-ic)
				bufs.a = grow(bufs.a, kcb*roundUp(mcb, mr))
				packA(bufs.a, a, ic, pc, mcb, kcb)
				for jr := 0; jr < ncb; jr += nr {
					bp := bufs.b[jr*kcb:]
					nn := min(nr, ncb-jr)
					for ir := 0; ir < mcb; ir += mr {
						ap := bufs.a[ir*kcb:]
						mm := min(mr, mcb-ir)
						co := (ic+ir)*ldc + jc + jr
						if mm == mr && nn == nr {
							kern(kcb, ap, bp, c[co:], ldc, accum)
							continue
						}
						kern(kcb, ap, bp, tmp[:], nr, false)
						for i := 0; i < mm; i++ {
							row := c[co+i*ldc : co+i*ldc+nn]
							t := tmp[i*nr : i*nr+nn]
							if accum {
								for j := range row {
									row[j] += t[j]
								}
							} else {
								copy(row, t)
							}
						}
					}
				}
			}
		}
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// packA copies rows [i0, i0+mcb) and columns [p0, p0+kcb) of a into dst as panels of mr rows,
// k-major inside a panel, zero-padding the last panel.
func packA(dst []float32, a Matrix, i0, p0, mcb, kcb int) {
	d := 0
	for ir := 0; ir < mcb; ir += mr {
		mm := min(mr, mcb-ir)
		base := a.Off + (i0+ir)*a.RS + p0*a.CS
		if mm == mr && a.CS == 1 {
			r0 := a.Data[base : base+kcb]
			r1 := a.Data[base+a.RS : base+a.RS+kcb]
			r2 := a.Data[base+2*a.RS : base+2*a.RS+kcb]
			r3 := a.Data[base+3*a.RS : base+3*a.RS+kcb]
			r4 := a.Data[base+4*a.RS : base+4*a.RS+kcb]
			r5 := a.Data[base+5*a.RS : base+5*a.RS+kcb]
			out := dst[d : d+kcb*mr]
			for p := 0; p < kcb; p++ {
				o := out[p*mr : p*mr+mr : p*mr+mr]
				o[0], o[1], o[2], o[3], o[4], o[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			d += kcb * mr
			continue
		}
		if mm == mr && a.RS == 1 {
			for p := 0; p < kcb; p++ {
				s := base + p*a.CS
				copy(dst[d:d+mr], a.Data[s:s+mr])
				d += mr
			}
			continue
		}
		for p := 0; p < kcb; p++ {
			for i := 0; i < mr; i++ {
				if i < mm {
					dst[d] = a.Data[base+i*a.RS+p*a.CS]
				} else {
					dst[d] = 0
				}
				d++
			}
		}
	}
}

// packB copies rows [p0, p0+kcb) and columns [j0, j0+ncb) of b into dst as panels of nr
// columns, k-major inside a panel, zero-padding the last panel.
func packB(dst []float32, b Matrix, p0, j0, kcb, ncb int) {
	d := 0
	for jr := 0; jr < ncb; jr += nr {
		nn := min(nr, ncb-jr)
		base := b.Off + p0*b.RS + (j0+jr)*b.CS
		if nn == nr && b.CS == 1 {
			for p := 0; p < kcb; p++ {
				s := base + p*b.RS
				copy(dst[d:d+nr], b.Data[s:s+nr])
				d += nr
			}
			continue
		}
		if nn == nr && b.RS == 1 {
			for j := 0; j < nr; j++ {
				col := b.Data[base+j*b.CS : base+j*b.CS+kcb]
				for p, v := range col {
					dst[d+p*nr+j] = v
				}
			}
			d += kcb * nr
			continue
		}
		for p := 0; p < kcb; p++ {
			s := base + p*b.RS
			for j := 0; j < nr; j++ {
				if j < nn {
					dst[d] = b.Data[s+j*b.CS]
				} else {
					dst[d] = 0
				}
				d++
			}
		}
	}
}

// goKernel is the portable microkernel over the same packed layout: two rows of C at a time
// held in local arrays.
func goKernel(k int, a, b, c []float32, ldc int, acc bool) {
	a = a[:k*mr]
	b = b[:k*nr]
	for i := 0; i < mr; i += 2 {
		var c0, c1 [nr]float32
		for p := 0; p < k; p++ {
			bp := (*[nr]float32)(b[p*nr : p*nr+nr])
			a0, a1 := a[p*mr+i], a[p*mr+i+1]
			for j := 0; j < nr; j++ {
				c0[j] += a0 * bp[j]
				c1[j] += a1 * bp[j]
			}
		}
		r0 := (*[nr]float32)(c[i*ldc : i*ldc+nr])
		r1 := (*[nr]float32)(c[(i+1)*ldc : (i+1)*ldc+nr])
		if acc {
			for j := 0; j < nr; j++ {
				r0[j] += c0[j]
				r1[j] += c1[j]
			}
		} else {
			*r0, *r1 = c0, c1
		}
	}
}

// naive is the reference triple loop (i, p, j order) accumulating in float32.
func naive(m, n, k int, a, b Matrix, c []float32, ldc int, acc bool) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if !acc {
			clear(row)
		}
		for p := 0; p < k; p++ {
			av := a.at(i, p)
			bo := b.Off + p*b.RS
			for j := range row {
				row[j] += av * b.Data[bo+j*b.CS]
			}
		}
	}
}
