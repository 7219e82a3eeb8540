package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"
)

// MaxIPCBytes is the largest IPC payload DecodeIPC accepts.
const MaxIPCBytes = 1 << 30

// EncodeIPC writes rec as an Arrow IPC stream: its schema, one record batch and the end-of-stream
// marker. This is the form batches take across the WASM boundary.
func EncodeIPC(rec arrow.Record) ([]byte, error) {
	if rec == nil {
		return nil, fmt.Errorf("%w: EncodeIPC of a nil record", ErrBadInput)
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("encode IPC: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode IPC: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeIPC reads one record batch from untrusted Arrow IPC stream bytes (as EncodeIPC writes
// them): exactly one schema message and one record batch, no dictionaries. It checks the framing
// before allocating, never allocates more than a small multiple of len(b) (compressed bodies
// included), and checks every buffer, offset and child length of the result, so a malformed batch
// is an error wrapping ErrBadInput, never a panic or an out-of-bounds read later. The caller owns
// the record and must Release it. mem may be nil (a Go allocator).
func DecodeIPC(b []byte, mem memory.Allocator) (rec arrow.Record, err error) {
	if len(b) > MaxIPCBytes {
		return nil, fmt.Errorf("%w: IPC payload of %d bytes, limit %d", ErrTooLarge, len(b), MaxIPCBytes)
	}
	if err := scanIPC(b); err != nil {
		return nil, err
	}
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	lim := &limitAllocator{mem: mem, limit: 4*int64(len(b)) + 1<<20}
	defer func() {
		if p := recover(); p != nil {
			if rec != nil {
				rec.Release()
			}
			rec = nil
			if e, ok := p.(errAllocLimit); ok {
				err = fmt.Errorf("%w: IPC batch: %v", ErrTooLarge, e)
				return
			}
			err = fmt.Errorf("%w: IPC batch is malformed: %v", ErrBadInput, p)
		}
	}()
	r, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(lim))
	if err != nil {
		return nil, fmt.Errorf("%w: IPC schema: %v", ErrBadInput, err)
	}
	defer r.Release()
	for _, f := range r.Schema().Fields() {
		if err := checkIPCType(f.Name, f.Type); err != nil {
			return nil, err
		}
	}
	if !r.Next() {
		if r.Err() != nil {
			return nil, fmt.Errorf("%w: IPC batch: %v", ErrBadInput, r.Err())
		}
		return nil, fmt.Errorf("%w: IPC stream holds no record batch", ErrBadInput)
	}
	rec = r.Record()
	rec.Retain()
	if r.Next() {
		rec.Release()
		return nil, fmt.Errorf("%w: IPC stream holds more than one record batch", ErrBadInput)
	}
	if r.Err() != nil && !errors.Is(r.Err(), io.EOF) {
		rec.Release()
		return nil, fmt.Errorf("%w: IPC stream after the batch: %v", ErrBadInput, r.Err())
	}
	// Every row costs at least a bit somewhere, except in all-null columns: a batch claiming more
	// rows than that is forged, and would make every row loop downstream spin.
	if maxRows := 8*int64(len(b)) + 1024; rec.NumRows() > maxRows || rec.NumRows() < 0 {
		n := rec.NumRows()
		rec.Release()
		return nil, fmt.Errorf("%w: IPC batch claims %d rows in %d bytes", ErrTooLarge, n, len(b))
	}
	if err := validateRecord(rec); err != nil {
		rec.Release()
		return nil, err
	}
	return rec, nil
}

// scanIPC walks the stream framing (continuation marker, metadata length, flatbuffer Message,
// body) checking every length against the bytes present, and that the stream is one schema then
// one record batch.
const (
	hdrSchema      = 1
	hdrDictionary  = 2
	hdrRecordBatch = 3
)

func scanIPC(b []byte) error {
	kinds, err := scanMessages(b)
	if err != nil {
		return err
	}
	switch {
	case len(kinds) == 0:
		return fmt.Errorf("%w: empty IPC stream", ErrBadInput)
	case kinds[0] != hdrSchema:
		return fmt.Errorf("%w: IPC stream must start with a schema message, got kind %d", ErrBadInput, kinds[0])
	case len(kinds) != 2:
		return fmt.Errorf("%w: IPC stream must hold a schema and one record batch, got %d messages", ErrBadInput, len(kinds))
	case kinds[1] == hdrDictionary:
		return fmt.Errorf("%w: IPC dictionaries are not supported", ErrUnsupportedType)
	case kinds[1] != hdrRecordBatch:
		return fmt.Errorf("%w: IPC message 1 must be a record batch, got kind %d", ErrBadInput, kinds[1])
	}
	return nil
}

// scanMessages walks the framing of an IPC stream and verifies each message's metadata,
// returning the header kind of each message.
func scanMessages(b []byte) (kinds []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			kinds, err = nil, fmt.Errorf("%w: IPC message metadata is malformed: %v", ErrBadInput, p)
		}
	}()

	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("%w: IPC message %d: truncated length at byte %d", ErrBadInput, len(kinds), off)
		}
		n := binary.LittleEndian.Uint32(b[off:])
		off += 4
		if n == 0xFFFFFFFF {
			if len(b)-off < 4 {
				return nil, fmt.Errorf("%w: IPC message %d: truncated length at byte %d", ErrBadInput, len(kinds), off)
			}
			n = binary.LittleEndian.Uint32(b[off:])
			off += 4
		}
		if n == 0 {
			if off != len(b) {
				return nil, fmt.Errorf("%w: %d bytes after the IPC end-of-stream marker", ErrBadInput, len(b)-off)
			}
			break
		}
		if uint64(n) > uint64(len(b)-off) || n < 8 {
			return nil, fmt.Errorf("%w: IPC message %d: metadata length %d, %d bytes left", ErrBadInput, len(kinds), int32(n), len(b)-off)
		}
		meta := b[off : off+int(n)]
		off += int(n)
		root := flatbuffers.GetUOffsetT(meta)
		if uint64(root)+4 > uint64(len(meta)) {
			return nil, fmt.Errorf("%w: IPC message %d: bad metadata root", ErrBadInput, len(kinds))
		}
		tab := flatbuffers.Table{Bytes: meta, Pos: root}
		vt := int(tab.Pos) - int(tab.GetSOffsetT(tab.Pos))
		if vt < 0 || vt+4 > len(meta) {
			return nil, fmt.Errorf("%w: IPC message %d: bad metadata vtable", ErrBadInput, len(kinds))
		}
		var kind byte
		if o := tab.Offset(6); o != 0 {
			kind = tab.GetByte(flatbuffers.UOffsetT(o) + tab.Pos)
		}
		var bodyLen int64
		if o := tab.Offset(10); o != 0 {
			bodyLen = tab.GetInt64(flatbuffers.UOffsetT(o) + tab.Pos)
		}
		if bodyLen < 0 || uint64(bodyLen) > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: IPC message %d: body length %d, %d bytes left", ErrBadInput, len(kinds), bodyLen, len(b)-off)
		}
		if err := verifyMessage(meta, tab, kind); err != nil {
			return nil, fmt.Errorf("%w: IPC message %d: %v", ErrBadInput, len(kinds), err)
		}
		off += int(bodyLen)
		kinds = append(kinds, kind)
	}
	return kinds, nil
}

