package data

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"os"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// JoinType is the kind of Join.
type JoinType string

// Join kinds.
const (
	JoinInner JoinType = "inner" // rows with a match on both sides
	JoinLeft  JoinType = "left"  // every left row; right columns null where nothing matches
)

// joinPartitions is the number of hash partitions a join spills both sides into when its
// build side passes MemoryCap.
const joinPartitions = 16

// maxSplitDepth bounds how many times a spilled partition that is still over the cap is split
// again (by a fresh hash seed). Keys that all hash alike (one huge key) cannot be split; past
// this depth such a partition is processed over the cap.
const maxSplitDepth = 3

// Join is a hash join of d (the probe side, streamed) with right (the build side, held in memory
// up to MemoryCap) on the columns named in on, which must exist with the same types on both
// sides. Null keys match nothing. Output columns: d's columns, then right's other columns
// (renamed name_right where they clash). Output follows d's order unless the build side
// spilled, in which case both sides are hash partitioned to disk and joined partition by
// partition (a grace hash join) and the order is unspecified. A left join whose right side
// yields no batches fails: the right columns are unknown.
func (d *Dataset) Join(right *Dataset, on []string, how JoinType) *Dataset {
	if len(on) == 0 {
		return failed("join", fmt.Errorf("%w: no join keys", ErrBadExpr))
	}
	if how != JoinInner && how != JoinLeft {
		return failed("join", fmt.Errorf("%w: join type %q (inner, left)", ErrBadExpr, how))
	}
	return newDataset(&joinOp{on: on, how: how}, d, right)
}

type joinOp struct {
	on  []string
	how JoinType
}

func (o *joinOp) name() string { return fmt.Sprintf("join(%s on %v)", o.how, o.on) }

// joinSide is one input's schema and key columns.
type joinSide struct {
	schema *arrow.Schema
	keys   []int
}

func (o *joinOp) side(schema *arrow.Schema, which string) (joinSide, error) {
	js := joinSide{schema: schema}
	for _, k := range o.on {
		i, err := columnIndex(schema, k)
		if err != nil {
			return js, fmt.Errorf("%s side: join key: %w", which, err)
		}
		if !scalarType(schema.Field(i).Type) {
			return js, fmt.Errorf("%w: %s join key %q has type %s", ErrUnsupportedType, which, k, schema.Field(i).Type)
		}
		js.keys = append(js.keys, i)
	}
	return js, nil
}

func (o *joinOp) outSchema(l, r joinSide) (*arrow.Schema, []int, error) {
	fields := append([]arrow.Field(nil), l.schema.Fields()...)
	for k := range o.on {
		lt, rt := l.schema.Field(l.keys[k]).Type, r.schema.Field(r.keys[k]).Type
		if !arrow.TypeEqual(lt, rt) {
			return nil, nil, fmt.Errorf("%w: join key %q is %s on the left, %s on the right", ErrSchemaMismatch, o.on[k], lt, rt)
		}
	}
	isKey := map[int]bool{}
	for _, i := range r.keys {
		isKey[i] = true
	}
	names := map[string]bool{}
	for _, f := range fields {
		names[f.Name] = true
	}
	var rcols []int
	for i, f := range r.schema.Fields() {
		if isKey[i] {
			continue
		}
		for names[f.Name] {
			f.Name += "_right"
		}
		names[f.Name] = true
		f.Nullable = true
		fields = append(fields, f)
		rcols = append(rcols, i)
	}
	return arrow.NewSchema(fields, nil), rcols, nil
}

// hashTable is an in-memory build side.
type hashTable struct {
	batches []arrow.Record
	rows    map[string][]rowRef
	bytes   int64
}

func (h *hashTable) add(rec arrow.Record, keys []int, keyBuf []byte) []byte {
	b := int32(len(h.batches))
	h.batches = append(h.batches, rec)
	cols := make([]arrow.Array, len(keys))
	for k, i := range keys {
		cols[k] = rec.Column(i)
	}
	h.bytes += recordBytes(rec)
	for r := range int(rec.NumRows()) {
		if keyHasNull(cols, r) {
			continue
		}
		keyBuf = rowKey(keyBuf[:0], cols, r)
		refs, ok := h.rows[string(keyBuf)]
		if !ok {
			h.bytes += int64(len(keyBuf)) + 64
		}
		h.rows[string(keyBuf)] = append(refs, rowRef{b, int32(r)})
		h.bytes += 8
	}
	return keyBuf
}

func (h *hashTable) release() {
	releaseAll(h.batches)
	h.batches = nil
	h.rows = nil
}

