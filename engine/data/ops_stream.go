package data

import (
	"context"
	"fmt"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// BatchFunc transforms one batch. It must not retain or release in; it returns a new record
// (which the library releases), or in itself after in.Retain(). The engine adapts a WASM export
// taking and returning Arrow IPC bytes with EncodeIPC and DecodeIPC.
type BatchFunc func(ctx context.Context, in arrow.Record) (arrow.Record, error)

// PoolFunc builds one worker of an actor pool: it is called once per worker (index worker) and
// returns the BatchFunc that worker runs for every batch it is given, and a close function (may
// be nil) called when the worker is done. Use it to load a model once and reuse it.
type PoolFunc func(ctx context.Context, worker int) (fn BatchFunc, close func() error, err error)

// MapOptions configure MapBatches.
type MapOptions struct {
	// Concurrency is the number of batches processed at once (the pool size with Pool).
	// Default 1. Output order is input order whatever the concurrency.
	Concurrency int
	// Pool, when set, builds Concurrency long-lived workers; fn passed to MapBatches must be nil.
	Pool PoolFunc
	// Name labels the operator in progress and errors. Default "map_batches".
	Name string
}

// MapBatches applies fn to every batch. Every output batch must have the same schema (the first
// output's) and well-formed buffers; otherwise the job fails with an error naming the batch.
func (d *Dataset) MapBatches(fn BatchFunc, opts MapOptions) *Dataset {
	if opts.Name == "" {
		opts.Name = "map_batches"
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	switch {
	case fn == nil && opts.Pool == nil:
		return failed(opts.Name, fmt.Errorf("%w: no function and no pool", ErrUDF))
	case fn != nil && opts.Pool != nil:
		return failed(opts.Name, fmt.Errorf("%w: both a function and a pool", ErrUDF))
	}
	return newDataset(&mapOp{fn: fn, opts: opts}, d)
}

type mapOp struct {
	fn   BatchFunc
	opts MapOptions
}

func (m *mapOp) name() string { return m.opts.Name }

type mapJob struct {
	seq  int
	in   item
	done chan mapResult
}

type mapResult struct {
	rec arrow.Record
	err error
}

func (m *mapOp) run(ctx context.Context, s *stage) error {
	n := m.opts.Concurrency
	jobs := make(chan *mapJob)
	order := make(chan *mapJob, n) // bounds the jobs in flight and keeps output in input order
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first real failure in time wins; the errors it causes elsewhere (cancelled calls) do not.
	var (
		failOnce sync.Once
		failErr  error
	)
	fail := func(err error) {
		failOnce.Do(func() { failErr = err })
		cancel()
	}
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn, closeFn := m.fn, func() error { return nil }
			if m.opts.Pool != nil {
				f, c, err := m.opts.Pool(wctx, w)
				if err != nil {
					fail(fmt.Errorf("%w: pool worker %d: %v", ErrUDF, w, err))
					// Keep answering jobs so the dispatcher cannot block on this worker.
					f = func(context.Context, arrow.Record) (arrow.Record, error) {
						return nil, fmt.Errorf("%w: pool worker %d failed to start: %v", ErrUDF, w, err)
					}
				}
				if c != nil {
					closeFn = c
				}
				fn = f
			}
			defer func() {
				if err := closeFn(); err != nil {
					fail(fmt.Errorf("%w: pool worker %d close: %v", ErrUDF, w, err))
				}
			}()
			for j := range jobs {
				r := callBatch(wctx, fn, j.in.rec, j.seq)
				j.in.rec.Release()
				if r.err != nil && wctx.Err() == nil {
					fail(r.err)
				}
				j.done <- r
			}
		}()
	}
	// Collector: checks and emits results in input order.
	var collErr error
	collDone := make(chan struct{})
	go func() {
		defer close(collDone)
		var schema *arrow.Schema
		for j := range order {
			r := <-j.done
			if collErr != nil || r.err != nil {
				if r.rec != nil {
					r.rec.Release()
				}
				if collErr == nil {
					collErr = r.err
				}
				continue
			}
			if schema == nil {
				schema = r.rec.Schema()
			}
			if err := checkBatch(r.rec, schema); err != nil {
				r.rec.Release()
				collErr = fmt.Errorf("batch %d: %w", j.seq, err)
				fail(collErr)
				continue
			}
			if err := s.emit(ctx, r.rec, j.in.part); err != nil {
				collErr = err
				cancel()
			}
		}
	}()
	seq := 0
dispatch:
	for it := range s.ins[0] {
		s.counted(it)
		j := &mapJob{seq: seq, in: it, done: make(chan mapResult, 1)}
		seq++
		select {
		case order <- j:
		case <-wctx.Done():
			it.rec.Release()
			break dispatch
		}
		select {
		case jobs <- j:
		case <-wctx.Done():
			j.done <- mapResult{err: context.Cause(wctx)}
			it.rec.Release()
			break dispatch
		}
	}
	close(jobs)
	close(order)
	wg.Wait()
	<-collDone
	if failErr != nil {
		return failErr
	}
	if collErr != nil {
		return collErr
	}
	return ctx.Err()
}

