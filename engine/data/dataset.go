package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Options tune an execution. The zero value is usable: every field has a default.
type Options struct {
	// Allocator holds every Arrow buffer the execution makes. Default: a Go allocator.
	Allocator memory.Allocator
	// MemoryCap is the number of bytes each blocking operator (sort, groupby, shuffle,
	// repartition, the build side of a join) may hold before it spills to TempDir.
	// Default 256 MiB.
	MemoryCap int64
	// TempDir is where spill files go, in a fresh folder per execution that is removed when the
	// execution ends. Default os.TempDir().
	TempDir string
	// BatchRows is the number of rows per batch that readers and blocking operators emit.
	// Default 8192.
	BatchRows int
	// Queue is the number of batches buffered between two stages. Default 2.
	Queue int
	// Progress, when set, receives each operator's counters as the execution runs.
	Progress *Progress
}

func (o Options) withDefaults() Options {
	if o.Allocator == nil {
		o.Allocator = memory.NewGoAllocator()
	}
	if o.MemoryCap <= 0 {
		o.MemoryCap = 256 << 20
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 8192
	}
	if o.Queue <= 0 {
		o.Queue = 2
	}
	return o
}

// operator is one plan node's behaviour. run reads its inputs until they close (or until it
// calls stopInputs), writes its output with emit, and returns; the executor closes the output
// and drains whatever the inputs still send.
type operator interface {
	name() string
	run(ctx context.Context, s *stage) error
}

// Dataset is a lazy plan of operators over Arrow record batches. Methods return a new Dataset
// and never modify the receiver; a Dataset is safe for concurrent use and may be run any number
// of times. A construction error (a bad expression, an unknown column in Select) is kept and
// returned by the sink that runs the plan.
type Dataset struct {
	op     operator
	inputs []*Dataset
	opts   *Options
	err    error
}

func newDataset(op operator, inputs ...*Dataset) *Dataset {
	d := &Dataset{op: op, inputs: inputs}
	for _, in := range inputs {
		if in == nil {
			d.err = fmt.Errorf("%s: nil input dataset", op.name())
		} else if in.err != nil && d.err == nil {
			d.err = in.err
		}
	}
	return d
}

func failed(op string, err error) *Dataset {
	return &Dataset{op: errOp{op}, err: fmt.Errorf("%s: %w", op, err)}
}

type errOp struct{ n string }

func (e errOp) name() string                      { return e.n }
func (e errOp) run(context.Context, *stage) error { return errors.New(e.n + ": not runnable") }

// WithOptions returns d run with opts. The options of the dataset a sink is called on apply to
// the whole plan; where it has none, those of its first input (recursively) do.
func (d *Dataset) WithOptions(opts Options) *Dataset {
	c := *d
	c.opts = &opts
	return &c
}

// Err is the construction error of the plan, if any.
func (d *Dataset) Err() error { return d.err }

func (d *Dataset) options() Options {
	for x := d; x != nil; {
		if x.opts != nil {
			return *x.opts
		}
		if len(x.inputs) == 0 {
			break
		}
		x = x.inputs[0]
	}
	return Options{}
}

// item is one batch in flight with the output partition it belongs to. Sources number
// partitions by input file; writers start a new file when the partition changes.
type item struct {
	rec  arrow.Record
	part int
}

// stage is a running operator's view of the execution.
type stage struct {
	x          *execution
	ins        []<-chan item
	out        chan<- item
	st         *opCounters
	stopInputs context.CancelFunc
}

// emit sends rec downstream, giving up (and releasing rec) if ctx ends.
func (s *stage) emit(ctx context.Context, rec arrow.Record, part int) error {
	s.st.batchesOut.Add(1)
	s.st.rowsOut.Add(rec.NumRows())
	s.st.bytesOut.Add(recordBytes(rec))
	select {
	case s.out <- item{rec, part}:
		return nil
	case <-ctx.Done():
		rec.Release()
		return context.Cause(ctx)
	}
}

// counted records an input batch in the stage's counters.
func (s *stage) counted(it item) item {
	s.st.batchesIn.Add(1)
	s.st.rowsIn.Add(it.rec.NumRows())
	s.st.bytesIn.Add(recordBytes(it.rec))
	return it
}

func (s *stage) mem() memory.Allocator { return s.x.opts.Allocator }

