package lumen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A small reader and writer of Arrow IPC streams of one record batch, so that a guest can read
// and build batches without linking Apache Arrow (about 9 MB of WebAssembly; this file adds
// tens of KB). It reads the columns a guest most often needs — integers, floats, bools,
// strings and binaries — and steps over any other column Arrow's IPC format allows; it writes
// int64, float64, bool and string columns. A guest that wants all of Arrow decodes the bytes
// from Dataset.NextIPC with arrow/go's ipc package instead (see sdk/go/batch).

// ColumnType names a column's Arrow type as the reader knows it.
type ColumnType string

// The column types Batch reads. Any other column reads as TypeOther, its values unreadable
// here but its place kept.
const (
	TypeInt8    ColumnType = "int8"
	TypeInt16   ColumnType = "int16"
	TypeInt32   ColumnType = "int32"
	TypeInt64   ColumnType = "int64"
	TypeUint8   ColumnType = "uint8"
	TypeUint16  ColumnType = "uint16"
	TypeUint32  ColumnType = "uint32"
	TypeUint64  ColumnType = "uint64"
	TypeFloat16 ColumnType = "float16"
	TypeFloat32 ColumnType = "float32"
	TypeFloat64 ColumnType = "float64"
	TypeBool    ColumnType = "bool"
	TypeString  ColumnType = "string"
	TypeBinary  ColumnType = "binary"
	TypeNull    ColumnType = "null"
	TypeOther   ColumnType = "other"
)

// Field is one column of a schema.
type Field struct {
	Name     string
	Type     ColumnType
	Nullable bool
}

// Batch is one record batch decoded from Arrow IPC bytes. Its columns are views into those
// bytes: keep the bytes unchanged while the Batch is in use.
type Batch struct {
	Fields []Field
	Rows   int
	cols   []ipcColumn
}

type ipcColumn struct {
	nulls    int
	validity []byte // nil: every row is valid
	values   []byte
	offsets  []byte // string and binary
}

// ErrBadBatch is wrapped by every error of ParseBatch and ParseSchema.
var ErrBadBatch = errors.New("lumen: bad Arrow IPC batch")

// Arrow's flatbuffer type ids (format/Schema.fbs).
const (
	fbNull          = 1
	fbInt           = 2
	fbFloatingPoint = 3
	fbBinary        = 4
	fbUtf8          = 5
	fbBool          = 6
	fbDecimal       = 7
	fbDate          = 8
	fbTime          = 9
	fbTimestamp     = 10
	fbInterval      = 11
	fbList          = 12
	fbStruct        = 13
	fbFixedBinary   = 15
	fbFixedList     = 16
	fbDuration      = 18
	fbLargeBinary   = 19
	fbLargeUtf8     = 20
	fbLargeList     = 21

	msgSchema      = 1
	msgRecordBatch = 3
)

// ParseBatch decodes an Arrow IPC stream of one schema and one record batch (what
// Dataset.NextIPC returns and Dataset.Append takes). It checks every offset and length against
// the bytes, so malformed input is an error wrapping ErrBadBatch, never a panic.
func ParseBatch(b []byte) (*Batch, error) {
	msgs, err := ipcMessages(b)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 2 || msgs[0].kind != msgSchema || msgs[1].kind != msgRecordBatch {
		return nil, badBatch("want a schema and one record batch, got %d messages", len(msgs))
	}
	fields, shapes, err := parseSchema(msgs[0].header)
	if err != nil {
		return nil, err
	}
	return parseRecordBatch(msgs[1], fields, shapes)
}

// ParseSchema decodes the schema of an Arrow IPC stream (what Dataset.SchemaIPC returns).
func ParseSchema(b []byte) ([]Field, error) {
	msgs, err := ipcMessages(b)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 || msgs[0].kind != msgSchema {
		return nil, badBatch("the stream does not start with a schema")
	}
	fields, _, err := parseSchema(msgs[0].header)
	return fields, err
}

func badBatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBatch, fmt.Sprintf(format, args...))
}

