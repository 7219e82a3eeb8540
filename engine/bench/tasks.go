package bench

import (
	"fmt"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// inFlight is how many calls the async figures start before getting them, as Ray's do.
const inFlight = 1000

// rawCalls is the baseline of the task and actor figures: lumen_call of fn on raw wazero, from
// threads goroutines with an instance each (a method's instance has run A's constructor). Close
// the instances with the returned func.
func (b *env) rawCalls(fn, threads int) (side, *Figure, func(), error) {
	insts := make([]*rawInstance, threads)
	done := func() {
		for _, in := range insts {
			if in != nil {
				in.close(b.ctx)
			}
		}
	}
	for i := range insts {
		in, err := b.raw.instance(b.ctx)
		if err != nil {
			done()
			return side{}, nil, nil, err
		}
		insts[i] = in
		if fn == fnANoop {
			if _, err := in.invoke(b.ctx, fnA, nil); err != nil {
				done()
				return side{}, nil, nil, fmt.Errorf("raw A: %w", err)
			}
		}
	}
	s := many(threads, func(i int) (int, error) {
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
	})
	f := &Figure{Name: "raw_wazero_call", Unit: UnitOps, Notes: "lumen_call of the same export on a bare wazero runtime, output copied out"}
	if threads > 1 {
		f.Name = fmt.Sprintf("raw_wazero_call_x%d", threads)
		f.Notes = fmt.Sprintf("the same from %d goroutines, an instance each", threads)
	}
	return s, f, done, nil
}

// versus measures fig beside the raw wazero baseline of fn on threads goroutines, in turns.
func (b *env) versus(fn, threads int, fig side) (float64, *Figure, error) {
	base, f, done, err := b.rawCalls(fn, threads)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	v, bv, err := compare(b.ctx, b.opts.Duration, fig, base)
	if err != nil {
		return 0, nil, err
	}
	f.Value = bv
	return v, f, nil
}

// take gets object h, releases it and checks it holds want.
func (b *env) take(h int64, want string) error {
	out, err := b.eng.Objects().Get(b.ctx, b.job, h, -1)
	if err != nil {
		return fmt.Errorf("get %d: %w", h, err)
	}
	if err := b.eng.Objects().Release(b.job, h); err != nil {
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

// submitGet submits len(hs) noop tasks, then gets them all.
func (b *env) submitGet(req *abi.TaskRequest, hs []int64) (int, error) {
	for i := range hs {
		h, err := b.eng.Tasks().Submit(b.ctx, b.job, req, host.Grants{})
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
	req := b.noopTask()
	return b.syncFigure(fnNoop, func() (int64, error) {
		h, err := b.eng.Tasks().Submit(b.ctx, b.job, req, host.Grants{})
		if err != nil {
			return 0, fmt.Errorf("submit: %w", err)
		}
		return h, nil
	}, "Engine.Submit + Get + Release of the noop task, one at a time")
}

// syncFigure measures start + Get + Release of one "ok" result at a time, with latencies,
// beside raw wazero calls of export fn.
func (b *env) syncFigure(fn int, start func() (int64, error), notes string) (*Result, error) {
	var lat latencies
	v, base, err := b.versus(fn, 1, one(func() (int, error) {
		t0 := time.Now()
		h, err := start()
		if err != nil {
			return 0, err
		}
		if err := b.take(h, "ok"); err != nil {
			return 0, err
		}
		lat.add(time.Since(t0))
		return 1, nil
	}, &lat))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: lat.summary(), Baseline: base, Notes: notes}, nil
}

// tasksAsync is Ray's `ray.get([small_value.remote() for _ in range(1000)])`.
func tasksAsync(b *env) (*Result, error) {
	req, hs := b.noopTask(), make([]int64, inFlight)
	v, base, err := b.versus(fnNoop, 1, one(func() (int, error) { return b.submitGet(req, hs) }))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: "1000 noop tasks submitted, then each got and released; tasks counted"}, nil
}

// tasksMultiClient is tasksAsync from Clients goroutines at once.
func tasksMultiClient(b *env) (*Result, error) {
	n := b.opts.Clients
	req := b.noopTask()
	hs := make([][]int64, n)
	for i := range hs {
		hs[i] = make([]int64, inFlight)
	}
	v, base, err := b.versus(fnNoop, n, many(n, func(i int) (int, error) { return b.submitGet(req, hs[i]) }))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: fmt.Sprintf("%d client goroutines, each 1000 noop tasks submitted then got; tasks counted", n)}, nil
}