// execution is one run of a plan.
type execution struct {
	opts   Options
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	tmpMu  sync.Mutex
	tmp    string
	nextID atomic.Int64
}

func (x *execution) fail(err error) {
	x.mu.Lock()
	if x.err == nil {
		x.err = err
	}
	x.mu.Unlock()
	x.cancel(err)
}

// tempDir returns this execution's spill folder, creating it on first use.
func (x *execution) tempDir() (string, error) {
	x.tmpMu.Lock()
	defer x.tmpMu.Unlock()
	if x.tmp == "" {
		d, err := os.MkdirTemp(x.opts.TempDir, "lumen-data-")
		if err != nil {
			return "", fmt.Errorf("spill folder: %w", err)
		}
		x.tmp = d
	}
	return x.tmp, nil
}

// start runs d's inputs and d in goroutines and returns d's output channel.
func (x *execution) start(ctx context.Context, d *Dataset) <-chan item {
	inCtx, stopInputs := context.WithCancel(ctx)
	ins := make([]<-chan item, len(d.inputs))
	for k, in := range d.inputs {
		ins[k] = x.start(inCtx, in)
	}
	id := x.nextID.Add(1)
	out := make(chan item, x.opts.Queue)
	name := fmt.Sprintf("%d:%s", id, d.op.name())
	s := &stage{x: x, ins: ins, out: out, st: x.opts.Progress.register(name), stopInputs: stopInputs}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		defer close(out)
		defer stopInputs()
		err := d.op.run(ctx, s)
		if err != nil {
			stopInputs()
		}
		for _, in := range ins {
			for it := range in {
				it.rec.Release()
			}
		}
		s.st.done.Store(true)
		if err != nil && !(ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.Cause(ctx)))) {
			s.st.setErr(err)
			x.fail(fmt.Errorf("%s: %w", d.op.name(), err))
		}
	}()
	return out
}

// errStop ends an execution early without error (Take, Limit at the sink).
var errStop = errors.New("data: stop")

// run executes d and calls fn for each output batch in order. fn does not own it.rec (it is
// released after fn returns); returning errStop ends the run early with no error.
func (d *Dataset) run(ctx context.Context, fn func(it item) error) error {
	if d.err != nil {
		return d.err
	}
	x := &execution{opts: d.options().withDefaults()}
	x.opts.Progress.reset()
	ctx, x.cancel = context.WithCancelCause(ctx)
	defer x.cancel(nil)
	out := x.start(ctx, d)
	var sinkErr error
	for it := range out {
		if sinkErr == nil && ctx.Err() == nil {
			if err := fn(it); err != nil {
				sinkErr = err
				x.cancel(errStop)
			}
		}
		it.rec.Release()
	}
	x.wg.Wait()
	if x.tmp != "" {
		if err := os.RemoveAll(x.tmp); err != nil && sinkErr == nil && x.err == nil {
			sinkErr = fmt.Errorf("remove spill folder: %w", err)
		}
	}
	x.mu.Lock()
	err := x.err
	x.mu.Unlock()
	switch {
	case sinkErr != nil && !errors.Is(sinkErr, errStop):
		return sinkErr
	case err != nil:
		return err
	case sinkErr == nil && ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return nil
}

// Iter runs the plan and calls fn with each output batch, in order. The batch is valid only
// during the call (Retain it to keep it). An error from fn stops the run and is returned.
func (d *Dataset) Iter(ctx context.Context, fn func(arrow.Record) error) error {
	return d.run(ctx, func(it item) error { return fn(it.rec) })
}

// Collect runs the plan and returns every output batch. The caller owns them and must Release
// each. It materialises the whole result: use it for small results and tests.
func (d *Dataset) Collect(ctx context.Context) ([]arrow.Record, error) {
	var out []arrow.Record
	err := d.run(ctx, func(it item) error {
		it.rec.Retain()
		out = append(out, it.rec)
		return nil
	})
	if err != nil {
		for _, r := range out {
			r.Release()
		}
		return nil, err
	}
	return out, nil
}

// Take runs the plan until it has n rows and returns them as maps from column name to value
// (int64, uint64, float64, string, []byte, bool or nil; other types as their string form).
func (d *Dataset) Take(ctx context.Context, n int) ([]map[string]any, error) {
	var rows []map[string]any
	if n <= 0 {
		return rows, d.err
	}
	err := d.run(ctx, func(it item) error {
		rows = appendRows(rows, it.rec, n-len(rows))
		if len(rows) >= n {
			return errStop
		}
		return nil
	})
	return rows, err
}

// Count runs the plan and returns the number of rows it produces.
func (d *Dataset) Count(ctx context.Context) (int64, error) {
	var n int64
	err := d.run(ctx, func(it item) error {
		n += it.rec.NumRows()
		return nil
	})
	return n, err
}

func appendRows(rows []map[string]any, rec arrow.Record, max int) []map[string]any {
	s := rec.Schema()
	for i := 0; i < int(rec.NumRows()) && max > 0; i++ {
		row := make(map[string]any, s.NumFields())
		for c := range s.NumFields() {
			col := rec.Column(c)
			if scalarType(col.DataType()) {
				row[s.Field(c).Name] = getValue(col, i)
			} else if col.IsNull(i) || col.DataType().ID() == arrow.NULL {
				row[s.Field(c).Name] = nil
			} else {
				row[s.Field(c).Name] = valueString(col, i)
			}
		}
		rows = append(rows, row)
		max--
	}
	return rows
}

// valueString renders a nested value. Arrow's ValueStr panics on some values (a struct holding
// an infinite float goes through encoding/json); those fall back to fmt.
func valueString(col arrow.Array, i int) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprint(col.GetOneForMarshal(i))
		}
	}()
	return col.ValueStr(i)
}

