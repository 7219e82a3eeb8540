package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// rate runs batch once untimed (to warm pools and caches), then again and again until d has
// passed, and returns the operations batch reported per second. lat, if set, is cleared after
// the warm-up so it holds only timed operations.
func rate(ctx context.Context, d time.Duration, lat *latencies, batch func() (int, error)) (float64, error) {
	if _, err := batch(); err != nil {
		return 0, err
	}
	if lat != nil {
		lat.reset()
	}
	start := time.Now()
	n := 0
	for {
		k, err := batch()
		if err != nil {
			return 0, err
		}
		n += k
		if el := time.Since(start); el >= d {
			return float64(n) / el.Seconds(), nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// parallelRate runs batch(i) on n goroutines, each once untimed and then until d has passed,
// and returns the operations of all of them per second of the whole. lats are cleared after the
// untimed round.
func parallelRate(ctx context.Context, d time.Duration, n int, batch func(i int) (int, error), lats ...*latencies) (float64, error) {
	if err := parallel(n, func(i int) error { _, err := batch(i); return err }); err != nil {
		return 0, err
	}
	for _, l := range lats {
		l.reset()
	}
	counts := make([]int, n)
	start := time.Now()
	err := parallel(n, func(i int) error {
		for time.Since(start) < d {
			k, err := batch(i)
			if err != nil {
				return err
			}
			counts[i] += k
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	el := time.Since(start)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(total) / el.Seconds(), nil
}

// parallel runs fn(0..n-1) on n goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// latencies records the times of single operations; safe for concurrent use. It keeps at most
// maxSamples, then every other one, so a long run costs bounded memory.
type latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	stride int
	seen   int
}

const maxSamples = 1 << 18

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stride == 0 {
		l.stride = 1
	}
	l.seen++
	if l.seen%l.stride != 0 {
		return
	}
	if len(l.d) == maxSamples {
		half := l.d[:0]
		for i := 0; i < len(l.d); i += 2 {
			half = append(half, l.d[i])
		}
		l.d = half
		l.stride *= 2
	}
	l.d = append(l.d, d)
}

func (l *latencies) reset() {
	l.mu.Lock()
	l.d, l.stride, l.seen = l.d[:0], 1, 0
	l.mu.Unlock()
}

// summary returns the percentiles; nil without samples.
func (l *latencies) summary() *Latency {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	pct := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return &Latency{P50: us(pct(0.50)), P99: us(pct(0.99)), Mean: us(sum) / float64(len(d)), N: len(d)}
}

// Summary is a one-line rendering of a result: value, baseline and ratio.
func Summary(r *Result) string {
	if r.NotImplemented != "" {
		return r.NotImplemented
	}
	s := fmt.Sprintf("%s %s", Num(r.Value), r.Unit)
	if r.Lat != nil {
		s += fmt.Sprintf(" (p50 %s µs, p99 %s µs)", Num(r.Lat.P50), Num(r.Lat.P99))
	}
	if r.Baseline != nil {
		s += fmt.Sprintf("  beside %s %s %s", r.Baseline.Name, Num(r.Baseline.Value), r.Baseline.Unit)
	}
	return s
}

// Num renders a figure with three significant digits, grouping thousands.
func Num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		s := fmt.Sprintf("%.0f", v)
		out := make([]byte, 0, len(s)+len(s)/3)
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		return string(out)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
