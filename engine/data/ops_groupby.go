package data

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// AggFunc names an aggregate function.
type AggFunc string

// Aggregate functions. Nulls are skipped; an aggregate over no values (other than count) is null.
const (
	AggCount AggFunc = "count" // rows (Column empty) or non-null values of Column: int64
	AggSum   AggFunc = "sum"   // int64 for integer columns (wrapping), float64 for floats
	AggMean  AggFunc = "mean"  // float64
	AggMin   AggFunc = "min"   // the column's type; any type Sort accepts
	AggMax   AggFunc = "max"   // the column's type
)

// Agg is one output column of Aggregate: Func over Column, named Name.
type Agg struct {
	Name   string
	Func   AggFunc
	Column string
}

var aggRe = regexp.MustCompile(`^\s*([a-z_]+)\s*\(\s*([^()]*?)\s*\)\s*$`)

// ParseAgg parses an aggregate written as in pipeline JSON: "count()", "count(col)",
// "sum(col)", "mean(col)", "min(col)", "max(col)"; a column name may be `quoted`.
func ParseAgg(name, spec string) (Agg, error) {
	m := aggRe.FindStringSubmatch(spec)
	if m == nil {
		return Agg{}, fmt.Errorf("%w: aggregate %q: %q is not func(column)", ErrBadExpr, name, spec)
	}
	a := Agg{Name: name, Func: AggFunc(m[1]), Column: strings.Trim(m[2], "`")}
	return a, a.check()
}

func (a Agg) check() error {
	if a.Name == "" {
		return fmt.Errorf("%w: aggregate with no output name", ErrBadExpr)
	}
	switch a.Func {
	case AggCount:
		return nil
	case AggSum, AggMean, AggMin, AggMax:
		if a.Column == "" {
			return fmt.Errorf("%w: aggregate %q: %s needs a column", ErrBadExpr, a.Name, a.Func)
		}
		return nil
	}
	return fmt.Errorf("%w: aggregate %q: unknown function %q (count, sum, mean, min, max)", ErrBadExpr, a.Name, a.Func)
}

// Grouped is a dataset grouped by key columns, waiting for Aggregate.
type Grouped struct {
	d    *Dataset
	keys []string
}

// GroupBy groups rows by the key columns. With no keys, Aggregate makes one row over all rows.
func (d *Dataset) GroupBy(keys ...string) *Grouped { return &Grouped{d: d, keys: keys} }

// Aggregate computes aggs per group: one output row per distinct key (nulls form a group), with
// the key columns then one column per aggregate. It is a partitioned hash aggregation: when the
// group table passes MemoryCap its partial states are spilled into hash partitions, which are
// merged one at a time at the end. Output order is unspecified.
func (g *Grouped) Aggregate(aggs ...Agg) *Dataset {
	if len(aggs) == 0 {
		return failed("aggregate", fmt.Errorf("%w: no aggregates", ErrBadExpr))
	}
	seen := map[string]bool{}
	for _, k := range g.keys {
		seen[k] = true
	}
	for _, a := range aggs {
		if err := a.check(); err != nil {
			return failed("aggregate", err)
		}
		if seen[a.Name] {
			return failed("aggregate", fmt.Errorf("%w: output column %q named twice", ErrBadExpr, a.Name))
		}
		seen[a.Name] = true
	}
	return newDataset(&groupOp{keys: g.keys, aggs: aggs}, g.d)
}

type groupOp struct {
	keys []string
	aggs []Agg
}

func (o *groupOp) name() string {
	var parts []string
	for _, a := range o.aggs {
		parts = append(parts, fmt.Sprintf("%s=%s(%s)", a.Name, a.Func, a.Column))
	}
	return fmt.Sprintf("groupby%v aggregate(%s)", o.keys, strings.Join(parts, ", "))
}

type aggState struct {
	n    int64
	sumI int64
	sumF float64
	min  any
	max  any
}

// group is one key's partial aggregates.
type group struct {
	st []aggState
}

// groupPartitions is the number of hash partitions spilled groups go to.
const groupPartitions = 16

// aggPlan is what each aggregate reads.
type aggPlan struct {
	col   int // -1 for count()
	float bool
	dt    arrow.DataType
}