// callBatch runs fn on rec, turning a panic into an error so one bad batch fails the job, not
// the process.
func callBatch(ctx context.Context, fn BatchFunc, rec arrow.Record, seq int) (res mapResult) {
	defer func() {
		if p := recover(); p != nil {
			res = mapResult{err: fmt.Errorf("batch %d: %w: panic: %v", seq, ErrUDF, p)}
		}
	}()
	out, err := fn(ctx, rec)
	if err != nil {
		if out != nil {
			out.Release()
		}
		return mapResult{err: fmt.Errorf("batch %d: %w: %w", seq, ErrUDF, err)}
	}
	if out == nil {
		return mapResult{err: fmt.Errorf("batch %d: %w: returned no batch", seq, ErrUDF)}
	}
	return mapResult{rec: out}
}

// exprOp runs filter and add_column: it compiles the expression against each new input schema.
type exprOp struct {
	kind string // "filter" or "add_column"
	col  string // add_column: the new column's name
	e    *Expr
}

// Filter keeps the rows where expr is true (null counts as false). See docs/data.md for the
// expression language.
func (d *Dataset) Filter(expr string) *Dataset {
	e, err := ParseExpr(expr)
	if err != nil {
		return failed("filter", err)
	}
	return newDataset(&exprOp{kind: "filter", e: e}, d)
}

// AddColumn appends (or replaces, keeping its position) column name with the value of expr.
func (d *Dataset) AddColumn(name, expr string) *Dataset {
	if name == "" {
		return failed("add_column", fmt.Errorf("%w: empty column name", ErrBadExpr))
	}
	e, err := ParseExpr(expr)
	if err != nil {
		return failed("add_column "+name, err)
	}
	return newDataset(&exprOp{kind: "add_column", col: name, e: e}, d)
}

func (o *exprOp) name() string {
	if o.kind == "filter" {
		return "filter(" + o.e.String() + ")"
	}
	return "add_column(" + o.col + " = " + o.e.String() + ")"
}

func (o *exprOp) run(ctx context.Context, s *stage) error {
	var (
		schema *arrow.Schema
		c      *compiled
		outSch *arrow.Schema
		pos    int
	)
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		rec := it.rec
		if schema == nil || !schema.Equal(rec.Schema()) {
			var err error
			schema = rec.Schema()
			if c, err = compileExpr(o.e, schema); err != nil {
				rec.Release()
				return fmt.Errorf("batch %d: %w", batch, err)
			}
			if o.kind == "filter" && c.t != vBool && c.t != vNull {
				rec.Release()
				return fmt.Errorf("batch %d: %w: filter %s is %s, not bool", batch, ErrBadExpr, o.e, c.t)
			}
			if o.kind == "add_column" {
				f := arrow.Field{Name: o.col, Type: c.t.arrowType(), Nullable: true}
				fields := append([]arrow.Field(nil), schema.Fields()...)
				pos = len(fields)
				if idx := schema.FieldIndices(o.col); len(idx) > 0 {
					pos = idx[0]
					fields[pos] = f
				} else {
					fields = append(fields, f)
				}
				outSch = arrow.NewSchema(fields, nil)
			}
		}
		batch++
		v := c.eval(rec)
		var out arrow.Record
		if o.kind == "filter" {
			var err error
			if out, err = filterRecord(s, rec, v); err != nil {
				rec.Release()
				return fmt.Errorf("batch %d: %w", batch-1, err)
			}
		} else {
			col := v.toArray(s.mem(), int(rec.NumRows()))
			cols := append([]arrow.Array(nil), rec.Columns()...)
			if pos == len(cols) {
				cols = append(cols, col)
			} else {
				cols[pos] = col
			}
			out = array.NewRecord(outSch, cols, rec.NumRows())
			col.Release()
		}
		rec.Release()
		if out == nil {
			continue
		}
		if err := s.emit(ctx, out, it.part); err != nil {
			return err
		}
	}
	return nil
}

