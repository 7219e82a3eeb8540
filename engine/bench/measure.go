package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// side is one thing measured: batch(i) run on threads goroutines (i is the goroutine's index),
// each call doing some operations and reporting how many. lats are cleared after the warm-up.
type side struct {
	threads int
	batch   func(i int) (int, error)
	lats    []*latencies
}

// one is a side run on one goroutine.
func one(batch func() (int, error), lats ...*latencies) side {
	return side{threads: 1, batch: func(int) (int, error) { return batch() }, lats: lats}
}

// many is a side run on n goroutines at once.
func many(n int, batch func(i int) (int, error), lats ...*latencies) side {
	return side{threads: n, batch: batch, lats: lats}
}

// warm runs every goroutine's batch once, untimed, to fill pools and caches, then clears lats.
func (s side) warm() error {
	if err := parallel(s.threads, func(i int) error { _, err := s.batch(i); return err }); err != nil {
		return err
	}
	for _, l := range s.lats {
		l.reset()
	}
	return nil
}

// timed runs the side until d has passed (each goroutine finishing its batch) and returns the
// operations done and the time they took.
func (s side) timed(ctx context.Context, d time.Duration) (int, time.Duration, error) {
	counts := make([]int, s.threads)
	start := time.Now()
	err := parallel(s.threads, func(i int) error {
		for {
			k, err := s.batch(i)
			if err != nil {
				return err
			}
			counts[i] += k
			if time.Since(start) >= d {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, time.Since(start), err
}

// rate warms the side, then measures it for d and returns its operations per second.
func rate(ctx context.Context, d time.Duration, s side) (float64, error) {
	if err := s.warm(); err != nil {
		return 0, err
	}
	n, el, err := s.timed(ctx, d)
	if err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

// rounds is how many turns compare takes at each side.
const rounds = 3

// compare measures a figure for d and its baseline for d/2 in turns (baseline, figure, three
// times over), so that both see the same machine even when its load changes, and returns the
// operations per second of each.
func compare(ctx context.Context, d time.Duration, fig, base side) (figRate, baseRate float64, err error) {
	if err := base.warm(); err != nil {
		return 0, 0, fmt.Errorf("baseline: %w", err)
	}
	if err := fig.warm(); err != nil {
		return 0, 0, err
	}
	var fn, bn int
	var fel, bel time.Duration
	for range rounds {
		n, el, err := base.timed(ctx, d/2/rounds)
		if err != nil {
			return 0, 0, fmt.Errorf("baseline: %w", err)
		}
		bn, bel = bn+n, bel+el
		if n, el, err = fig.timed(ctx, d/rounds); err != nil {
			return 0, 0, err
		}
		fn, fel = fn+n, fel+el
	}
	return float64(fn) / fel.Seconds(), float64(bn) / bel.Seconds(), nil
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