func (o *groupOp) plan(schema *arrow.Schema) ([]int, []aggPlan, error) {
	keyIdx := make([]int, len(o.keys))
	for k, name := range o.keys {
		i, err := columnIndex(schema, name)
		if err != nil {
			return nil, nil, fmt.Errorf("group key: %w", err)
		}
		if !scalarType(schema.Field(i).Type) {
			return nil, nil, fmt.Errorf("%w: group key %q has type %s", ErrUnsupportedType, name, schema.Field(i).Type)
		}
		keyIdx[k] = i
	}
	plans := make([]aggPlan, len(o.aggs))
	for k, a := range o.aggs {
		if a.Column == "" {
			plans[k] = aggPlan{col: -1}
			continue
		}
		i, err := columnIndex(schema, a.Column)
		if err != nil {
			return nil, nil, fmt.Errorf("aggregate %q: %w", a.Name, err)
		}
		dt := schema.Field(i).Type
		t, ok := vtypeOf(dt)
		switch {
		case a.Func == AggCount:
		case !scalarType(dt):
			return nil, nil, fmt.Errorf("%w: aggregate %q: column %q has type %s", ErrUnsupportedType, a.Name, a.Column, dt)
		case (a.Func == AggSum || a.Func == AggMean) && (!ok || (t != vInt && t != vFloat && t != vNull)):
			return nil, nil, fmt.Errorf("%w: aggregate %q: %s of column %q of type %s", ErrUnsupportedType, a.Name, a.Func, a.Column, dt)
		}
		plans[k] = aggPlan{col: i, float: t == vFloat, dt: dt}
	}
	return keyIdx, plans, nil
}

func (st *aggState) update(f AggFunc, p aggPlan, arr arrow.Array, r int) {
	if p.col < 0 {
		st.n++
		return
	}
	if arr.IsNull(r) || arr.DataType().ID() == arrow.NULL {
		return
	}
	st.n++
	switch f {
	case AggSum, AggMean:
		switch a := arr.(type) {
		case *array.Int64:
			st.sumI += a.Value(r)
		case *array.Float64:
			st.sumF += a.Value(r)
		default:
			switch v := getValue(arr, r).(type) {
			case int64:
				st.sumI += v
			case uint64:
				st.sumI += int64(v)
			case float64:
				st.sumF += v
			}
		}
	case AggMin, AggMax:
		v := getValue(arr, r)
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		if f == AggMin && (st.min == nil || compareValues(v, st.min) < 0) {
			st.min = v
		}
		if f == AggMax && (st.max == nil || compareValues(v, st.max) > 0) {
			st.max = v
		}
	}
}

func (st *aggState) merge(f AggFunc, o aggState) {
	st.n += o.n
	st.sumI += o.sumI
	st.sumF += o.sumF
	if o.min != nil && (st.min == nil || compareValues(o.min, st.min) < 0) {
		st.min = o.min
	}
	if o.max != nil && (st.max == nil || compareValues(o.max, st.max) > 0) {
		st.max = o.max
	}
}

func (st *aggState) size() int64 {
	n := int64(64)
	if s, ok := st.min.(string); ok {
		n += int64(len(s))
	}
	if s, ok := st.max.(string); ok {
		n += int64(len(s))
	}
	return n
}

func encodeGroup(buf []byte, key string, g *group) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	for _, st := range g.st {
		buf = binary.AppendVarint(buf, st.n)
		buf = binary.AppendVarint(buf, st.sumI)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(st.sumF))
		buf = appendKeyValue(buf, st.min)
		buf = appendKeyValue(buf, st.max)
	}
	return buf
}

func decodeGroup(r *bufio.Reader, naggs int) (string, *group, error) {
	klen, err := binary.ReadUvarint(r)
	if err != nil {
		return "", nil, err // io.EOF at a record boundary ends the file
	}
	key := make([]byte, klen)
	if _, err := io.ReadFull(r, key); err != nil {
		return "", nil, fmt.Errorf("spilled group: %w", err)
	}
	g := &group{st: make([]aggState, naggs)}
	for k := range g.st {
		st := &g.st[k]
		if st.n, err = binary.ReadVarint(r); err != nil {
			return "", nil, fmt.Errorf("spilled group: %w", err)
		}
		if st.sumI, err = binary.ReadVarint(r); err != nil {
			return "", nil, fmt.Errorf("spilled group: %w", err)
		}
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", nil, fmt.Errorf("spilled group: %w", err)
		}
		st.sumF = math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
		if st.min, err = readValue(r); err != nil {
			return "", nil, err
		}
		if st.max, err = readValue(r); err != nil {
			return "", nil, err
		}
	}
	return string(key), g, nil
}