// Column returns the index of the column called name, or -1.
func (b *Batch) Column(name string) int {
	for i, f := range b.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Valid reports whether row of column i holds a value (is not null).
func (b *Batch) Valid(i, row int) bool {
	c := b.cols[i]
	if row < 0 || row >= b.Rows {
		return false
	}
	if b.Fields[i].Type == TypeNull {
		return false
	}
	return c.validity == nil || c.validity[row/8]&(1<<(row%8)) != 0
}

// Nulls is the number of null rows of column i.
func (b *Batch) Nulls(i int) int { return b.cols[i].nulls }

func (b *Batch) col(i int, want ...ColumnType) (ipcColumn, ColumnType, error) {
	if i < 0 || i >= len(b.Fields) {
		return ipcColumn{}, "", fmt.Errorf("lumen: column %d of a batch of %d columns", i, len(b.Fields))
	}
	t := b.Fields[i].Type
	for _, w := range want {
		if t == w {
			return b.cols[i], t, nil
		}
	}
	return ipcColumn{}, "", fmt.Errorf("lumen: column %q is %s, want one of %v", b.Fields[i].Name, t, want)
}

// Int64s returns column i, of any integer type, as int64s; a null reads as 0 (see Valid). A
// uint64 value past math.MaxInt64 is an error.
func (b *Batch) Int64s(i int) ([]int64, error) {
	c, t, err := b.col(i, TypeInt8, TypeInt16, TypeInt32, TypeInt64, TypeUint8, TypeUint16, TypeUint32, TypeUint64)
	if err != nil {
		return nil, err
	}
	out := make([]int64, b.Rows)
	for r := range out {
		switch t {
		case TypeInt8:
			out[r] = int64(int8(c.values[r]))
		case TypeUint8:
			out[r] = int64(c.values[r])
		case TypeInt16:
			out[r] = int64(int16(binary.LittleEndian.Uint16(c.values[2*r:])))
		case TypeUint16:
			out[r] = int64(binary.LittleEndian.Uint16(c.values[2*r:]))
		case TypeInt32:
			out[r] = int64(int32(binary.LittleEndian.Uint32(c.values[4*r:])))
		case TypeUint32:
			out[r] = int64(binary.LittleEndian.Uint32(c.values[4*r:]))
		case TypeInt64:
			out[r] = int64(binary.LittleEndian.Uint64(c.values[8*r:]))
		case TypeUint64:
			v := binary.LittleEndian.Uint64(c.values[8*r:])
			if v > math.MaxInt64 && b.Valid(i, r) {
				return nil, fmt.Errorf("lumen: column %q row %d: %d does not fit an int64", b.Fields[i].Name, r, v)
			}
			out[r] = int64(v)
		}
		if c.validity != nil && !b.Valid(i, r) {
			out[r] = 0
		}
	}
	return out, nil
}

// Float64s returns column i, of type float32 or float64, as float64s; a null reads as 0.
func (b *Batch) Float64s(i int) ([]float64, error) {
	c, t, err := b.col(i, TypeFloat32, TypeFloat64)
	if err != nil {
		return nil, err
	}
	out := make([]float64, b.Rows)
	for r := range out {
		if c.validity != nil && !b.Valid(i, r) {
			continue
		}
		if t == TypeFloat32 {
			out[r] = float64(math.Float32frombits(binary.LittleEndian.Uint32(c.values[4*r:])))
		} else {
			out[r] = math.Float64frombits(binary.LittleEndian.Uint64(c.values[8*r:]))
		}
	}
	return out, nil
}

// Bools returns bool column i; a null reads as false.
func (b *Batch) Bools(i int) ([]bool, error) {
	c, _, err := b.col(i, TypeBool)
	if err != nil {
		return nil, err
	}
	out := make([]bool, b.Rows)
	for r := range out {
		out[r] = c.values[r/8]&(1<<(r%8)) != 0 && b.Valid(i, r)
	}
	return out, nil
}

// Strings returns string or binary column i; a null reads as "".
func (b *Batch) Strings(i int) ([]string, error) {
	c, _, err := b.col(i, TypeString, TypeBinary)
	if err != nil {
		return nil, err
	}
	out := make([]string, b.Rows)
	for r := range out {
		lo, hi := binary.LittleEndian.Uint32(c.offsets[4*r:]), binary.LittleEndian.Uint32(c.offsets[4*r+4:])
		if b.Valid(i, r) {
			out[r] = string(c.values[lo:hi])
		}
	}
	return out, nil
}

// ipcMessage is one message of a stream: its header table and its body.
type ipcMessage struct {
	kind   byte
	header fbTable
	body   []byte
}

// ipcMessages splits stream bytes into messages, up to the end-of-stream marker or the end.
func ipcMessages(b []byte) ([]ipcMessage, error) {
	var out []ipcMessage
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, badBatch("message %d: truncated length", len(out))
		}
		n := binary.LittleEndian.Uint32(b[off:])
		off += 4
		if n == 0xFFFFFFFF {
			if len(b)-off < 4 {
				return nil, badBatch("message %d: truncated length", len(out))
			}
			n = binary.LittleEndian.Uint32(b[off:])
			off += 4
		}
		if n == 0 {
			break
		}
		if uint64(n) > uint64(len(b)-off) {
			return nil, badBatch("message %d: metadata of %d bytes, %d left", len(out), n, len(b)-off)
		}
		meta := b[off : off+int(n)]
		off += int(n)
		root, err := fbRoot(meta)
		if err != nil {
			return nil, badBatch("message %d: %v", len(out), err)
		}
		kind := byte(root.uint(1, 1))
		hdr, ok, err := root.table(2)
		if err != nil || !ok {
			return nil, badBatch("message %d: no header (%v)", len(out), err)
		}
		bodyLen := int64(root.uint(3, 8))
		if bodyLen < 0 || uint64(bodyLen) > uint64(len(b)-off) {
			return nil, badBatch("message %d: body of %d bytes, %d left", len(out), bodyLen, len(b)-off)
		}
		out = append(out, ipcMessage{kind: kind, header: hdr, body: b[off : off+int(bodyLen)]})
		off += int(bodyLen)
	}
	return out, nil
}