// checkStoredSchema verifies an IPC-serialized schema (as Parquet files written by Arrow keep
// in their ARROW:schema metadata) before the arrow reader decodes it.
func checkStoredSchema(b []byte) error {
	kinds, err := scanMessages(b)
	if err != nil {
		return err
	}
	if len(kinds) != 1 || kinds[0] != hdrSchema {
		return fmt.Errorf("%w: stored Arrow schema holds messages %v, want one schema", ErrBadInput, kinds)
	}
	return nil
}

// The arrow IPC reader sizes Go slices from flatbuffer vector lengths before reading them, so a
// forged length could demand gigabytes. verifyMessage walks every vector the reader will use
// (schema fields, children, metadata, batch nodes and buffers) and checks that its declared
// length fits in the metadata bytes, and refuses the types it does not walk (unions, maps,
// run-end encoded, views, dictionaries).
type fbCheck struct{ buf []byte }

var errFlatbuffer = errors.New("malformed flatbuffer")

// table checks that a table at pos and its vtable lie inside the buffer.
func (c fbCheck) table(pos flatbuffers.UOffsetT) (flatbuffers.Table, error) {
	n := uint64(len(c.buf))
	if uint64(pos)+4 > n {
		return flatbuffers.Table{}, errFlatbuffer
	}
	t := flatbuffers.Table{Bytes: c.buf, Pos: pos}
	vt := int64(pos) - int64(t.GetSOffsetT(pos))
	if vt < 0 || uint64(vt)+4 > n {
		return flatbuffers.Table{}, errFlatbuffer
	}
	if size := uint64(t.GetVOffsetT(flatbuffers.UOffsetT(vt))); uint64(vt)+size > n {
		return flatbuffers.Table{}, errFlatbuffer
	}
	return t, nil
}

