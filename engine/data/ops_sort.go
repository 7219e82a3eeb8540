package data

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
)

// Sort orders rows by keys (compared in order; all ascending, or all descending when descending
// is true). Nulls sort last either way and NaN after every other float. The sort is stable.
// It is an external merge sort: runs of up to MemoryCap bytes are sorted in memory and spilled,
// then merged (in several passes when there are too many runs to merge under the cap).
func (d *Dataset) Sort(keys []string, descending bool) *Dataset {
	if len(keys) == 0 {
		return failed("sort", fmt.Errorf("%w: no sort keys", ErrBadExpr))
	}
	return newDataset(&sortOp{keys: keys, desc: descending}, d)
}

type sortOp struct {
	keys []string
	desc bool
}

func (o *sortOp) name() string {
	if o.desc {
		return fmt.Sprintf("sort%v desc", o.keys)
	}
	return fmt.Sprintf("sort%v", o.keys)
}

// keyCol is one sort key over the rows of several batches, extracted for fast comparison.
type keyCol struct {
	kind  int // 0 int64, 1 uint64, 2 float64, 3 string, 4 bool
	i     []int64
	u     []uint64
	f     []float64
	s     []string
	b     []bool
	valid []bool
}

func (k *keyCol) add(arr arrow.Array) {
	for r := range arr.Len() {
		v := getValue(arr, r)
		k.valid = append(k.valid, v != nil)
		switch x := v.(type) {
		case int64:
			k.kind = 0
			k.i = append(k.i, x)
		case uint64:
			k.kind = 1
			k.u = append(k.u, x)
		case float64:
			k.kind = 2
			k.f = append(k.f, x)
		case string:
			k.kind = 3
			k.s = append(k.s, x)
		case []byte:
			k.kind = 3
			k.s = append(k.s, string(x))
		case bool:
			k.kind = 4
			k.b = append(k.b, x)
		case nil:
			k.i = append(k.i, 0)
			k.u = append(k.u, 0)
			k.f = append(k.f, 0)
			k.s = append(k.s, "")
			k.b = append(k.b, false)
		}
	}
}

func (k *keyCol) cmp(a, b int) int {
	va, vb := k.valid[a], k.valid[b]
	if !va || !vb {
		return compareValues(nilOr(va), nilOr(vb))
	}
	switch k.kind {
	case 0:
		return cmpOrdered(k.i[a], k.i[b])
	case 1:
		return compareValues(k.u[a], k.u[b])
	case 2:
		return compareValues(k.f[a], k.f[b])
	case 3:
		return cmpOrdered(k.s[a], k.s[b])
	}
	return compareValues(k.b[a], k.b[b])
}

// nilOr is a stand-in value for compareValues' null ordering.
func nilOr(valid bool) any {
	if valid {
		return true
	}
	return nil
}

// directed applies the sort direction to a comparison, keeping nulls last.
func directed(c int, desc, aNull, bNull bool) int {
	if desc && !aNull && !bNull {
		return -c
	}
	return c
}

// sortIndex sorts the rows of batches (stable) and returns them as refs.
func (o *sortOp) sortIndex(batches []arrow.Record, keyIdx []int) []rowRef {
	cols := make([]*keyCol, len(keyIdx))
	var refs []rowRef
	for k, ci := range keyIdx {
		kc := &keyCol{kind: -1}
		for _, b := range batches {
			kc.add(b.Column(ci))
		}
		// A column of nulls only: kind stays unset, every row compares equal.
		if kc.kind < 0 {
			kc.kind = 0
		}
		cols[k] = kc
	}
	for bi, b := range batches {
		for r := range int(b.NumRows()) {
			refs = append(refs, rowRef{int32(bi), int32(r)})
		}
	}
	global := make([]int, len(refs))
	for i := range refs {
		global[i] = i
	}
	slices.SortStableFunc(global, func(a, b int) int {
		for _, kc := range cols {
			if c := directed(kc.cmp(a, b), o.desc, !kc.valid[a], !kc.valid[b]); c != 0 {
				return c
			}
		}
		return 0
	})
	out := make([]rowRef, len(refs))
	for i, g := range global {
		out[i] = refs[g]
	}
	return out
}