// readValue reads one appendKeyValue encoding from r.
func readValue(r *bufio.Reader) (any, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("spilled group: %w", err)
	}
	var buf []byte
	switch tag {
	case kInt, kUint, kFloat:
		buf = make([]byte, 9)
		buf[0] = tag
		if _, err := io.ReadFull(r, buf[1:]); err != nil {
			return nil, fmt.Errorf("spilled group: %w", err)
		}
	case kString, kBytes:
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("spilled group: %w", err)
		}
		buf = binary.AppendUvarint([]byte{tag}, n)
		h := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[h:]); err != nil {
			return nil, fmt.Errorf("spilled group: %w", err)
		}
	default:
		buf = []byte{tag}
	}
	v, _, err := readKeyValue(buf)
	return v, err
}

func (o *groupOp) run(ctx context.Context, s *stage) error {
	var (
		schema *arrow.Schema
		keyIdx []int
		plans  []aggPlan
		held   int64
		parts  []*os.File
		pw     []*bufio.Writer
	)
	groups := map[string]*group{}
	// With one integer key column, non-null keys live in intGroups (hashing an int64 is several
	// times cheaper than hashing its encoded bytes) and are folded into groups before a spill or
	// the output.
	var intFast bool
	intGroups := map[int64]*group{}
	fold := func() {
		for k, g := range intGroups {
			groups[string(appendKeyValue(nil, k))] = g
		}
		clear(intGroups)
	}
	seed := maphash.MakeSeed()
	defer func() {
		for _, f := range parts {
			f.Close()
			os.Remove(f.Name())
		}
		s.st.setHeld(0)
	}()
	spill := func() error {
		if parts == nil {
			dir, err := s.x.tempDir()
			if err != nil {
				return err
			}
			for p := range groupPartitions {
				f, err := os.CreateTemp(dir, fmt.Sprintf("groupby-p%02d-*.bin", p))
				if err != nil {
					return fmt.Errorf("spill: %w", err)
				}
				parts = append(parts, f)
				pw = append(pw, bufio.NewWriterSize(f, 1<<15))
			}
		}
		fold()
		var buf []byte
		for key, g := range groups {
			p := maphash.String(seed, key) % groupPartitions
			buf = encodeGroup(buf[:0], key, g)
			if _, err := pw[p].Write(buf); err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			s.st.spilled.Add(int64(len(buf)))
		}
		clear(groups)
		held = 0
		s.st.setHeld(0)
		return nil
	}
	var keyBuf []byte
	var gs []*group
	var keyCols, aggCols []arrow.Array
	batch := 0
	for it := range s.ins[0] {
		s.counted(it)
		rec := it.rec
		if schema == nil {
			schema = rec.Schema()
			var err error
			if keyIdx, plans, err = o.plan(schema); err != nil {
				rec.Release()
				return err
			}
			if len(keyIdx) == 1 {
				switch schema.Field(keyIdx[0]).Type.ID() {
				case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.DATE32, arrow.DATE64,
					arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64, arrow.DURATION:
					intFast = true
				}
			}
		} else if d := schemaDiff(schema, rec.Schema()); d != "" {
			rec.Release()
			return fmt.Errorf("batch %d: %w: %s", batch, ErrSchemaMismatch, d)
		}
		batch++
		keyCols = keyCols[:0]
		for _, i := range keyIdx {
			keyCols = append(keyCols, rec.Column(i))
		}
		aggCols = aggCols[:0]
		for _, p := range plans {
			if p.col >= 0 {
				aggCols = append(aggCols, rec.Column(p.col))
			} else {
				aggCols = append(aggCols, nil)
			}
		}
		n := int(rec.NumRows())
		if cap(gs) < n {
			gs = make([]*group, n)
		}
		gs = gs[:n]
		var ints []int64
		if intFast {
			if a, ok := keyCols[0].(*array.Int64); ok {
				ints = a.Int64Values()
			}
		}
		for r := range n {
			if intFast && keyCols[0].IsValid(r) {
				var v int64
				if ints != nil {
					v = ints[r]
				} else {
					v = getValue(keyCols[0], r).(int64)
				}
				g, ok := intGroups[v]
				if !ok {
					g = &group{st: make([]aggState, len(o.aggs))}
					intGroups[v] = g
					held += 9 + 96 + int64(len(o.aggs))*64
				}
				gs[r] = g
				continue
			}
			keyBuf = rowKey(keyBuf[:0], keyCols, r)
			g, ok := groups[string(keyBuf)]
			if !ok {
				g = &group{st: make([]aggState, len(o.aggs))}
				groups[string(keyBuf)] = g
				held += int64(len(keyBuf)) + 96 + int64(len(o.aggs))*64
			}
			gs[r] = g
		}
		// One aggregate at a time over the batch, with typed loops for the common cases.
		for k, a := range o.aggs {
			arr := aggCols[k]
			switch {
			case plans[k].col < 0:
				for _, g := range gs {
					g.st[k].n++
				}
			case (a.Func == AggSum || a.Func == AggMean || a.Func == AggCount) && arr.NullN() == 0 && arr.DataType().ID() == arrow.INT64:
				vals := arr.(*array.Int64).Int64Values()
				for r, g := range gs {
					st := &g.st[k]
					st.n++
					st.sumI += vals[r]
				}
			case (a.Func == AggSum || a.Func == AggMean || a.Func == AggCount) && arr.NullN() == 0 && arr.DataType().ID() == arrow.FLOAT64:
				vals := arr.(*array.Float64).Float64Values()
				for r, g := range gs {
					st := &g.st[k]
					st.n++
					st.sumF += vals[r]
				}
			case a.Func == AggMin || a.Func == AggMax:
				for r, g := range gs {
					st := &g.st[k]
					before := st.size()
					st.update(a.Func, plans[k], arr, r)
					held += st.size() - before
				}
			default:
				for r, g := range gs {
					g.st[k].update(a.Func, plans[k], arr, r)
				}
			}
		}
		clear(gs)
		rec.Release()
		s.st.setHeld(held)
		if held > s.x.opts.MemoryCap {
			if err := spill(); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if schema == nil {
		return nil // no input batches: no schema to build output from, so no rows
	}
	if len(o.keys) == 0 && len(groups) == 0 && parts == nil {
		groups[""] = &group{st: make([]aggState, len(o.aggs))}
	}
	outSch := o.outSchema(schema, keyIdx, plans)
	if parts == nil {
		fold()
		return o.emitGroups(ctx, s, outSch, plans, groups)
	}
	if err := spill(); err != nil {
		return err
	}
	var paths []string
	for p, f := range parts {
		if err := pw[p].Flush(); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		paths = append(paths, f.Name())
		if err := f.Close(); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
	}
	parts = nil
	for k, path := range paths {
		err := o.mergeFile(ctx, s, outSch, plans, path, 0)
		if err != nil {
			for _, p := range paths[k:] {
				os.Remove(p)
			}
			return err
		}
	}
	return nil
}

// groupMemFactor estimates a group's bytes in memory from its spilled encoding.
const groupMemFactor = 4

// mergeFile merges the partial groups of one spilled partition and emits them. A partition
// whose groups would not fit under the cap is split again by a fresh hash seed first.
func (o *groupOp) mergeFile(ctx context.Context, s *stage, outSch *arrow.Schema, plans []aggPlan, path string, depth int) error {
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<15)
	if groupMemFactor*st.Size() > s.x.opts.MemoryCap && depth < maxSplitDepth {
		seed := maphash.MakeSeed()
		dir, err := s.x.tempDir()
		if err != nil {
			return err
		}
		var subs []*os.File
		var ws []*bufio.Writer
		defer func() {
			for _, sf := range subs {
				sf.Close()
				os.Remove(sf.Name())
			}
		}()
		for p := range groupPartitions {
			sf, err := os.CreateTemp(dir, fmt.Sprintf("groupby-d%d-p%02d-*.bin", depth+1, p))
			if err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			subs = append(subs, sf)
			ws = append(ws, bufio.NewWriterSize(sf, 1<<15))
		}
		var buf []byte
		for {
			key, g, err := decodeGroup(br, len(o.aggs))
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			buf = encodeGroup(buf[:0], key, g)
			if _, err := ws[maphash.String(seed, key)%groupPartitions].Write(buf); err != nil {
				return fmt.Errorf("spill: %w", err)
			}
		}
		var names []string
		for p, sf := range subs {
			if err := ws[p].Flush(); err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			names = append(names, sf.Name())
			sf.Close()
		}
		subs = nil
		for k, name := range names {
			if err := o.mergeFile(ctx, s, outSch, plans, name, depth+1); err != nil {
				for _, n := range names[k+1:] {
					os.Remove(n)
				}
				return err
			}
		}
		return nil
	}
	groups := map[string]*group{}
	var held int64
	for {
		key, g, err := decodeGroup(br, len(o.aggs))
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if have, ok := groups[key]; ok {
			for k := range have.st {
				have.st[k].merge(o.aggs[k].Func, g.st[k])
			}
		} else {
			groups[key] = g
			held += int64(len(key)) + 96 + int64(len(o.aggs))*64
			s.st.setHeld(held)
		}
	}
	return o.emitGroups(ctx, s, outSch, plans, groups)
}

func (o *groupOp) outSchema(in *arrow.Schema, keyIdx []int, plans []aggPlan) *arrow.Schema {
	var fields []arrow.Field
	for _, i := range keyIdx {
		f := in.Field(i)
		f.Nullable = true
		fields = append(fields, f)
	}
	for k, a := range o.aggs {
		var t arrow.DataType
		switch a.Func {
		case AggCount:
			t = arrow.PrimitiveTypes.Int64
		case AggMean:
			t = arrow.PrimitiveTypes.Float64
		case AggSum:
			t = arrow.PrimitiveTypes.Int64
			if plans[k].float {
				t = arrow.PrimitiveTypes.Float64
			}
		default:
			t = plans[k].dt
		}
		fields = append(fields, arrow.Field{Name: a.Name, Type: t, Nullable: a.Func != AggCount})
	}
	return arrow.NewSchema(fields, nil)
}

// emitGroups writes groups as batches, ordered by key.
func (o *groupOp) emitGroups(ctx context.Context, s *stage, schema *arrow.Schema, plans []aggPlan, groups map[string]*group) error {
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := array.NewRecordBuilder(s.mem(), schema)
	defer b.Release()
	nk := len(o.keys)
	rows := 0
	for _, key := range keys {
		g := groups[key]
		rest := []byte(key)
		for c := range nk {
			var v any
			var err error
			v, rest, err = readKeyValue(rest)
			if err == nil {
				err = appendAny(b.Field(c), v)
			}
			if err != nil {
				return fmt.Errorf("group key %q: %w", o.keys[c], err)
			}
		}
		for k, a := range o.aggs {
			st := g.st[k]
			fb := b.Field(nk + k)
			var err error
			switch {
			case a.Func == AggCount:
				fb.(*array.Int64Builder).Append(st.n)
			case st.n == 0:
				fb.AppendNull()
			case a.Func == AggSum:
				if bb, ok := fb.(*array.Float64Builder); ok {
					bb.Append(st.sumF)
				} else {
					fb.(*array.Int64Builder).Append(st.sumI)
				}
			case a.Func == AggMean:
				mean := float64(st.sumI) / float64(st.n)
				if plans[k].float {
					mean = st.sumF / float64(st.n)
				}
				fb.(*array.Float64Builder).Append(mean)
			case a.Func == AggMin:
				err = appendAny(fb, st.min)
			case a.Func == AggMax:
				err = appendAny(fb, st.max)
			}
			if err != nil {
				return fmt.Errorf("aggregate %q: %w", a.Name, err)
			}
		}
		rows++
		if rows == s.x.opts.BatchRows {
			if err := s.emit(ctx, b.NewRecord(), 0); err != nil {
				return err
			}
			rows = 0
		}
	}
	if rows > 0 {
		return s.emit(ctx, b.NewRecord(), 0)
	}
	return nil
}