// probe joins one left batch against h and emits the output in chunks of BatchRows.
func (o *joinOp) probe(ctx context.Context, s *stage, out *arrow.Schema, l joinSide, rcols []int, h *hashTable, rec arrow.Record, part int, keyBuf []byte) ([]byte, error) {
	cols := make([]arrow.Array, len(l.keys))
	for k, i := range l.keys {
		cols[k] = rec.Column(i)
	}
	var lrefs, rrefs []rowRef
	flush := func() error {
		if len(lrefs) == 0 {
			return nil
		}
		res, err := o.build(s, out, l, rcols, h, rec, lrefs, rrefs)
		if err != nil {
			return err
		}
		lrefs, rrefs = lrefs[:0], rrefs[:0]
		return s.emit(ctx, res, part)
	}
	for r := range int(rec.NumRows()) {
		var matches []rowRef
		if !keyHasNull(cols, r) {
			keyBuf = rowKey(keyBuf[:0], cols, r)
			matches = h.rows[string(keyBuf)]
		}
		if len(matches) == 0 && o.how == JoinLeft {
			lrefs = append(lrefs, rowRef{0, int32(r)})
			rrefs = append(rrefs, rowRef{-1, 0})
		}
		for _, m := range matches {
			lrefs = append(lrefs, rowRef{0, int32(r)})
			rrefs = append(rrefs, m)
			if len(lrefs) >= s.x.opts.BatchRows {
				if err := flush(); err != nil {
					return keyBuf, err
				}
			}
		}
		if len(lrefs) >= s.x.opts.BatchRows {
			if err := flush(); err != nil {
				return keyBuf, err
			}
		}
	}
	return keyBuf, flush()
}

func (o *joinOp) build(s *stage, out *arrow.Schema, l joinSide, rcols []int, h *hashTable, rec arrow.Record, lrefs, rrefs []rowRef) (arrow.Record, error) {
	left, err := gather(s.mem(), l.schema, []arrow.Record{rec}, lrefs)
	if err != nil {
		return nil, err
	}
	defer left.Release()
	cols := append([]arrow.Array(nil), left.Columns()...)
	var made []arrow.Array
	defer func() {
		for _, c := range made {
			c.Release()
		}
	}()
	in := make([]arrow.Array, len(h.batches))
	for _, ci := range rcols {
		for k, b := range h.batches {
			in[k] = b.Column(ci)
		}
		dt := out.Field(len(cols)).Type
		c, err := gatherColumn(s.mem(), dt, in, rrefs)
		if err != nil {
			return nil, err
		}
		made = append(made, c)
		cols = append(cols, c)
	}
	return array.NewRecord(out, cols, int64(len(lrefs))), nil
}