// shape is what a column takes of a batch's nodes and buffers, children included.
type shape struct{ nodes, buffers int }

func parseSchema(s fbTable) ([]Field, []shape, error) {
	n, err := s.vectorLen(1)
	if err != nil {
		return nil, nil, badBatch("schema fields: %v", err)
	}
	var fields []Field
	var shapes []shape
	for i := range n {
		f, err := s.vectorTable(1, i)
		if err != nil {
			return nil, nil, badBatch("schema field %d: %v", i, err)
		}
		name, err := f.str(0)
		if err != nil {
			return nil, nil, badBatch("schema field %d name: %v", i, err)
		}
		t, sh, err := fieldShape(f, 0)
		if err != nil {
			return nil, nil, badBatch("column %q: %v", name, err)
		}
		fields = append(fields, Field{Name: name, Type: t, Nullable: f.uint(1, 1) != 0})
		shapes = append(shapes, sh)
	}
	return fields, shapes, nil
}

// fieldShape reads a field's type and counts the nodes and buffers it and its children take.
func fieldShape(f fbTable, depth int) (ColumnType, shape, error) {
	if depth > 32 {
		return "", shape{}, errors.New("types nested deeper than 32")
	}
	if _, ok, _ := f.table(4); ok {
		return "", shape{}, errors.New("dictionary-encoded columns are not supported")
	}
	id := byte(f.uint(2, 1))
	typ, _, err := f.table(3)
	if err != nil {
		return "", shape{}, err
	}
	sh := shape{nodes: 1}
	t := TypeOther
	switch id {
	case fbNull:
		t = TypeNull
	case fbInt:
		width, signed := typ.uint(0, 4), typ.uint(1, 1) != 0
		switch {
		case width == 8 && signed:
			t = TypeInt8
		case width == 8:
			t = TypeUint8
		case width == 16 && signed:
			t = TypeInt16
		case width == 16:
			t = TypeUint16
		case width == 32 && signed:
			t = TypeInt32
		case width == 32:
			t = TypeUint32
		case width == 64 && signed:
			t = TypeInt64
		case width == 64:
			t = TypeUint64
		default:
			return "", shape{}, fmt.Errorf("integer of %d bits", width)
		}
		sh.buffers = 2
	case fbFloatingPoint:
		t = []ColumnType{TypeFloat16, TypeFloat32, TypeFloat64, TypeOther}[min(typ.uint(0, 2), 3)]
		sh.buffers = 2
	case fbBool:
		t, sh.buffers = TypeBool, 2
	case fbUtf8:
		t, sh.buffers = TypeString, 3
	case fbBinary:
		t, sh.buffers = TypeBinary, 3
	case fbLargeUtf8, fbLargeBinary:
		sh.buffers = 3
	case fbDecimal, fbDate, fbTime, fbTimestamp, fbInterval, fbFixedBinary, fbDuration:
		sh.buffers = 2
	case fbList, fbLargeList:
		sh.buffers = 2
	case fbFixedList, fbStruct:
		sh.buffers = 1
	default:
		return "", shape{}, fmt.Errorf("arrow type id %d is not supported", id)
	}
	n, err := f.vectorLen(5)
	if err != nil {
		return "", shape{}, err
	}
	for i := range n {
		ch, err := f.vectorTable(5, i)
		if err != nil {
			return "", shape{}, err
		}
		_, csh, err := fieldShape(ch, depth+1)
		if err != nil {
			return "", shape{}, err
		}
		sh.nodes += csh.nodes
		sh.buffers += csh.buffers
	}
	return t, sh, nil
}