// vector returns the element start and length of the vector in slot, checking that n elements
// of elem bytes fit. n is 0 when the slot is absent.
func (c fbCheck) vector(t flatbuffers.Table, slot flatbuffers.VOffsetT, elem uint64) (flatbuffers.UOffsetT, int, error) {
	o := t.Offset(slot)
	if o == 0 {
		return 0, 0, nil
	}
	at := uint64(t.Pos) + uint64(o)
	if at+4 > uint64(len(c.buf)) {
		return 0, 0, errFlatbuffer
	}
	vec := at + uint64(flatbuffers.GetUOffsetT(c.buf[at:]))
	if vec+4 > uint64(len(c.buf)) {
		return 0, 0, errFlatbuffer
	}
	n := uint64(flatbuffers.GetUOffsetT(c.buf[vec:]))
	if vec+4+n*elem > uint64(len(c.buf)) {
		return 0, 0, fmt.Errorf("vector of %d elements past the %d metadata bytes", n, len(c.buf))
	}
	return flatbuffers.UOffsetT(vec + 4), int(n), nil
}

// tables checks a vector of tables and each table in it with check.
func (c fbCheck) tables(t flatbuffers.Table, slot flatbuffers.VOffsetT, check func(flatbuffers.Table) error) error {
	start, n, err := c.vector(t, slot, 4)
	if err != nil {
		return err
	}
	for j := range n {
		at := uint64(start) + uint64(j)*4
		sub, err := c.table(flatbuffers.UOffsetT(at + uint64(flatbuffers.GetUOffsetT(c.buf[at:]))))
		if err != nil {
			return err
		}
		if err := check(sub); err != nil {
			return err
		}
	}
	return nil
}

func (c fbCheck) keyValue(t flatbuffers.Table) error {
	if _, _, err := c.vector(t, 4, 1); err != nil {
		return err
	}
	_, _, err := c.vector(t, 6, 1)
	return err
}

func (c fbCheck) field(t flatbuffers.Table, depth int) error {
	if depth > 64 {
		return errors.New("types nested deeper than 64")
	}
	if _, _, err := c.vector(t, 4, 1); err != nil { // name
		return err
	}
	var typ byte
	if o := t.Offset(8); o != 0 {
		typ = t.GetByte(flatbuffers.UOffsetT(o) + t.Pos)
	}
	switch typ {
	case 14, 17, 22, 23, 24, 25, 26:
		return fmt.Errorf("%w: IPC type id %d (union, map, run-end encoded or view)", ErrUnsupportedType, typ)
	}
	if o := t.Offset(10); o != 0 {
		at := uint64(t.Pos) + uint64(o)
		if at+4 > uint64(len(c.buf)) {
			return errFlatbuffer
		}
		if _, err := c.table(flatbuffers.UOffsetT(at + uint64(flatbuffers.GetUOffsetT(c.buf[at:])))); err != nil {
			return err
		}
	}
	if t.Offset(12) != 0 {
		return fmt.Errorf("%w: IPC dictionaries are not supported", ErrUnsupportedType)
	}
	if err := c.tables(t, 14, func(ch flatbuffers.Table) error { return c.field(ch, depth+1) }); err != nil {
		return err
	}
	return c.tables(t, 16, c.keyValue)
}