// filterRecord keeps the rows where v is true; nil when none are.
func filterRecord(s *stage, rec arrow.Record, v *vec) (arrow.Record, error) {
	n := int(rec.NumRows())
	keep := func(k int) bool { return v.t == vBool && v.ok(k) && v.b[v.at(k)] }
	var refs []rowRef
	all := true
	for k := range n {
		if keep(k) {
			refs = append(refs, rowRef{0, int32(k)})
		} else {
			all = false
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	if all {
		rec.Retain()
		return rec, nil
	}
	return gather(s.mem(), rec.Schema(), []arrow.Record{rec}, refs)
}

// Select keeps the named columns, in the order given.
func (d *Dataset) Select(cols ...string) *Dataset {
	if len(cols) == 0 {
		return failed("select", fmt.Errorf("%w: no columns", ErrBadExpr))
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c] {
			return failed("select", fmt.Errorf("%w: column %q named twice", ErrBadExpr, c))
		}
		seen[c] = true
	}
	return newDataset(&selectOp{cols: cols}, d)
}

type selectOp struct{ cols []string }

func (o *selectOp) name() string { return fmt.Sprintf("select%v", o.cols) }

func (o *selectOp) run(ctx context.Context, s *stage) error {
	var schema, outSch *arrow.Schema
	var idx []int
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		rec := it.rec
		if schema == nil || !schema.Equal(rec.Schema()) {
			schema = rec.Schema()
			idx = idx[:0]
			fields := make([]arrow.Field, len(o.cols))
			for k, c := range o.cols {
				i, err := columnIndex(schema, c)
				if err != nil {
					rec.Release()
					return fmt.Errorf("batch %d: %w", batch, err)
				}
				idx = append(idx, i)
				fields[k] = schema.Field(i)
			}
			outSch = arrow.NewSchema(fields, nil)
		}
		batch++
		cols := make([]arrow.Array, len(idx))
		for k, i := range idx {
			cols[k] = rec.Column(i)
		}
		out := array.NewRecord(outSch, cols, rec.NumRows())
		rec.Release()
		if err := s.emit(ctx, out, it.part); err != nil {
			return err
		}
	}
	return nil
}

// Row is one row as FlatMap sees it: column name to value (int64, uint64, float64, string,
// []byte, bool or nil).
type Row = map[string]any

// RowFunc maps one row to any number of rows.
type RowFunc func(ctx context.Context, row Row) ([]Row, error)

// FlatMap applies fn to every row and emits the rows it returns. The output schema is inferred
// from the first non-empty output (as FromItems does) and then fixed: a later row with a new key
// or a value of another type is an error naming the input batch and row.
func (d *Dataset) FlatMap(fn RowFunc) *Dataset {
	if fn == nil {
		return failed("flat_map", fmt.Errorf("%w: no function", ErrUDF))
	}
	return newDataset(&flatMapOp{fn: fn}, d)
}

type flatMapOp struct{ fn RowFunc }

func (o *flatMapOp) name() string { return "flat_map" }