func parseRecordBatch(m ipcMessage, fields []Field, shapes []shape) (*Batch, error) {
	h := m.header
	if _, ok, _ := h.table(3); ok {
		return nil, badBatch("compressed batches are not supported")
	}
	rows := int64(h.uint(0, 8))
	if rows < 0 || rows > int64(8*len(m.body))+1<<20 || rows > math.MaxInt32 {
		return nil, badBatch("%d rows in a body of %d bytes", rows, len(m.body))
	}
	nodes, err := h.vectorLen(1)
	if err != nil {
		return nil, badBatch("nodes: %v", err)
	}
	bufs, err := h.vectorLen(2)
	if err != nil {
		return nil, badBatch("buffers: %v", err)
	}
	b := &Batch{Fields: fields, Rows: int(rows), cols: make([]ipcColumn, len(fields))}
	node, buf := 0, 0
	for i, f := range fields {
		sh := shapes[i]
		if node+sh.nodes > nodes || buf+sh.buffers > bufs {
			return nil, badBatch("column %q: the batch has %d nodes and %d buffers, too few", f.Name, nodes, bufs)
		}
		length, nulls, err := h.struct16(1, node)
		if err != nil {
			return nil, badBatch("column %q node: %v", f.Name, err)
		}
		if length != rows || nulls < 0 || nulls > rows {
			return nil, badBatch("column %q has %d rows (%d null), the batch %d", f.Name, length, nulls, rows)
		}
		get := func(k int) ([]byte, error) {
			off, n, err := h.struct16(2, buf+k)
			if err != nil {
				return nil, err
			}
			if off < 0 || n < 0 || uint64(off)+uint64(n) > uint64(len(m.body)) {
				return nil, fmt.Errorf("buffer [%d, +%d) outside the %d-byte body", off, n, len(m.body))
			}
			return m.body[off : off+n], nil
		}
		c := ipcColumn{nulls: int(nulls)}
		need := func(what string, got []byte, n int64) error {
			if int64(len(got)) < n {
				return badBatch("column %q: %s buffer of %d bytes for %d rows", f.Name, what, len(got), rows)
			}
			return nil
		}
		if f.Type != TypeOther && f.Type != TypeNull {
			v, err := get(0)
			if err != nil {
				return nil, badBatch("column %q: %v", f.Name, err)
			}
			if nulls > 0 {
				if err := need("validity", v, (rows+7)/8); err != nil {
					return nil, err
				}
				c.validity = v
			}
			if c.values, err = get(1); err != nil {
				return nil, badBatch("column %q: %v", f.Name, err)
			}
			switch f.Type {
			case TypeBool:
				err = need("values", c.values, (rows+7)/8)
			case TypeString, TypeBinary:
				c.offsets = c.values
				if err = need("offsets", c.offsets, 4*(rows+1)); err != nil {
					break
				}
				if c.values, err = get(2); err != nil {
					return nil, badBatch("column %q: %v", f.Name, err)
				}
				prev := uint32(0)
				for r := int64(0); r <= rows; r++ {
					o := binary.LittleEndian.Uint32(c.offsets[4*r:])
					if (r > 0 && o < prev) || uint64(o) > uint64(len(c.values)) {
						return nil, badBatch("column %q: offset %d at row %d out of order or past %d bytes", f.Name, int32(o), r, len(c.values))
					}
					prev = o
				}
			default:
				err = need("values", c.values, rows*int64(typeWidth(f.Type)))
			}
			if err != nil {
				return nil, err
			}
		}
		b.cols[i] = c
		node += sh.nodes
		buf += sh.buffers
	}
	return b, nil
}

