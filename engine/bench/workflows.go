package bench

import (
	"bytes"
	"fmt"
	"time"
)

// chainInput is what the first step of the bench workflows echoes; every step passes it on.
const chainInput = `{"n":1}`

// chain is a 3-step workflow of echo steps, each reading the one before it; the first reads
// first, a JSON value (a literal, or "${input}" for a compiled workflow's input).
func (b *env) chain(first string) []byte {
	return fmt.Appendf(nil, `{"version":1,"name":"bench-chain","steps":[`+
		`{"id":"a","module":%[1]q,"function":"echo","args":%[2]s},`+
		`{"id":"b","module":%[1]q,"function":"echo","args":"${a}"},`+
		`{"id":"c","module":%[1]q,"function":"echo","args":"${b}"}],"output":"${c}"}`, b.module, first)
}

// compiledExecute is Ray's compiled graph of 3 stages: the chain, its first step reading the
// execution's input, compiled once and executed again and again with Engine.Execute, in µs per
// execution, beside three raw wazero calls of echo (input copied in, output copied out, each
// passed to the next).
func compiledExecute(b *env) (*Result, error) {
	in, err := b.raw.instance(b.ctx)
	if err != nil {
		return nil, err
	}
	defer in.close(b.ctx)
	input := []byte(chainInput)
	raw3 := one(func() (int, error) {
		for range inFlight {
			out := input
			for range 3 {
				if out, err = in.invoke(b.ctx, fnEcho, out); err != nil {
					return 0, fmt.Errorf("raw echo: %w", err)
				}
			}
			if !bytes.Equal(out, input) {
				return 0, fmt.Errorf("raw echo chain returned %q", out)
			}
		}
		return inFlight, nil
	})
	id, err := b.eng.CompileWorkflow(b.ctx, b.chain(`"${input}"`), b.job, nil)
	if err != nil {
		return nil, fmt.Errorf("compile workflow: %w", err)
	}
	var lat latencies
	exec := one(func() (int, error) {
		t0 := time.Now()
		out, err := b.eng.Workflows().Execute(b.ctx, id, input)
		if err != nil {
			return 0, fmt.Errorf("execute: %w", err)
		}
		lat.add(time.Since(t0))
		if string(out) != chainInput {
			return 0, fmt.Errorf("execute returned %q, want %s", out, chainInput)
		}
		return 1, nil
	}, &lat)
	v, rawRate, err := compare(b.ctx, b.opts.Duration, exec, raw3)
	if err != nil {
		return nil, err
	}
	return &Result{Value: 1e6 / v, Unit: UnitMicros, Lat: lat.summary(),
		Baseline: &Figure{Name: "three_raw_wazero_calls", Value: 1e6 / rawRate, Unit: UnitMicros,
			Notes: "lumen_alloc, input copied in, lumen_call of echo and output copied out, three times in a row"},
		Notes: "Engine.Execute of a compiled 3-step chain of echo steps on its input, one execution at a time; value is mean µs per execution"}, nil
}
