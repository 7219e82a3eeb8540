package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randMat(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}

// ref computes A·B in float64.
func ref(m, n, k int, a, b Matrix) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a.at(i, p)) * float64(b.at(p, j))
			}
			out[i*n+j] = s
		}
	}
	return out
}

func TestSgemm_MatchesReferenceOnOddShapes(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {17, 33, 5}, {6, 16, 1}, {7, 17, 300}, {13, 1, 9}, {1, 40, 513}, {100, 37, 64}, {96, 48, 260}, {5, 3, 0}}
	r := rand.New(rand.NewPCG(1, 2))
	impls := []Impl{Auto, Go, Naive}
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ad, bd := randMat(r, m*k+3), randMat(r, k*n+2)
				a := Matrix{Data: ad, Off: 3, RS: k, CS: 1}
				if ta {
					a = Matrix{Data: ad, Off: 3, RS: 1, CS: m}
				}
				b := Matrix{Data: bd, Off: 2, RS: n, CS: 1}
				if tb {
					b = Matrix{Data: bd, Off: 2, RS: 1, CS: k}
				}
				want := ref(m, n, k, a, b)
				for _, impl := range impls {
					for _, threads := range []int{1, 3} {
						for _, acc := range []bool{false, true} {
							ldc := n + 1
							c := make([]float32, m*ldc)
							for i := range c {
								c[i] = 0.5
							}
							Sgemm(impl, threads, m, n, k, a, b, c, ldc, acc)
							for i := 0; i < m; i++ {
								for j := 0; j < n; j++ {
									w := want[i*n+j]
									if acc {
										w += 0.5
									}
									got := float64(c[i*ldc+j])
									if math.Abs(got-w) > 1e-4*float64(k+1) {
										t.Fatalf("m=%d n=%d k=%d ta=%v tb=%v impl=%d threads=%d acc=%v: c[%d,%d]=%v want %v", m, n, k, ta, tb, impl, threads, acc, i, j, got, w)
									}
								}
								if ldc > n && c[i*ldc+n] != 0.5 {
									t.Fatalf("wrote past row end at row %d", i)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestSgemm_LargeMultiThreaded(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, n, k := 301, 290, 520
	a := Matrix{Data: randMat(r, m*k), RS: k, CS: 1}
	b := Matrix{Data: randMat(r, k*n), RS: n, CS: 1}
	want := ref(m, n, k, a, b)
	c := make([]float32, m*n)
	Sgemm(Auto, 4, m, n, k, a, b, c, n, false)
	for i := range c {
		if math.Abs(float64(c[i])-want[i]) > 1e-3 {
			t.Fatalf("c[%d]=%v want %v", i, c[i], want[i])
		}
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512} {
		for _, impl := range []struct {
			name string
			impl Impl
		}{{"auto", Auto}, {"go", Go}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				am := Matrix{Data: randMat(r, n*n), RS: n, CS: 1}
				bm := Matrix{Data: randMat(r, n*n), RS: n, CS: 1}
				c := make([]float32, n*n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Sgemm(impl.impl, 1, n, n, n, am, bm, c, n, false)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