func typeWidth(t ColumnType) int {
	switch t {
	case TypeInt8, TypeUint8:
		return 1
	case TypeInt16, TypeUint16, TypeFloat16:
		return 2
	case TypeInt32, TypeUint32, TypeFloat32:
		return 4
	}
	return 8
}

// fbTable is a flatbuffer table whose position and vtable have been checked to lie in buf.
type fbTable struct {
	buf   []byte
	pos   int
	vt    int
	vtLen int
}

func fbRoot(b []byte) (fbTable, error) {
	if len(b) < 4 {
		return fbTable{}, errors.New("metadata too short")
	}
	return fbTableAt(b, uint64(binary.LittleEndian.Uint32(b)))
}

func fbTableAt(b []byte, pos uint64) (fbTable, error) {
	if pos+4 > uint64(len(b)) {
		return fbTable{}, errors.New("table outside the metadata")
	}
	vt := int64(pos) - int64(int32(binary.LittleEndian.Uint32(b[pos:])))
	if vt < 0 || vt+4 > int64(len(b)) {
		return fbTable{}, errors.New("vtable outside the metadata")
	}
	vtLen := int(binary.LittleEndian.Uint16(b[vt:]))
	if int(vt)+vtLen > len(b) || vtLen < 4 {
		return fbTable{}, errors.New("vtable outside the metadata")
	}
	return fbTable{buf: b, pos: int(pos), vt: int(vt), vtLen: vtLen}, nil
}

// field returns the absolute position of field slot, or 0 when it is absent or past the buffer
// for size bytes.
func (t fbTable) field(slot, size int) int {
	at := 4 + 2*slot
	if at+2 > t.vtLen {
		return 0
	}
	o := int(binary.LittleEndian.Uint16(t.buf[t.vt+at:]))
	if o == 0 || t.pos+o+size > len(t.buf) {
		return 0
	}
	return t.pos + o
}

// uint reads a scalar field of size 1, 2, 4 or 8 bytes; 0 when absent.
func (t fbTable) uint(slot, size int) uint64 {
	p := t.field(slot, size)
	if p == 0 {
		return 0
	}
	switch size {
	case 1:
		return uint64(t.buf[p])
	case 2:
		return uint64(binary.LittleEndian.Uint16(t.buf[p:]))
	case 4:
		return uint64(binary.LittleEndian.Uint32(t.buf[p:]))
	}
	return binary.LittleEndian.Uint64(t.buf[p:])
}

