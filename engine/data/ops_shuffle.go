package data

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/apache/arrow/go/v17/arrow"
)

// shuffleBuckets is the number of spill buckets RandomShuffle scatters rows into once its input
// passes MemoryCap; each bucket is then shuffled in memory, so inputs up to about this many times
// the cap shuffle within it.
const shuffleBuckets = 16

// RandomShuffle permutes the rows uniformly at random. The same seed over the same input gives
// the same order. Past MemoryCap, rows are scattered at random into spill buckets, each of which
// is permuted in memory when read back.
func (d *Dataset) RandomShuffle(seed int64) *Dataset {
	return newDataset(&shuffleOp{seed: seed}, d)
}

type shuffleOp struct{ seed int64 }

func (o *shuffleOp) name() string { return fmt.Sprintf("random_shuffle(%d)", o.seed) }

// permute emits the rows of batches in a random order.
func permute(ctx context.Context, s *stage, rng *rand.Rand, batches []arrow.Record) error {
	if len(batches) == 0 {
		return nil
	}
	var refs []rowRef
	for bi, b := range batches {
		for r := range int(b.NumRows()) {
			refs = append(refs, rowRef{int32(bi), int32(r)})
		}
	}
	rng.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
	return emitChunks(s, batches[0].Schema(), batches, refs, func(rec arrow.Record) error { return s.emit(ctx, rec, 0) })
}

