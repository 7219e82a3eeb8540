package data

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Values cross operator boundaries as a small set of Go types: nil, int64, uint64, float64,
// string, []byte and bool. Integer-like Arrow types (ints, dates, times, timestamps, durations)
// read as int64, unsigned as uint64, floats as float64.

// scalarType reports whether the row-wise helpers (getValue, appendAny, keys, comparisons)
// support t.
func scalarType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.STRING, arrow.LARGE_STRING,
		arrow.BINARY, arrow.LARGE_BINARY, arrow.BOOL,
		arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64, arrow.DURATION,
		arrow.NULL:
		return true
	}
	return false
}

// getValue reads row i of arr as a Go value (nil for null). arr must have a scalarType.
func getValue(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Date32:
		return int64(a.Value(i))
	case *array.Date64:
		return int64(a.Value(i))
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Time32:
		return int64(a.Value(i))
	case *array.Time64:
		return int64(a.Value(i))
	case *array.Duration:
		return int64(a.Value(i))
	}
	return nil
}

// appendAny appends v (one of the value types, or nil) to b, converting between the numeric
// kinds when the value fits.
func appendAny(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	var (
		i   int64
		u   uint64
		f   float64
		num bool
		isF bool
		isU bool
	)
	switch x := v.(type) {
	case int64:
		i, f, num = x, float64(x), true
		u = uint64(x)
		if x < 0 {
			u = math.MaxUint64 // never fits
		}
	case uint64:
		u, f, num, isU = x, float64(x), true, true
		i = int64(x)
		if x > math.MaxInt64 {
			i = math.MinInt64 // never fits
		}
	case float64:
		f, num, isF = x, true, true
		i = int64(x)
		u = uint64(x)
	}
	intFits := func(lo, hi int64) bool {
		if isF {
			return f == math.Trunc(f) && f >= float64(lo) && f <= float64(hi)
		}
		if isU {
			return u <= uint64(hi)
		}
		return i >= lo && i <= hi
	}
	uintFits := func(hi uint64) bool {
		if isF {
			return f == math.Trunc(f) && f >= 0 && f <= float64(hi)
		}
		if isU {
			return u <= hi
		}
		return i >= 0 && uint64(i) <= hi
	}
	bad := func() error {
		return fmt.Errorf("value %v (%T) does not fit type %s", v, v, b.Type())
	}
	switch bb := b.(type) {
	case *array.NullBuilder:
		return bad()
	case *array.Int8Builder:
		if !num || !intFits(math.MinInt8, math.MaxInt8) {
			return bad()
		}
		bb.Append(int8(i))
	case *array.Int16Builder:
		if !num || !intFits(math.MinInt16, math.MaxInt16) {
			return bad()
		}
		bb.Append(int16(i))
	case *array.Int32Builder:
		if !num || !intFits(math.MinInt32, math.MaxInt32) {
			return bad()
		}
		bb.Append(int32(i))
	case *array.Int64Builder:
		if !num || !intFits(math.MinInt64, math.MaxInt64) {
			return bad()
		}
		if isF {
			i = int64(f)
		}
		bb.Append(i)
	case *array.Uint8Builder:
		if !num || !uintFits(math.MaxUint8) {
			return bad()
		}
		bb.Append(uint8(u))
	case *array.Uint16Builder:
		if !num || !uintFits(math.MaxUint16) {
			return bad()
		}
		bb.Append(uint16(u))
	case *array.Uint32Builder:
		if !num || !uintFits(math.MaxUint32) {
			return bad()
		}
		bb.Append(uint32(u))
	case *array.Uint64Builder:
		if !num || !uintFits(math.MaxUint64) {
			return bad()
		}
		bb.Append(u)
	case *array.Float32Builder:
		if !num {
			return bad()
		}
		bb.Append(float32(f))
	case *array.Float64Builder:
		if !num {
			return bad()
		}
		bb.Append(f)
	case *array.StringBuilder:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		bb.Append(s)
	case *array.LargeStringBuilder:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		bb.Append(s)
	case *array.BinaryBuilder:
		switch x := v.(type) {
		case []byte:
			bb.Append(x)
		case string:
			bb.AppendString(x)
		default:
			return bad()
		}
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		bb.Append(x)
	case *array.Date32Builder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Date32(i))
	case *array.Date64Builder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Date64(i))
	case *array.TimestampBuilder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Timestamp(i))
	case *array.Time32Builder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Time32(i))
	case *array.Time64Builder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Time64(i))
	case *array.DurationBuilder:
		if !num || isF {
			return bad()
		}
		bb.Append(arrow.Duration(i))
	default:
		return fmt.Errorf("%w: cannot append to %s", ErrUnsupportedType, b.Type())
	}
	return nil
}

// compareValues orders two values of the same column: nulls last, NaN after numbers.
func compareValues(a, b any) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return 1
		default:
			return -1
		}
	}
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case uint64:
		return cmp.Compare(x, b.(uint64))
	case float64:
		return cmp.Compare(x, b.(float64))
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		default:
			return 1
		}
	}
	return 0
}