// Progress collects per-operator counters of a running execution for display. It is safe for
// concurrent use; one execution at a time should report to it (a new run resets it).
type Progress struct {
	mu  sync.Mutex
	ops []*opCounters
}

// OpStats is a snapshot of one operator's counters.
type OpStats struct {
	Op           string `json:"op"`
	RowsIn       int64  `json:"rows_in"`
	RowsOut      int64  `json:"rows_out"`
	BatchesIn    int64  `json:"batches_in"`
	BatchesOut   int64  `json:"batches_out"`
	BytesIn      int64  `json:"bytes_in"`
	BytesOut     int64  `json:"bytes_out"`
	SpilledBytes int64  `json:"spilled_bytes"`
	HeldBytes    int64  `json:"held_bytes"`      // bytes a blocking operator holds now
	PeakHeld     int64  `json:"peak_held_bytes"` // the most it has held
	Done         bool   `json:"done"`
	Err          string `json:"error,omitempty"`
}

type opCounters struct {
	name                                   string
	rowsIn, rowsOut, batchesIn, batchesOut atomic.Int64
	bytesIn, bytesOut, spilled, held       atomic.Int64
	peakHeld                               atomic.Int64
	done                                   atomic.Bool
	errMu                                  sync.Mutex
	err                                    string
}

// setHeld records the bytes a blocking operator holds (its buffered batches and tables).
func (c *opCounters) setHeld(n int64) {
	c.held.Store(n)
	for {
		p := c.peakHeld.Load()
		if n <= p || c.peakHeld.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *opCounters) setErr(err error) {
	c.errMu.Lock()
	c.err = err.Error()
	c.errMu.Unlock()
}

func (p *Progress) reset() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.ops = nil
	p.mu.Unlock()
}

func (p *Progress) register(name string) *opCounters {
	c := &opCounters{name: name}
	if p == nil {
		return c
	}
	p.mu.Lock()
	p.ops = append(p.ops, c)
	p.mu.Unlock()
	return c
}

// Snapshot returns the counters of every operator of the current (or last) execution, inputs
// before the operators they feed, numbered in that order in the Op name ("3:filter(...)").
func (p *Progress) Snapshot() []OpStats {
	p.mu.Lock()
	ops := append([]*opCounters(nil), p.ops...)
	p.mu.Unlock()
	out := make([]OpStats, len(ops))
	for i, c := range ops {
		c.errMu.Lock()
		e := c.err
		c.errMu.Unlock()
		out[i] = OpStats{
			Op: c.name, RowsIn: c.rowsIn.Load(), RowsOut: c.rowsOut.Load(),
			BatchesIn: c.batchesIn.Load(), BatchesOut: c.batchesOut.Load(),
			BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
			SpilledBytes: c.spilled.Load(), HeldBytes: c.held.Load(), PeakHeld: c.peakHeld.Load(), Done: c.done.Load(), Err: e,
		}
	}
	return out
}