func (o *shuffleOp) run(ctx context.Context, s *stage) error {
	rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(o.seed)^0x9e3779b97f4a7c15))
	var (
		buf     []arrow.Record
		held    int64
		schema  *arrow.Schema
		buckets []*spillWriter
	)
	defer func() {
		releaseAll(buf)
		for _, w := range buckets {
			if w != nil {
				w.abort()
			}
		}
		s.st.setHeld(0)
	}()
	scatter := func(rec arrow.Record) error { return scatterRows(s, rng, schema, rec, buckets) }
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		if schema == nil {
			schema = it.rec.Schema()
		} else if d := schemaDiff(schema, it.rec.Schema()); d != "" {
			it.rec.Release()
			return fmt.Errorf("batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		if buckets != nil {
			err := scatter(it.rec)
			it.rec.Release()
			if err != nil {
				return err
			}
			continue
		}
		buf = append(buf, it.rec)
		held += recordBytes(it.rec) + 8*it.rec.NumRows()
		s.st.setHeld(held)
		if held >= s.x.opts.MemoryCap/2 {
			buckets = make([]*spillWriter, shuffleBuckets)
			for k := range buckets {
				w, err := s.newSpill("shuffle")
				if err != nil {
					return err
				}
				buckets[k] = w
			}
			for _, b := range buf {
				if err := scatter(b); err != nil {
					return err
				}
			}
			releaseAll(buf)
			buf, held = nil, 0
			s.st.setHeld(0)
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if buckets == nil {
		return permute(ctx, s, rng, buf)
	}
	files := make([]spillFile, len(buckets))
	for k, w := range buckets {
		sf, err := w.finish()
		buckets[k] = nil
		if err != nil {
			return err
		}
		files[k] = sf
	}
	for _, sf := range files {
		if err := permuteFile(ctx, s, rng, schema, sf, 0); err != nil {
			return err
		}
	}
	return nil
}

// permuteFile emits the rows of a spilled bucket in random order: in memory when it fits under
// half the cap, else scattered again into sub-buckets first.
func permuteFile(ctx context.Context, s *stage, rng *rand.Rand, schema *arrow.Schema, sf spillFile, depth int) error {
	r, err := openSpill(sf, s.mem())
	if err != nil {
		return err
	}
	defer r.close()
	if 2*sf.bytes > s.x.opts.MemoryCap && depth < maxSplitDepth {
		subs := make([]*spillWriter, shuffleBuckets)
		defer func() {
			for _, w := range subs {
				if w != nil {
					w.abort()
				}
			}
		}()
		for k := range subs {
			if subs[k], err = s.newSpill("shuffle"); err != nil {
				return err
			}
		}
		for {
			rec, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			err = scatterRows(s, rng, schema, rec, subs)
			rec.Release()
			if err != nil {
				return err
			}
		}
		for k, w := range subs {
			f, err := w.finish()
			subs[k] = nil
			if err != nil {
				return err
			}
			if err := permuteFile(ctx, s, rng, schema, f, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	var part []arrow.Record
	defer func() { releaseAll(part) }()
	for {
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		part = append(part, rec)
	}
	s.st.setHeld(sf.bytes)
	return permute(ctx, s, rng, part)
}

// scatterRows writes each row of rec to a random one of buckets.
func scatterRows(s *stage, rng *rand.Rand, schema *arrow.Schema, rec arrow.Record, buckets []*spillWriter) error {
	refs := make([][]rowRef, len(buckets))
	for r := range int(rec.NumRows()) {
		k := rng.IntN(len(buckets))
		refs[k] = append(refs[k], rowRef{0, int32(r)})
	}
	for k, rr := range refs {
		if len(rr) == 0 {
			continue
		}
		part, err := gather(s.mem(), schema, []arrow.Record{rec}, rr)
		if err != nil {
			return err
		}
		err = buckets[k].write(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// Repartition splits the rows into n partitions of nearly equal size, in order: partition k
// holds rows [k*N/n, (k+1)*N/n) of the N input rows. Writers put each partition in its own file.
// The input is counted first, held in memory up to MemoryCap and spilled past it.
func (d *Dataset) Repartition(n int) *Dataset {
	if n <= 0 {
		return failed("repartition", fmt.Errorf("%w: %d partitions", ErrBadExpr, n))
	}
	return newDataset(&repartitionOp{n: n}, d)
}

type repartitionOp struct{ n int }

func (o *repartitionOp) name() string { return fmt.Sprintf("repartition(%d)", o.n) }

func (o *repartitionOp) run(ctx context.Context, s *stage) error {
	var (
		buf    []arrow.Record
		held   int64
		total  int64
		schema *arrow.Schema
		w      *spillWriter
	)
	defer func() {
		releaseAll(buf)
		if w != nil {
			w.abort()
		}
		s.st.setHeld(0)
	}()
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		if schema == nil {
			schema = it.rec.Schema()
		} else if d := schemaDiff(schema, it.rec.Schema()); d != "" {
			it.rec.Release()
			return fmt.Errorf("batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		total += it.rec.NumRows()
		if w != nil {
			err := w.write(it.rec)
			it.rec.Release()
			if err != nil {
				return err
			}
			continue
		}
		buf = append(buf, it.rec)
		held += recordBytes(it.rec)
		s.st.setHeld(held)
		if held >= s.x.opts.MemoryCap {
			var err error
			if w, err = s.newSpill("repartition"); err != nil {
				return err
			}
			for _, b := range buf {
				if err := w.write(b); err != nil {
					return err
				}
			}
			releaseAll(buf)
			buf, held = nil, 0
			s.st.setHeld(0)
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var row int64
	part := 0
	bound := func(k int) int64 { return int64(k) * total / int64(o.n) }
	out := func(rec arrow.Record) error {
		defer rec.Release()
		for off := int64(0); off < rec.NumRows(); {
			for part < o.n-1 && row >= bound(part+1) {
				part++
			}
			end := rec.NumRows()
			if part < o.n-1 {
				end = min(end, off+bound(part+1)-row)
			}
			if err := s.emit(ctx, rec.NewSlice(off, end), part); err != nil {
				return err
			}
			row += end - off
			off = end
		}
		return nil
	}
	if w == nil {
		for len(buf) > 0 {
			b := buf[0]
			buf = buf[1:]
			if err := out(b); err != nil {
				return err
			}
		}
		return nil
	}
	sf, err := w.finish()
	w = nil
	if err != nil {
		return err
	}
	r, err := openSpill(sf, s.mem())
	if err != nil {
		return err
	}
	defer r.close()
	for {
		rec, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := out(rec); err != nil {
			return err
		}
	}
}