func verifyMessage(meta []byte, msg flatbuffers.Table, kind byte) error {
	c := fbCheck{meta}
	if _, err := c.table(msg.Pos); err != nil {
		return err
	}
	if err := c.tables(msg, 12, c.keyValue); err != nil {
		return err
	}
	o := msg.Offset(8)
	if o == 0 {
		return errors.New("message without a header")
	}
	at := uint64(msg.Pos) + uint64(o)
	if at+4 > uint64(len(meta)) {
		return errFlatbuffer
	}
	h, err := c.table(flatbuffers.UOffsetT(at + uint64(flatbuffers.GetUOffsetT(meta[at:]))))
	if err != nil {
		return err
	}
	switch kind {
	case 1: // Schema
		if err := c.tables(h, 6, func(f flatbuffers.Table) error { return c.field(f, 0) }); err != nil {
			return err
		}
		if err := c.tables(h, 8, c.keyValue); err != nil {
			return err
		}
		_, _, err = c.vector(h, 10, 8)
		return err
	case 3: // RecordBatch
		for _, v := range []struct {
			slot flatbuffers.VOffsetT
			elem uint64
		}{{6, 16}, {8, 16}, {12, 8}} {
			if _, _, err := c.vector(h, v.slot, v.elem); err != nil {
				return err
			}
		}
		if o := h.Offset(10); o != 0 {
			at := uint64(h.Pos) + uint64(o)
			if at+4 > uint64(len(meta)) {
				return errFlatbuffer
			}
			_, err := c.table(flatbuffers.UOffsetT(at + uint64(flatbuffers.GetUOffsetT(meta[at:]))))
			return err
		}
	}
	return nil
}

// checkIPCType accepts the types validateData can check.
func checkIPCType(name string, dt arrow.DataType) error {
	switch t := dt.(type) {
	case *arrow.ListType:
		return checkIPCType(name, t.Elem())
	case *arrow.LargeListType:
		return checkIPCType(name, t.Elem())
	case *arrow.FixedSizeListType:
		return checkIPCType(name, t.Elem())
	case *arrow.StructType:
		for _, f := range t.Fields() {
			if err := checkIPCType(name+"."+f.Name, f.Type); err != nil {
				return err
			}
		}
		return nil
	}
	if _, ok := dt.(arrow.FixedWidthDataType); ok && dt.ID() != arrow.DICTIONARY && dt.ID() != arrow.EXTENSION {
		return nil
	}
	switch dt.ID() {
	case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY, arrow.NULL:
		return nil
	}
	return fmt.Errorf("%w: column %q has IPC type %s (supported: fixed-width, bool, string, binary, list, fixed-size list, struct)", ErrUnsupportedType, name, dt)
}

func validateRecord(rec arrow.Record) error {
	for i, c := range rec.Columns() {
		name := rec.Schema().Field(i).Name
		if int64(c.Len()) != rec.NumRows() {
			return fmt.Errorf("%w: column %q has %d rows, the batch %d", ErrBadInput, name, c.Len(), rec.NumRows())
		}
		if err := validateData(name, c.Data()); err != nil {
			return err
		}
	}
	return nil
}

func bufLen(d arrow.ArrayData, i int) int64 {
	bs := d.Buffers()
	if i >= len(bs) || bs[i] == nil {
		return 0
	}
	return int64(bs[i].Len())
}