// indirect follows the uoffset in field slot; ok is false when the field is absent.
func (t fbTable) indirect(slot int) (uint64, bool) {
	p := t.field(slot, 4)
	if p == 0 {
		return 0, false
	}
	return uint64(p) + uint64(binary.LittleEndian.Uint32(t.buf[p:])), true
}

func (t fbTable) table(slot int) (fbTable, bool, error) {
	at, ok := t.indirect(slot)
	if !ok {
		return fbTable{}, false, nil
	}
	sub, err := fbTableAt(t.buf, at)
	return sub, err == nil, err
}

// vector returns the start and length of the vector in slot, checked for elem-byte elements.
func (t fbTable) vector(slot int, elem uint64) (uint64, int, error) {
	at, ok := t.indirect(slot)
	if !ok {
		return 0, 0, nil
	}
	if at+4 > uint64(len(t.buf)) {
		return 0, 0, errors.New("vector outside the metadata")
	}
	n := uint64(binary.LittleEndian.Uint32(t.buf[at:]))
	if at+4+n*elem > uint64(len(t.buf)) {
		return 0, 0, fmt.Errorf("vector of %d elements past the metadata", n)
	}
	return at + 4, int(n), nil
}

func (t fbTable) vectorLen(slot int) (int, error) {
	_, n, err := t.vector(slot, 4)
	return n, err
}

func (t fbTable) vectorTable(slot, i int) (fbTable, error) {
	start, _, err := t.vector(slot, 4)
	if err != nil {
		return fbTable{}, err
	}
	at := start + 4*uint64(i)
	return fbTableAt(t.buf, at+uint64(binary.LittleEndian.Uint32(t.buf[at:])))
}

// struct16 reads element i of a vector of 16-byte structs of two int64s.
func (t fbTable) struct16(slot, i int) (int64, int64, error) {
	start, n, err := t.vector(slot, 16)
	if err != nil {
		return 0, 0, err
	}
	if i >= n {
		return 0, 0, fmt.Errorf("element %d of %d", i, n)
	}
	at := start + 16*uint64(i)
	return int64(binary.LittleEndian.Uint64(t.buf[at:])), int64(binary.LittleEndian.Uint64(t.buf[at+8:])), nil
}

func (t fbTable) str(slot int) (string, error) {
	start, n, err := t.vector(slot, 1)
	if err != nil {
		return "", err
	}
	return string(t.buf[start : start+uint64(n)]), nil
}

// BatchBuilder builds one record batch of int64, float64, bool and string columns, encoded as
// an Arrow IPC stream by IPC. Every column must have the same number of rows. A nil valid slice
// means every row is valid; otherwise valid[r] false makes row r null.
type BatchBuilder struct {
	fields []Field
	cols   []builtColumn
	err    error
}

type builtColumn struct {
	rows     int
	valid    []bool
	values   []byte
	offsets  []byte
	nullRows int
}

// NewBatchBuilder returns an empty builder.
func NewBatchBuilder() *BatchBuilder { return &BatchBuilder{} }

func (w *BatchBuilder) add(name string, t ColumnType, rows int, valid []bool, c builtColumn) *BatchBuilder {
	if w.err != nil {
		return w
	}
	if valid != nil && len(valid) != rows {
		w.err = fmt.Errorf("lumen: column %q: %d validity flags for %d rows", name, len(valid), rows)
		return w
	}
	if len(w.cols) > 0 && w.cols[0].rows != rows {
		w.err = fmt.Errorf("lumen: column %q has %d rows, column %q %d", name, rows, w.fields[0].Name, w.cols[0].rows)
		return w
	}
	c.rows, c.valid = rows, valid
	for _, ok := range valid {
		if !ok {
			c.nullRows++
		}
	}
	w.fields = append(w.fields, Field{Name: name, Type: t, Nullable: true})
	w.cols = append(w.cols, c)
	return w
}

// Int64 adds an int64 column.
func (w *BatchBuilder) Int64(name string, v []int64, valid []bool) *BatchBuilder {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return w.add(name, TypeInt64, len(v), valid, builtColumn{values: b})
}