// Key encoding: a self-delimiting byte form of a row's key values, equal exactly when the values
// are equal (NaNs are all one key, as are +0 and -0). Used for grouping, joining and hash
// partitioning, and decoded back for group output.
const (
	kNull byte = iota
	kInt
	kUint
	kFloat
	kString
	kBytes
	kFalse
	kTrue
)

func appendKeyValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, kNull)
	case int64:
		buf = append(buf, kInt)
		return binary.BigEndian.AppendUint64(buf, uint64(x))
	case uint64:
		buf = append(buf, kUint)
		return binary.BigEndian.AppendUint64(buf, x)
	case float64:
		if x == 0 {
			x = 0
		}
		if math.IsNaN(x) {
			x = math.NaN()
		}
		buf = append(buf, kFloat)
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(x))
	case string:
		buf = append(buf, kString)
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...)
	case []byte:
		buf = append(buf, kBytes)
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...)
	case bool:
		if x {
			return append(buf, kTrue)
		}
		return append(buf, kFalse)
	}
	panic(fmt.Sprintf("data: appendKeyValue of %T", v)) // programmer error: getValue types only
}

// readKeyValue decodes one value written by appendKeyValue.
func readKeyValue(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: truncated key", ErrBadInput)
	}
	tag, b := b[0], b[1:]
	switch tag {
	case kNull:
		return nil, b, nil
	case kTrue:
		return true, b, nil
	case kFalse:
		return false, b, nil
	case kInt, kUint, kFloat:
		if len(b) < 8 {
			return nil, nil, fmt.Errorf("%w: truncated key", ErrBadInput)
		}
		u := binary.BigEndian.Uint64(b)
		switch tag {
		case kInt:
			return int64(u), b[8:], nil
		case kUint:
			return u, b[8:], nil
		}
		return math.Float64frombits(u), b[8:], nil
	case kString, kBytes:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, nil, fmt.Errorf("%w: truncated key", ErrBadInput)
		}
		s := b[k : k+int(n)]
		if tag == kString {
			return string(s), b[k+int(n):], nil
		}
		return bytes.Clone(s), b[k+int(n):], nil
	}
	return nil, nil, fmt.Errorf("%w: bad key tag %d", ErrBadInput, tag)
}

// rowKey appends the key of row i over cols to buf.
func rowKey(buf []byte, cols []arrow.Array, i int) []byte {
	for _, c := range cols {
		buf = appendKeyAt(buf, c, i)
	}
	return buf
}

// appendKeyAt is appendKeyValue(buf, getValue(arr, i)) without boxing for the common types.
func appendKeyAt(buf []byte, arr arrow.Array, i int) []byte {
	if arr.IsNull(i) {
		return append(buf, kNull)
	}
	switch a := arr.(type) {
	case *array.Int64:
		buf = append(buf, kInt)
		return binary.BigEndian.AppendUint64(buf, uint64(a.Value(i)))
	case *array.Int32:
		buf = append(buf, kInt)
		return binary.BigEndian.AppendUint64(buf, uint64(int64(a.Value(i))))
	case *array.String:
		v := a.Value(i)
		buf = append(buf, kString)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		return append(buf, v...)
	case *array.Boolean:
		if a.Value(i) {
			return append(buf, kTrue)
		}
		return append(buf, kFalse)
	}
	return appendKeyValue(buf, getValue(arr, i))
}

// keyHasNull reports whether any key column is null at row i.
func keyHasNull(cols []arrow.Array, i int) bool {
	for _, c := range cols {
		if c.IsNull(i) || c.DataType().ID() == arrow.NULL {
			return true
		}
	}
	return false
}

