package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// overloadCanary is a node under a flood: one job keeps as many noop tasks in flight as its
// quota allows (the shape of a fork bomb, without the recursion: submit until refused, then get
// the oldest and submit again), from two goroutines; meanwhile a noop task of another job is
// submitted and got, one at a time. The figure is that canary's p99, in µs; the baseline is the
// same canary on the quiet node, measured first in the same run. The pool serves waiting calls
// in turns by job, so the canary waits behind one of the flood's tasks, not behind its queue.
func overloadCanary(b *env) (*Result, error) {
	canary := func(d time.Duration) (*latencies, error) {
		var lat latencies
		req := b.noopTask()
		for stop := time.Now().Add(d); time.Now().Before(stop); {
			t0 := time.Now()
			h, err := b.eng.Tasks().Submit(b.ctx, "canary", req, host.Grants{})
			if err != nil {
				return nil, fmt.Errorf("canary submit: %w", err)
			}
			out, err := b.eng.Objects().Get(b.ctx, "canary", h, -1)
			if err != nil || string(out) != "ok" {
				return nil, fmt.Errorf("canary get: %q, %v", out, err)
			}
			b.eng.Objects().Release("canary", h)
			lat.add(time.Since(t0))
		}
		return &lat, nil
	}
	quiet, err := canary(b.opts.Duration)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(b.ctx)
	var wg sync.WaitGroup
	var floodErr error
	var mu sync.Mutex
	var peak int
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := b.noopTask()
			var held []int64
			defer func() {
				for _, h := range held {
					b.eng.Tasks().Cancel("flood", h)
					b.eng.Objects().Release("flood", h)
				}
			}()
			for ctx.Err() == nil {
				h, err := b.eng.Tasks().Submit(ctx, "flood", req, host.Grants{})
				var ae *abi.Error
				switch {
				case err == nil:
					held = append(held, h)
					continue
				case errors.As(err, &ae) && ae.Kind == abi.KindLimit && len(held) > 0:
					// At its quota: take the oldest, then go on submitting.
					if _, err := b.eng.Objects().Get(ctx, "flood", held[0], -1); err != nil && ctx.Err() == nil {
						mu.Lock()
						floodErr = err
						mu.Unlock()
						return
					}
					b.eng.Objects().Release("flood", held[0])
					held = held[1:]
				case ctx.Err() == nil:
					mu.Lock()
					floodErr = err
					mu.Unlock()
					return
				}
				mu.Lock()
				peak = max(peak, b.eng.Tasks().Load("flood").Tasks)
				mu.Unlock()
			}
		}()
	}
	// Let the flood fill its quota before the canary starts.
	for fill := time.Now().Add(10 * time.Second); time.Now().Before(fill) && b.eng.Tasks().Load("flood").Tasks < 1000; {
		time.Sleep(5 * time.Millisecond)
	}
	loaded, err := canary(b.opts.Duration)
	cancel()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if floodErr != nil {
		return nil, fmt.Errorf("flood: %w", floodErr)
	}
	q, l := quiet.summary(), loaded.summary()
	return &Result{
		Value: l.P99, Unit: UnitMicros, Lat: l,
		Baseline: &Figure{Name: "canary_quiet_p99", Value: q.P99, Unit: UnitMicros, Lat: q,
			Notes: "the same canary on the quiet node, in the same run"},
		Extra: []Figure{{Name: "flood_tasks_in_flight_peak", Value: float64(peak), Unit: "tasks",
			Notes: "the flooding job's tasks in flight on the node at most (its quota)"}},
		Notes: "p99 of Submit + Get + Release of a noop task of one job while another job keeps its quota of noop tasks in flight",
	}, nil
}