// Float64 adds a float64 column.
func (w *BatchBuilder) Float64(name string, v []float64, valid []bool) *BatchBuilder {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return w.add(name, TypeFloat64, len(v), valid, builtColumn{values: b})
}

// Bool adds a bool column.
func (w *BatchBuilder) Bool(name string, v []bool, valid []bool) *BatchBuilder {
	return w.add(name, TypeBool, len(v), valid, builtColumn{values: bitmap(v)})
}

// String adds a string column.
func (w *BatchBuilder) String(name string, v []string, valid []bool) *BatchBuilder {
	offs := make([]byte, 4*(len(v)+1))
	var data []byte
	for i, s := range v {
		data = append(data, s...)
		if len(data) > math.MaxInt32 {
			w.err = fmt.Errorf("lumen: column %q holds more than 2 GiB of strings", name)
			return w
		}
		binary.LittleEndian.PutUint32(offs[4*(i+1):], uint32(len(data)))
	}
	return w.add(name, TypeString, len(v), valid, builtColumn{values: data, offsets: offs})
}

func bitmap(v []bool) []byte {
	b := make([]byte, (len(v)+7)/8)
	for i, x := range v {
		if x {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// IPC encodes the batch as an Arrow IPC stream: the schema, the record batch and the
// end-of-stream marker.
func (w *BatchBuilder) IPC() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if len(w.cols) == 0 {
		return nil, errors.New("lumen: a batch needs at least one column")
	}
	out := ipcFrame(nil, schemaMessage(w.fields), nil)
	rows := w.cols[0].rows
	var body []byte
	var nodes, bufs [][2]int64
	addBuf := func(b []byte) {
		bufs = append(bufs, [2]int64{int64(len(body)), int64(len(b))})
		body = append(body, b...)
		for len(body)%8 != 0 {
			body = append(body, 0)
		}
	}
	for _, c := range w.cols {
		nodes = append(nodes, [2]int64{int64(rows), int64(c.nullRows)})
		if c.nullRows > 0 {
			addBuf(bitmap(c.valid))
		} else {
			addBuf(nil)
		}
		if c.offsets != nil {
			addBuf(c.offsets)
		}
		addBuf(c.values)
	}
	out = ipcFrame(out, batchMessage(int64(rows), nodes, bufs, int64(len(body))), body)
	return append(out, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), nil
}

// ipcFrame appends a message: continuation marker, padded metadata length, metadata, body.
func ipcFrame(out, meta, body []byte) []byte {
	for len(meta)%8 != 0 {
		meta = append(meta, 0)
	}
	out = binary.LittleEndian.AppendUint32(out, 0xFFFFFFFF)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(meta)))
	return append(append(out, meta...), body...)
}

// fbWriter writes a flatbuffer front to back: a parent before its children, as a uoffset must
// point forward; each uoffset is filled in when its target is written.
type fbWriter struct{ b []byte }

// fbScalar is a field of a table: a scalar of size bytes (a uoffset is a 4-byte one, filled in
// later). size 0 leaves the slot absent.
type fbScalar struct {
	size int
	v    uint64
}

var (
	fbAbsent = fbScalar{}
	fbOffset = fbScalar{size: 4}
)

func fbU(size int, v uint64) fbScalar { return fbScalar{size: size, v: v} }

func (w *fbWriter) align(n int) {
	for len(w.b)%n != 0 {
		w.b = append(w.b, 0)
	}
}

// point fills the uoffset at at with the distance to to.
func (w *fbWriter) point(at, to int) { binary.LittleEndian.PutUint32(w.b[at:], uint32(to-at)) }