func (o *joinOp) run(ctx context.Context, s *stage) error {
	h := &hashTable{rows: map[string][]rowRef{}}
	defer h.release()
	defer s.st.setHeld(0)
	var (
		r      joinSide
		keyBuf []byte
		rparts []*spillWriter
		seed   = maphash.MakeSeed()
	)
	defer func() {
		for _, w := range rparts {
			if w != nil {
				w.abort()
			}
		}
	}()
	partition := func(rec arrow.Record, keys []int, parts []*spillWriter, keepNull bool) error {
		var err error
		keyBuf, err = splitRecord(s, rec, keys, parts, keepNull, seed, keyBuf)
		return err
	}
	newParts := func(tag string) ([]*spillWriter, error) {
		parts := make([]*spillWriter, joinPartitions)
		for p := range parts {
			w, err := s.newSpill(tag)
			if err != nil {
				for _, x := range parts[:p] {
					x.abort()
				}
				return nil, err
			}
			parts[p] = w
		}
		return parts, nil
	}
	batch := 0
	for it := range s.ins[1] {
		s.counted(it)
		if r.schema == nil {
			var err error
			if r, err = o.side(it.rec.Schema(), "right"); err != nil {
				it.rec.Release()
				return err
			}
		} else if d := schemaDiff(r.schema, it.rec.Schema()); d != "" {
			it.rec.Release()
			return fmt.Errorf("right side batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		if rparts != nil {
			err := partition(it.rec, r.keys, rparts, false)
			it.rec.Release()
			if err != nil {
				return err
			}
			continue
		}
		keyBuf = h.add(it.rec, r.keys, keyBuf)
		s.st.setHeld(h.bytes)
		if h.bytes > s.x.opts.MemoryCap {
			var err error
			if rparts, err = newParts("join-right"); err != nil {
				return err
			}
			for _, b := range h.batches {
				if err := partition(b, r.keys, rparts, false); err != nil {
					return err
				}
			}
			h.release()
			h.rows = map[string][]rowRef{}
			s.st.setHeld(0)
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var (
		l      joinSide
		out    *arrow.Schema
		rcols  []int
		lparts []*spillWriter
	)
	defer func() {
		for _, w := range lparts {
			if w != nil {
				w.abort()
			}
		}
	}()
	batch = 0
	for it := range s.ins[0] {
		s.counted(it)
		if l.schema == nil {
			var err error
			if l, err = o.side(it.rec.Schema(), "left"); err != nil {
				it.rec.Release()
				return err
			}
			if r.schema == nil {
				// An empty right side: no columns to add beyond what we can know.
				if o.how == JoinInner {
					it.rec.Release()
					s.stopInputs()
					return nil
				}
				return fmt.Errorf("%w: left join with an empty right side has no right schema", ErrBadInput)
			}
			if out, rcols, err = o.outSchema(l, r); err != nil {
				it.rec.Release()
				return err
			}
			if rparts != nil {
				if lparts, err = newParts("join-left"); err != nil {
					it.rec.Release()
					return err
				}
			}
		} else if d := schemaDiff(l.schema, it.rec.Schema()); d != "" {
			it.rec.Release()
			return fmt.Errorf("left side batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		var err error
		if lparts != nil {
			err = partition(it.rec, l.keys, lparts, o.how == JoinLeft)
		} else {
			keyBuf, err = o.probe(ctx, s, out, l, rcols, h, it.rec, it.part, keyBuf)
		}
		it.rec.Release()
		if err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if lparts == nil {
		return nil
	}
	// Grace hash join: partition p of the right side against partition p of the left.
	for p := range joinPartitions {
		rf, err := rparts[p].finish()
		rparts[p] = nil
		if err != nil {
			return err
		}
		lf, err := lparts[p].finish()
		lparts[p] = nil
		if err != nil {
			return err
		}
		if err := o.joinPartition(ctx, s, out, l, r, rcols, rf, lf, p, keyBuf, 0); err != nil {
			return err
		}
	}
	return nil
}

// splitRecord writes rec's rows to parts by the hash of their key: rows with a null key go to
// partition 0 when keepNull, and nowhere otherwise.
func splitRecord(s *stage, rec arrow.Record, keys []int, parts []*spillWriter, keepNull bool, seed maphash.Seed, keyBuf []byte) ([]byte, error) {
	cols := make([]arrow.Array, len(keys))
	for k, i := range keys {
		cols[k] = rec.Column(i)
	}
	refs := make([][]rowRef, len(parts))
	for row := range int(rec.NumRows()) {
		p := 0
		if keyHasNull(cols, row) {
			if !keepNull {
				continue
			}
		} else {
			keyBuf = rowKey(keyBuf[:0], cols, row)
			p = int(maphash.Bytes(seed, keyBuf) % uint64(len(parts)))
		}
		refs[p] = append(refs[p], rowRef{0, int32(row)})
	}
	for p, rr := range refs {
		if len(rr) == 0 {
			continue
		}
		sub, err := gather(s.mem(), rec.Schema(), []arrow.Record{rec}, rr)
		if err != nil {
			return keyBuf, err
		}
		err = parts[p].write(sub)
		sub.Release()
		if err != nil {
			return keyBuf, err
		}
	}
	return keyBuf, nil
}

// splitFile re-partitions a spill file by key hash under a fresh seed, removing it.
func splitFile(s *stage, sf spillFile, keys []int, keepNull bool, seed maphash.Seed, tag string) ([]spillFile, error) {
	parts := make([]*spillWriter, joinPartitions)
	defer func() {
		for _, w := range parts {
			if w != nil {
				w.abort()
			}
		}
	}()
	for k := range parts {
		w, err := s.newSpill(tag)
		if err != nil {
			return nil, err
		}
		parts[k] = w
	}
	r, err := openSpill(sf, s.mem())
	if err != nil {
		return nil, err
	}
	defer r.close()
	var keyBuf []byte
	for {
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		keyBuf, err = splitRecord(s, rec, keys, parts, keepNull, seed, keyBuf)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	out := make([]spillFile, len(parts))
	for k, w := range parts {
		f, err := w.finish()
		parts[k] = nil
		if err != nil {
			return nil, err
		}
		out[k] = f
	}
	return out, nil
}

func (o *joinOp) joinPartition(ctx context.Context, s *stage, out *arrow.Schema, l, r joinSide, rcols []int, rf, lf spillFile, p int, keyBuf []byte, depth int) error {
	// A build partition whose hash table would pass the cap (about twice its batches' bytes) is
	// split again under a fresh seed, both sides alike.
	if 2*rf.bytes > s.x.opts.MemoryCap && depth < maxSplitDepth {
		seed := maphash.MakeSeed()
		rsub, err := splitFile(s, rf, r.keys, false, seed, "join-right")
		if err != nil {
			os.Remove(lf.path)
			return err
		}
		lsub, err := splitFile(s, lf, l.keys, o.how == JoinLeft, seed, "join-left")
		if err != nil {
			return err
		}
		for k := range rsub {
			if err := o.joinPartition(ctx, s, out, l, r, rcols, rsub[k], lsub[k], p, keyBuf, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	h := &hashTable{rows: map[string][]rowRef{}}
	defer h.release()
	rr, err := openSpill(rf, s.mem())
	if err != nil {
		return err
	}
	for {
		rec, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			rr.close()
			return err
		}
		keyBuf = h.add(rec, r.keys, keyBuf)
		s.st.setHeld(h.bytes)
	}
	rr.close()
	if len(h.batches) == 0 && o.how == JoinInner {
		os.Remove(lf.path)
		return nil
	}
	lr, err := openSpill(lf, s.mem())
	if err != nil {
		return err
	}
	defer lr.close()
	for {
		rec, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		keyBuf, err = o.probe(ctx, s, out, l, rcols, h, rec, p, keyBuf)
		rec.Release()
		if err != nil {
			return err
		}
	}
}
