package bench

import (
	"fmt"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// inFlight is how many calls the async figures start before getting them, as Ray's do.
const inFlight = 1000

// baseDuration is how long a baseline is measured.
func (b *env) baseDuration() time.Duration { return b.opts.Duration / 2 }

// rawCalls measures the baseline of the task and actor figures: lumen_call of fn on raw wazero,
// from threads goroutines with an instance each (a method's instance has run A's constructor).
func (b *env) rawCalls(fn, threads int) (*Figure, error) {
	insts := make([]*rawInstance, threads)
	defer func() {
		for _, in := range insts {
			if in != nil {
				in.close(b.ctx)
			}
		}
	}()
	for i := range insts {
		in, err := b.raw.instance(b.ctx)
		if err != nil {
			return nil, err
		}
		insts[i] = in
		if fn == fnANoop {
			if _, err := in.invoke(b.ctx, fnA, nil); err != nil {
				return nil, fmt.Errorf("raw A: %w", err)
			}
		}
	}
	batch := func(i int) (int, error) {
		for range inFlight {
			out, err := insts[i].invoke(b.ctx, fn, nil)
			if err != nil {
				return 0, fmt.Errorf("raw call: %w", err)
			}
			if string(out) != "ok" {
				return 0, fmt.Errorf("raw call returned %q, want \"ok\"", out)
			}
		}
		return inFlight, nil
	}
	v, err := parallelRate(b.ctx, b.baseDuration(), threads, batch)
	if err != nil {
		return nil, err
	}
	name, notes := "raw_wazero_call", "lumen_call of the same export on a bare wazero runtime, output copied out"
	if threads > 1 {
		name = fmt.Sprintf("raw_wazero_call_x%d", threads)
		notes = fmt.Sprintf("the same from %d goroutines, an instance each", threads)
	}
	return &Figure{Name: name, Value: v, Unit: UnitOps, Notes: notes}, nil
}

// take gets object h, releases it and checks it holds want.
func (b *env) take(h int64, want string) error {
	out, err := b.eng.Get(b.ctx, b.job, h, -1)
	if err != nil {
		return fmt.Errorf("get %d: %w", h, err)
	}
	if err := b.eng.Release(b.job, h); err != nil {
		return fmt.Errorf("release %d: %w", h, err)
	}
	if string(out) != want {
		return fmt.Errorf("object %d holds %q, want %q", h, out, want)
	}
	return nil
}

func (b *env) noopTask() *abi.TaskRequest {
	return &abi.TaskRequest{Module: b.module, Function: "noop"}
}

// submitGet submits inFlight noop tasks, then gets them all.
func (b *env) submitGet(req *abi.TaskRequest, hs []int64) (int, error) {
	for i := range hs {
		h, err := b.eng.Submit(b.ctx, b.job, req, host.Grants{})
		if err != nil {
			return 0, fmt.Errorf("submit: %w", err)
		}
		hs[i] = h
	}
	for _, h := range hs {
		if err := b.take(h, "ok"); err != nil {
			return 0, err
		}
	}
	return len(hs), nil
}

// tasksSync is Ray's `ray.get(small_value.remote())` in a loop: Submit, Get and Release of a
// noop task, one at a time.
func tasksSync(b *env) (*Result, error) {
	base, err := b.rawCalls(fnNoop, 1)
	if err != nil {
		return nil, err
	}
	req := b.noopTask()
	var lat latencies
	v, err := rate(b.ctx, b.opts.Duration, &lat, func() (int, error) {
		t0 := time.Now()
		h, err := b.eng.Submit(b.ctx, b.job, req, host.Grants{})
		if err != nil {
			return 0, fmt.Errorf("submit: %w", err)
		}
		if err := b.take(h, "ok"); err != nil {
			return 0, err
		}
		lat.add(time.Since(t0))
		return 1, nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: lat.summary(), Baseline: base,
		Notes: "Engine.Submit + Get + Release of the noop task, one at a time"}, nil
}

// tasksAsync is Ray's `ray.get([small_value.remote() for _ in range(1000)])`.
func tasksAsync(b *env) (*Result, error) {
	base, err := b.rawCalls(fnNoop, 1)
	if err != nil {
		return nil, err
	}
	req, hs := b.noopTask(), make([]int64, inFlight)
	v, err := rate(b.ctx, b.opts.Duration, nil, func() (int, error) { return b.submitGet(req, hs) })
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: "1000 noop tasks submitted, then each got and released; tasks counted"}, nil
}

// tasksMultiClient is tasksAsync from Clients goroutines at once.
func tasksMultiClient(b *env) (*Result, error) {
	n := b.opts.Clients
	base, err := b.rawCalls(fnNoop, n)
	if err != nil {
		return nil, err
	}
	req := b.noopTask()
	hs := make([][]int64, n)
	for i := range hs {
		hs[i] = make([]int64, inFlight)
	}
	v, err := parallelRate(b.ctx, b.opts.Duration, n, func(i int) (int, error) { return b.submitGet(req, hs[i]) })
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: fmt.Sprintf("%d client goroutines, each 1000 noop tasks submitted then got; tasks counted", n)}, nil
}