// table writes a vtable and then its table (8-aligned, widest fields first), points each
// uoffset in refs at the table, and returns the absolute position of each field.
func (w *fbWriter) table(refs []int, fields ...fbScalar) []int {
	pos := make([]int, len(fields))
	cur := 4
	for _, size := range []int{8, 4, 2, 1} {
		for i, f := range fields {
			if f.size == size {
				for cur%size != 0 {
					cur++
				}
				pos[i] = cur
				cur += size
			}
		}
	}
	w.align(2)
	vt := len(w.b)
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(4+2*len(fields)))
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(cur))
	for i := range fields {
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(pos[i]))
	}
	w.align(8)
	t := len(w.b)
	w.b = append(w.b, make([]byte, cur)...)
	binary.LittleEndian.PutUint32(w.b[t:], uint32(t-vt))
	for _, r := range refs {
		w.point(r, t)
	}
	for i, f := range fields {
		if f.size == 0 {
			continue
		}
		p := t + pos[i]
		switch f.size {
		case 1:
			w.b[p] = byte(f.v)
		case 2:
			binary.LittleEndian.PutUint16(w.b[p:], uint16(f.v))
		case 4:
			binary.LittleEndian.PutUint32(w.b[p:], uint32(f.v))
		case 8:
			binary.LittleEndian.PutUint64(w.b[p:], f.v)
		}
		pos[i] = p
	}
	return pos
}

// vector starts a vector of n elements aligned to elemAlign that the uoffset at ref points to,
// and returns where its elements start.
func (w *fbWriter) vector(ref, n, elemAlign int) int {
	w.align(4)
	for (len(w.b)+4)%elemAlign != 0 {
		w.b = append(w.b, 0)
	}
	w.point(ref, len(w.b))
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(n))
	return len(w.b)
}

// str writes a string that the uoffset at ref points to.
func (w *fbWriter) str(ref int, s string) {
	w.align(4)
	w.point(ref, len(w.b))
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(append(w.b, s...), 0)
}

// message writes a Message (version V5) whose header header writes, given the uoffset to fill.
func message(kind byte, bodyLen int64, header func(w *fbWriter, ref int)) []byte {
	w := &fbWriter{b: make([]byte, 4)} // the root uoffset
	m := w.table([]int{0}, fbU(2, 4), fbU(1, uint64(kind)), fbOffset, fbU(8, uint64(bodyLen)))
	header(w, m[2])
	return w.b
}

func schemaMessage(fields []Field) []byte {
	return message(msgSchema, 0, func(w *fbWriter, ref int) {
		s := w.table([]int{ref}, fbAbsent, fbOffset)
		slots := w.vector(s[1], len(fields), 4)
		w.b = append(w.b, make([]byte, 4*len(fields))...)
		for i, f := range fields {
			var id byte
			switch f.Type {
			case TypeInt64:
				id = fbInt
			case TypeFloat64:
				id = fbFloatingPoint
			case TypeBool:
				id = fbBool
			default:
				id = fbUtf8
			}
			nullable := uint64(0)
			if f.Nullable {
				nullable = 1
			}
			fp := w.table([]int{slots + 4*i}, fbOffset, fbU(1, nullable), fbU(1, uint64(id)), fbOffset, fbAbsent, fbOffset)
			w.str(fp[0], f.Name)
			switch f.Type {
			case TypeInt64:
				w.table([]int{fp[3]}, fbU(4, 64), fbU(1, 1))
			case TypeFloat64:
				w.table([]int{fp[3]}, fbU(2, 2))
			default:
				w.table([]int{fp[3]})
			}
			w.vector(fp[5], 0, 4) // no children
		}
	})
}

func batchMessage(rows int64, nodes, bufs [][2]int64, bodyLen int64) []byte {
	return message(msgRecordBatch, bodyLen, func(w *fbWriter, ref int) {
		rb := w.table([]int{ref}, fbU(8, uint64(rows)), fbOffset, fbOffset)
		for k, v := range [][][2]int64{nodes, bufs} {
			w.vector(rb[1+k], len(v), 8)
			for _, e := range v {
				w.b = binary.LittleEndian.AppendUint64(w.b, uint64(e[0]))
				w.b = binary.LittleEndian.AppendUint64(w.b, uint64(e[1]))
			}
		}
	})
}