// recordBytes is the number of bytes of buffers a record references.
func recordBytes(rec arrow.Record) int64 {
	if rec == nil {
		return 0
	}
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// rowRef names one row of one of several source records; b < 0 means a null row.
type rowRef struct {
	b int32
	r int32
}

type valuer[T any] interface {
	arrow.Array
	Value(int) T
}

type appender[T any] interface {
	array.Builder
	Append(T)
}

func gatherTyped[T any, A valuer[T], B appender[T]](bld array.Builder, cols []arrow.Array, refs []rowRef) {
	bb := bld.(B)
	typed := make([]A, len(cols))
	for k, c := range cols {
		typed[k] = c.(A)
	}
	bb.Reserve(len(refs))
	for _, r := range refs {
		if r.b < 0 {
			bb.AppendNull()
			continue
		}
		a := typed[r.b]
		if a.IsNull(int(r.r)) {
			bb.AppendNull()
		} else {
			bb.Append(a.Value(int(r.r)))
		}
	}
}

// gatherColumn builds one array whose row k is cols[refs[k].b] at row refs[k].r.
func gatherColumn(mem memory.Allocator, dt arrow.DataType, cols []arrow.Array, refs []rowRef) (arrow.Array, error) {
	bld := array.NewBuilder(mem, dt)
	defer bld.Release()
	switch dt.ID() {
	case arrow.INT8:
		gatherTyped[int8, *array.Int8, *array.Int8Builder](bld, cols, refs)
	case arrow.INT16:
		gatherTyped[int16, *array.Int16, *array.Int16Builder](bld, cols, refs)
	case arrow.INT32:
		gatherTyped[int32, *array.Int32, *array.Int32Builder](bld, cols, refs)
	case arrow.INT64:
		gatherTyped[int64, *array.Int64, *array.Int64Builder](bld, cols, refs)
	case arrow.UINT8:
		gatherTyped[uint8, *array.Uint8, *array.Uint8Builder](bld, cols, refs)
	case arrow.UINT16:
		gatherTyped[uint16, *array.Uint16, *array.Uint16Builder](bld, cols, refs)
	case arrow.UINT32:
		gatherTyped[uint32, *array.Uint32, *array.Uint32Builder](bld, cols, refs)
	case arrow.UINT64:
		gatherTyped[uint64, *array.Uint64, *array.Uint64Builder](bld, cols, refs)
	case arrow.FLOAT32:
		gatherTyped[float32, *array.Float32, *array.Float32Builder](bld, cols, refs)
	case arrow.FLOAT64:
		gatherTyped[float64, *array.Float64, *array.Float64Builder](bld, cols, refs)
	case arrow.STRING:
		gatherTyped[string, *array.String, *array.StringBuilder](bld, cols, refs)
	case arrow.LARGE_STRING:
		gatherTyped[string, *array.LargeString, *array.LargeStringBuilder](bld, cols, refs)
	case arrow.BINARY:
		gatherTyped[[]byte, *array.Binary, *array.BinaryBuilder](bld, cols, refs)
	case arrow.BOOL:
		gatherTyped[bool, *array.Boolean, *array.BooleanBuilder](bld, cols, refs)
	case arrow.DATE32:
		gatherTyped[arrow.Date32, *array.Date32, *array.Date32Builder](bld, cols, refs)
	case arrow.DATE64:
		gatherTyped[arrow.Date64, *array.Date64, *array.Date64Builder](bld, cols, refs)
	case arrow.TIMESTAMP:
		gatherTyped[arrow.Timestamp, *array.Timestamp, *array.TimestampBuilder](bld, cols, refs)
	default:
		return gatherGeneric(mem, dt, cols, refs)
	}
	return bld.NewArray(), nil
}

// gatherGeneric gathers any Arrow type by concatenating one-row (or run) slices: slow, but it
// keeps nested columns (lists of embeddings, structs) working through every operator.
func gatherGeneric(mem memory.Allocator, dt arrow.DataType, cols []arrow.Array, refs []rowRef) (arrow.Array, error) {
	var nulls arrow.Array
	defer func() {
		if nulls != nil {
			nulls.Release()
		}
	}()
	parts := make([]arrow.Array, 0, 16)
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	for k := 0; k < len(refs); {
		r := refs[k]
		n := 1
		for k+n < len(refs) && refs[k+n].b == r.b && r.b >= 0 && refs[k+n].r == r.r+int32(n) {
			n++
		}
		if r.b < 0 {
			if nulls == nil {
				nulls = array.MakeArrayOfNull(mem, dt, 1)
			}
			nulls.Retain()
			parts = append(parts, nulls)
		} else {
			parts = append(parts, array.NewSlice(cols[r.b], int64(r.r), int64(r.r)+int64(n)))
		}
		k += n
	}
	if len(parts) == 0 {
		return array.MakeArrayOfNull(mem, dt, 0), nil
	}
	out, err := array.Concatenate(parts, mem)
	if err != nil {
		return nil, fmt.Errorf("gather %s: %w", dt, err)
	}
	return out, nil
}

// gather builds a record of schema whose row k is refs[k] of srcs.
func gather(mem memory.Allocator, schema *arrow.Schema, srcs []arrow.Record, refs []rowRef) (arrow.Record, error) {
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	in := make([]arrow.Array, len(srcs))
	for c := range cols {
		for k, s := range srcs {
			in[k] = s.Column(c)
		}
		a, err := gatherColumn(mem, schema.Field(c).Type, in, refs)
		if err != nil {
			return nil, err
		}
		cols[c] = a
	}
	return array.NewRecord(schema, cols, int64(len(refs))), nil
}

// schemaDiff says how got differs from want, naming the first column that differs, or "" when
// they have the same fields in the same order (metadata is ignored).
func schemaDiff(want, got *arrow.Schema) string {
	if want.NumFields() != got.NumFields() {
		return fmt.Sprintf("%d columns %v, want %d columns %v", got.NumFields(), fieldNames(got), want.NumFields(), fieldNames(want))
	}
	for i := range want.NumFields() {
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name {
			return fmt.Sprintf("column %d is %q, want %q", i, g.Name, w.Name)
		}
		if !arrow.TypeEqual(w.Type, g.Type) {
			return fmt.Sprintf("column %q has type %s, want %s", w.Name, g.Type, w.Type)
		}
	}
	return ""
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i := range out {
		out[i] = s.Field(i).Name
	}
	return out
}

// columnIndex finds a column by name.
func columnIndex(s *arrow.Schema, name string) (int, error) {
	idx := s.FieldIndices(name)
	if len(idx) == 0 {
		return -1, fmt.Errorf("no column %q (columns: %v)", name, fieldNames(s))
	}
	return idx[0], nil
}