func (o *flatMapOp) run(ctx context.Context, s *stage) error {
	var schema *arrow.Schema
	var b *array.RecordBuilder
	defer func() {
		if b != nil {
			b.Release()
		}
	}()
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		in := appendRows(nil, it.rec, int(it.rec.NumRows()))
		it.rec.Release()
		var outRows []Row
		for r, row := range in {
			got, err := o.fn(ctx, row)
			if err != nil {
				return fmt.Errorf("batch %d row %d: %w: %w", batch, r, ErrUDF, err)
			}
			outRows = append(outRows, got...)
			if len(outRows) > 0 && schema == nil {
				sch, err := itemsSchema(got)
				if err != nil {
					return fmt.Errorf("batch %d row %d: %w: %w", batch, r, ErrUDF, err)
				}
				schema = sch
				b = array.NewRecordBuilder(s.mem(), schema)
			}
		}
		for r, row := range outRows {
			for k := range row {
				if len(schema.FieldIndices(k)) == 0 {
					return fmt.Errorf("batch %d output row %d: %w: %w: key %q is not in the output schema %v", batch, r, ErrUDF, ErrSchemaMismatch, k, fieldNames(schema))
				}
			}
			for c, f := range schema.Fields() {
				v := row[f.Name]
				if _, err := goType(v); err != nil {
					return fmt.Errorf("batch %d output row %d key %q: %w: %w", batch, r, f.Name, ErrUDF, err)
				}
				if f.Type.ID() == arrow.NULL {
					if v != nil {
						return fmt.Errorf("batch %d output row %d key %q: %w: %w: value in an all-null column", batch, r, f.Name, ErrUDF, ErrSchemaMismatch)
					}
					b.Field(c).AppendNull()
					continue
				}
				if err := appendAny(b.Field(c), normGo(v)); err != nil {
					return fmt.Errorf("batch %d output row %d key %q: %w: %w: %v", batch, r, f.Name, ErrUDF, ErrSchemaMismatch, err)
				}
			}
		}
		batch++
		if len(outRows) > 0 {
			if err := s.emit(ctx, b.NewRecord(), it.part); err != nil {
				return err
			}
		}
	}
	return nil
}

// Limit keeps the first n rows and then stops reading its input.
func (d *Dataset) Limit(n int64) *Dataset {
	if n < 0 {
		return failed("limit", fmt.Errorf("%w: negative limit %d", ErrBadExpr, n))
	}
	return newDataset(&limitOp{n: n}, d)
}

type limitOp struct{ n int64 }

func (o *limitOp) name() string { return fmt.Sprintf("limit(%d)", o.n) }

func (o *limitOp) run(ctx context.Context, s *stage) error {
	left := o.n
	if left == 0 {
		s.stopInputs()
		return nil
	}
	for it := range s.ins[0] {
		s.counted(it)
		rec := it.rec
		if rec.NumRows() > left {
			cut := rec.NewSlice(0, left)
			rec.Release()
			rec = cut
		}
		left -= rec.NumRows()
		if err := s.emit(ctx, rec, it.part); err != nil {
			return err
		}
		if left == 0 {
			s.stopInputs()
			return nil
		}
	}
	return nil
}

// Union concatenates d and others, in order. All inputs must have the same schema (column names
// and types, in order); a mismatch is an error naming the input and column.
func (d *Dataset) Union(others ...*Dataset) *Dataset {
	return newDataset(&unionOp{}, append([]*Dataset{d}, others...)...)
}

type unionOp struct{}

func (unionOp) name() string { return "union" }

func (unionOp) run(ctx context.Context, s *stage) error {
	var schema *arrow.Schema
	base := 0
	for k, in := range s.ins {
		maxPart := -1
		for it := range in {
			s.counted(it)
			if schema == nil {
				schema = it.rec.Schema()
			} else if d := schemaDiff(schema, it.rec.Schema()); d != "" {
				it.rec.Release()
				return fmt.Errorf("input %d: %w: %s", k, ErrSchemaMismatch, d)
			}
			maxPart = max(maxPart, it.part)
			if err := s.emit(ctx, it.rec, base+it.part); err != nil {
				return err
			}
		}
		base += maxPart + 1
	}
	return nil
}