func (o *sortOp) keyIndexes(schema *arrow.Schema) ([]int, error) {
	idx := make([]int, len(o.keys))
	for k, name := range o.keys {
		i, err := columnIndex(schema, name)
		if err != nil {
			return nil, err
		}
		if !scalarType(schema.Field(i).Type) {
			return nil, fmt.Errorf("%w: sort key %q has type %s", ErrUnsupportedType, name, schema.Field(i).Type)
		}
		idx[k] = i
	}
	return idx, nil
}

// emitSorted writes the refs of batches in chunks of BatchRows to fn.
func emitChunks(s *stage, schema *arrow.Schema, batches []arrow.Record, refs []rowRef, fn func(arrow.Record) error) error {
	n := s.x.opts.BatchRows
	for len(refs) > 0 {
		k := min(n, len(refs))
		rec, err := gather(s.mem(), schema, batches, refs[:k])
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
		refs = refs[k:]
	}
	return nil
}

func releaseAll(recs []arrow.Record) {
	for _, r := range recs {
		r.Release()
	}
}

func (o *sortOp) run(ctx context.Context, s *stage) error {
	var (
		schema *arrow.Schema
		keyIdx []int
		buf    []arrow.Record
		held   int64
		runs   []spillFile
	)
	defer func() {
		releaseAll(buf)
		s.st.setHeld(0)
	}()
	memCap := s.x.opts.MemoryCap
	flushRun := func() error {
		if len(buf) == 0 {
			return nil
		}
		w, err := s.newSpill("sort-run")
		if err != nil {
			return err
		}
		refs := o.sortIndex(buf, keyIdx)
		err = emitChunks(s, schema, buf, refs, func(rec arrow.Record) error {
			defer rec.Release()
			return w.write(rec)
		})
		if err != nil {
			w.abort()
			return err
		}
		sf, err := w.finish()
		if err != nil {
			return err
		}
		runs = append(runs, sf)
		releaseAll(buf)
		buf, held = nil, 0
		s.st.setHeld(0)
		return nil
	}
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		if schema == nil {
			schema = it.rec.Schema()
			var err error
			if keyIdx, err = o.keyIndexes(schema); err != nil {
				it.rec.Release()
				return err
			}
		} else if d := schemaDiff(schema, it.rec.Schema()); d != "" {
			it.rec.Release()
			return fmt.Errorf("batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		buf = append(buf, it.rec)
		// Keys extracted for sorting cost about 24 bytes a row per key on the Go heap.
		held += recordBytes(it.rec) + it.rec.NumRows()*int64(24*len(keyIdx)+16)
		s.st.setHeld(held)
		if held >= memCap*3/4 {
			if err := flushRun(); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if len(runs) == 0 {
		refs := o.sortIndex(buf, keyIdx)
		return emitChunks(s, schema, buf, refs, func(rec arrow.Record) error { return s.emit(ctx, rec, 0) })
	}
	if err := flushRun(); err != nil {
		return err
	}
	// Merge passes until the remaining runs can be merged at once under the cap.
	for {
		var maxBatch int64 = 1
		for _, r := range runs {
			if r.rows > 0 {
				maxBatch = max(maxBatch, r.bytes/((r.rows+int64(s.x.opts.BatchRows)-1)/int64(s.x.opts.BatchRows)))
			}
		}
		fanIn := int(max(2, memCap/(3*maxBatch)))
		if len(runs) <= fanIn {
			return o.merge(ctx, s, schema, keyIdx, runs, func(rec arrow.Record) error { return s.emit(ctx, rec, 0) })
		}
		var next []spillFile
		for len(runs) > 0 {
			k := min(fanIn, len(runs))
			w, err := s.newSpill("sort-merge")
			if err != nil {
				return err
			}
			err = o.merge(ctx, s, schema, keyIdx, runs[:k], func(rec arrow.Record) error {
				defer rec.Release()
				return w.write(rec)
			})
			if err != nil {
				w.abort()
				return err
			}
			sf, err := w.finish()
			if err != nil {
				return err
			}
			next = append(next, sf)
			runs = runs[k:]
		}
		runs = next
	}
}

// mergeHead is one run's current batch and row in a k-way merge.
type mergeHead struct {
	r    *spillReader
	run  int
	rec  arrow.Record
	src  int32 // index of rec in the pending sources
	row  int
	keys []arrow.Array
}

type mergeHeap struct {
	h    []*mergeHead
	desc bool
}

func (m *mergeHeap) Len() int { return len(m.h) }
func (m *mergeHeap) Less(i, j int) bool {
	a, b := m.h[i], m.h[j]
	for k := range a.keys {
		va, vb := getValue(a.keys[k], a.row), getValue(b.keys[k], b.row)
		if c := directed(compareValues(va, vb), m.desc, va == nil, vb == nil); c != 0 {
			return c < 0
		}
	}
	return a.run < b.run // stability: earlier runs hold earlier rows
}
func (m *mergeHeap) Swap(i, j int) { m.h[i], m.h[j] = m.h[j], m.h[i] }
func (m *mergeHeap) Push(x any)    { m.h = append(m.h, x.(*mergeHead)) }
func (m *mergeHeap) Pop() any {
	x := m.h[len(m.h)-1]
	m.h = m.h[:len(m.h)-1]
	return x
}

// merge k-way merges sorted runs, passing output batches of BatchRows rows to out (which owns
// them). The runs' files are removed.
func (o *sortOp) merge(ctx context.Context, s *stage, schema *arrow.Schema, keyIdx []int, runs []spillFile, out func(arrow.Record) error) error {
	var srcs []arrow.Record // batches referenced by the pending output rows
	var refs []rowRef
	h := &mergeHeap{desc: o.desc}
	var readers []*spillReader
	defer func() {
		for _, r := range readers {
			r.close()
		}
		releaseAll(srcs)
	}()
	load := func(m *mergeHead) (bool, error) {
		rec, err := m.r.next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		m.rec, m.row = rec, 0
		m.src = int32(len(srcs))
		srcs = append(srcs, rec)
		m.keys = m.keys[:0]
		for _, ci := range keyIdx {
			m.keys = append(m.keys, rec.Column(ci))
		}
		return true, nil
	}
	for i, sf := range runs {
		r, err := openSpill(sf, s.mem())
		if err != nil {
			return err
		}
		readers = append(readers, r)
		m := &mergeHead{r: r, run: i}
		ok, err := load(m)
		if err != nil {
			return err
		}
		if ok {
			h.h = append(h.h, m)
		}
	}
	heap.Init(h)
	flush := func() error {
		if len(refs) == 0 {
			return nil
		}
		rec, err := gather(s.mem(), schema, srcs, refs)
		if err != nil {
			return err
		}
		refs = refs[:0]
		// Keep only the batches the heads still read, renumbered.
		var keep []arrow.Record
		for _, m := range h.h {
			m.src = int32(len(keep))
			keep = append(keep, m.rec)
			m.rec.Retain()
		}
		releaseAll(srcs)
		srcs = keep
		return out(rec)
	}
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		m := h.h[0]
		refs = append(refs, rowRef{m.src, int32(m.row)})
		m.row++
		if m.row >= int(m.rec.NumRows()) {
			ok, err := load(m)
			if err != nil {
				return err
			}
			if !ok {
				heap.Pop(h)
			} else {
				heap.Fix(h, 0)
			}
		} else {
			heap.Fix(h, 0)
		}
		if len(refs) >= s.x.opts.BatchRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