// validateData checks that every buffer of d is long enough for its length and offset, that
// offsets rise within their data, and the same of every child.
func validateData(name string, d arrow.ArrayData) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: column %q: %s", ErrBadInput, name, fmt.Sprintf(format, args...))
	}
	n, off := int64(d.Len()), int64(d.Offset())
	if n < 0 || off < 0 || n > 1<<40 || off > 1<<40 {
		return bad("length %d or offset %d out of range", n, off)
	}
	end := n + off
	if d.NullN() > int(n) {
		return bad("null count %d over length %d", d.NullN(), n)
	}
	dt := d.DataType()
	if dt.ID() == arrow.NULL {
		return nil
	}
	if len(d.Buffers()) > 0 && d.Buffers()[0] != nil && bufLen(d, 0)*8 < end {
		return bad("validity bitmap of %d bytes for %d rows", bufLen(d, 0), end)
	}
	offsets := func(width int64) (first, last int64, err error) {
		if n == 0 {
			return 0, 0, nil
		}
		if bufLen(d, 1) < (end+1)*width {
			return 0, 0, bad("offsets buffer of %d bytes for %d rows", bufLen(d, 1), end)
		}
		raw := d.Buffers()[1].Bytes()
		at := func(k int64) int64 {
			if width == 4 {
				return int64(int32(binary.LittleEndian.Uint32(raw[k*4:])))
			}
			return int64(binary.LittleEndian.Uint64(raw[k*8:]))
		}
		prev := at(off)
		if prev < 0 {
			return 0, 0, bad("negative offset %d", prev)
		}
		for k := off + 1; k <= end; k++ {
			v := at(k)
			if v < prev {
				return 0, 0, bad("offsets fall at row %d (%d < %d)", k-off, v, prev)
			}
			prev = v
		}
		return at(off), prev, nil
	}
	switch t := dt.(type) {
	case *arrow.StringType, *arrow.BinaryType:
		_, last, err := offsets(4)
		if err != nil {
			return err
		}
		if last > bufLen(d, 2) {
			return bad("offsets reach %d past %d bytes of data", last, bufLen(d, 2))
		}
		return nil
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		_, last, err := offsets(8)
		if err != nil {
			return err
		}
		if last > bufLen(d, 2) {
			return bad("offsets reach %d past %d bytes of data", last, bufLen(d, 2))
		}
		return nil
	case *arrow.ListType, *arrow.LargeListType:
		w := int64(4)
		if _, ok := t.(*arrow.LargeListType); ok {
			w = 8
		}
		_, last, err := offsets(w)
		if err != nil {
			return err
		}
		if len(d.Children()) != 1 {
			return bad("list with %d children", len(d.Children()))
		}
		ch := d.Children()[0]
		if last > int64(ch.Len()) {
			return bad("list offsets reach %d past %d child rows", last, ch.Len())
		}
		return validateData(name+"[]", ch)
	case *arrow.FixedSizeListType:
		if len(d.Children()) != 1 {
			return bad("list with %d children", len(d.Children()))
		}
		if need := end * int64(t.Len()); int64(d.Children()[0].Len()) < need {
			return bad("fixed-size list needs %d child rows, has %d", need, d.Children()[0].Len())
		}
		return validateData(name+"[]", d.Children()[0])
	case *arrow.StructType:
		if len(d.Children()) != t.NumFields() {
			return bad("struct with %d children, type has %d", len(d.Children()), t.NumFields())
		}
		for k, ch := range d.Children() {
			if int64(ch.Len()) < end {
				return bad("struct field %q has %d rows, needs %d", t.Field(k).Name, ch.Len(), end)
			}
			if err := validateData(name+"."+t.Field(k).Name, ch); err != nil {
				return err
			}
		}
		return nil
	case *arrow.BooleanType:
		if bufLen(d, 1)*8 < end {
			return bad("bool buffer of %d bytes for %d rows", bufLen(d, 1), end)
		}
		return nil
	}
	if fw, ok := dt.(arrow.FixedWidthDataType); ok {
		bits := int64(fw.BitWidth())
		if bufLen(d, 1)*8 < end*bits {
			return bad("values buffer of %d bytes for %d rows of %s", bufLen(d, 1), end, dt)
		}
		return nil
	}
	return fmt.Errorf("%w: column %q of type %s", ErrUnsupportedType, name, dt)
}

// checkBatch validates a record produced by user code before it flows on: every column's
// buffers and the batch's schema against want (when want is not nil).
func checkBatch(rec arrow.Record, want *arrow.Schema) error {
	if rec == nil {
		return fmt.Errorf("%w: returned a nil batch", ErrUDF)
	}
	if want != nil {
		if d := schemaDiff(want, rec.Schema()); d != "" {
			return fmt.Errorf("%w: %w: %s", ErrUDF, ErrSchemaMismatch, d)
		}
	}
	if err := validateRecord(rec); err != nil {
		return fmt.Errorf("%w: %w", ErrUDF, err)
	}
	return nil
}
