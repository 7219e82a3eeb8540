package data

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	flatbuffers "github.com/google/flatbuffers/go"
)

// Helpers for datasets that WASM guests read and build through the host (the dataset_* host
// functions): schemas and multi-batch streams in Arrow IPC, decoded from untrusted bytes with
// the same checks as DecodeIPC.

// ipcEOS is the end-of-stream marker: a continuation token and a zero metadata length.
var ipcEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// EncodeIPCSchema writes schema as an Arrow IPC stream with no batch: the schema message and the
// end-of-stream marker.
func EncodeIPCSchema(schema *arrow.Schema) ([]byte, error) {
	if schema == nil {
		return nil, fmt.Errorf("%w: EncodeIPCSchema of a nil schema", ErrBadInput)
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode IPC schema: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeIPCSchema reads the schema of untrusted Arrow IPC stream bytes holding a schema message
// and no batch (as EncodeIPCSchema writes them). Like DecodeIPC it checks the framing and the
// metadata before decoding, and refuses the types DecodeIPC refuses, naming the column. Errors
// wrap ErrBadInput, ErrUnsupportedType or ErrTooLarge.
func DecodeIPCSchema(b []byte) (schema *arrow.Schema, err error) {
	if len(b) > MaxIPCBytes {
		return nil, fmt.Errorf("%w: IPC payload of %d bytes, limit %d", ErrTooLarge, len(b), MaxIPCBytes)
	}
	kinds, err := scanMessages(b)
	if err != nil {
		return nil, err
	}
	if len(kinds) != 1 || kinds[0] != hdrSchema {
		return nil, fmt.Errorf("%w: an IPC schema stream holds one schema message and no batch, got message kinds %v", ErrBadInput, kinds)
	}
	return readIPCSchema(b)
}

// readIPCSchema decodes the schema message that b, checked by scanMessages, starts with.
func readIPCSchema(b []byte) (schema *arrow.Schema, err error) {
	defer func() {
		if p := recover(); p != nil {
			schema, err = nil, fmt.Errorf("%w: IPC schema is malformed: %v", ErrBadInput, p)
		}
	}()
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: IPC schema: %v", ErrBadInput, err)
	}
	defer r.Release()
	schema = r.Schema()
	for _, f := range schema.Fields() {
		if err := checkIPCType(f.Name, f.Type); err != nil {
			return nil, err
		}
	}
	return schema, nil
}

// EncodeIPCStream writes recs, which must all have schema's fields, as one Arrow IPC stream: the
// schema, each batch in order and the end-of-stream marker. With no recs it is EncodeIPCSchema.
func EncodeIPCStream(schema *arrow.Schema, recs []arrow.Record) ([]byte, error) {
	if schema == nil {
		return nil, fmt.Errorf("%w: EncodeIPCStream of a nil schema", ErrBadInput)
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for i, rec := range recs {
		if err := CheckSchema(schema, rec.Schema()); err != nil {
			w.Close()
			return nil, fmt.Errorf("batch %d: %w", i, err)
		}
		if err := w.Write(rec); err != nil {
			w.Close()
			return nil, fmt.Errorf("encode IPC batch %d: %w", i, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode IPC: %w", err)
	}
	return buf.Bytes(), nil
}

// CheckSchema returns nil when got has want's columns, names and types in order (metadata and
// nullability aside), and otherwise an error wrapping ErrSchemaMismatch that names the first
// column that differs.
func CheckSchema(want, got *arrow.Schema) error {
	if d := schemaDiff(want, got); d != "" {
		return fmt.Errorf("%w: %s", ErrSchemaMismatch, d)
	}
	return nil
}

// IPCStream is a parsed Arrow IPC stream of any number of batches, each of which is decoded
// (with DecodeIPC's checks) only when read. Make it with ParseIPCStream.
type IPCStream struct {
	schema  *arrow.Schema
	head    []byte   // the schema message's frame
	batches [][]byte // each batch message's frame
}

// ParseIPCStream checks the framing and metadata of untrusted Arrow IPC stream bytes holding a
// schema and zero or more record batches (as EncodeIPCStream writes them), and decodes the
// schema. The batches' buffers are checked as Batch or Dataset decodes them. b must not change
// while the stream is in use. Errors wrap ErrBadInput, ErrUnsupportedType or ErrTooLarge.
func ParseIPCStream(b []byte) (*IPCStream, error) {
	if len(b) > MaxIPCBytes {
		return nil, fmt.Errorf("%w: IPC payload of %d bytes, limit %d", ErrTooLarge, len(b), MaxIPCBytes)
	}
	kinds, err := scanMessages(b)
	if err != nil {
		return nil, err
	}
	if len(kinds) == 0 || kinds[0] != hdrSchema {
		return nil, fmt.Errorf("%w: an IPC stream starts with a schema message", ErrBadInput)
	}
	for i, k := range kinds[1:] {
		switch k {
		case hdrRecordBatch:
		case hdrDictionary:
			return nil, fmt.Errorf("%w: IPC dictionaries are not supported", ErrUnsupportedType)
		default:
			return nil, fmt.Errorf("%w: IPC message %d must be a record batch, got kind %d", ErrBadInput, i+1, k)
		}
	}
	frames := ipcFrames(b)
	s := &IPCStream{head: frames[0], batches: frames[1:]}
	if s.schema, err = readIPCSchema(append(append([]byte(nil), s.head...), ipcEOS...)); err != nil {
		return nil, err
	}
	return s, nil
}

// ipcFrames splits stream bytes that scanMessages accepted into their messages' frames (length
// prefix, metadata and body), the end-of-stream marker left out.
func ipcFrames(b []byte) [][]byte {
	var out [][]byte
	for off := 0; off+4 <= len(b); {
		start := off
		n := binary.LittleEndian.Uint32(b[off:])
		off += 4
		if n == 0xFFFFFFFF {
			n = binary.LittleEndian.Uint32(b[off:])
			off += 4
		}
		if n == 0 {
			break
		}
		meta := b[off : off+int(n)]
		off += int(n)
		off += int(messageBodyLen(meta))
		out = append(out, b[start:off])
	}
	return out
}

// messageBodyLen reads the body length of a message's metadata that scanMessages accepted.
func messageBodyLen(meta []byte) int64 {
	tab := flatbuffers.Table{Bytes: meta, Pos: flatbuffers.GetUOffsetT(meta)}
	if o := tab.Offset(10); o != 0 {
		return tab.GetInt64(flatbuffers.UOffsetT(o) + tab.Pos)
	}
	return 0
}

// Schema is the stream's schema.
func (s *IPCStream) Schema() *arrow.Schema { return s.schema }

// NumBatches is how many record batches the stream holds.
func (s *IPCStream) NumBatches() int { return len(s.batches) }

// Batch decodes batch i with DecodeIPC's checks. The caller owns the record and must Release it.
func (s *IPCStream) Batch(i int) (arrow.Record, error) {
	if i < 0 || i >= len(s.batches) {
		return nil, fmt.Errorf("%w: batch %d of a stream of %d", ErrBadInput, i, len(s.batches))
	}
	buf := make([]byte, 0, len(s.head)+len(s.batches[i])+len(ipcEOS))
	buf = append(append(append(buf, s.head...), s.batches[i]...), ipcEOS...)
	rec, err := DecodeIPC(buf, nil)
	if err != nil {
		return nil, fmt.Errorf("batch %d: %w", i, err)
	}
	return rec, nil
}

// Dataset is a one-partition dataset of the stream's batches, decoded one at a time as the
// execution reads them.
func (s *IPCStream) Dataset() *Dataset { return newDataset(&ipcSource{s: s}) }

type ipcSource struct{ s *IPCStream }

func (src *ipcSource) name() string { return fmt.Sprintf("from_ipc(%d batches)", len(src.s.batches)) }

func (src *ipcSource) run(ctx context.Context, st *stage) error {
	for i := range src.s.batches {
		rec, err := src.s.Batch(i)
		if err != nil {
			return err
		}
		st.st.batchesIn.Add(1)
		st.st.rowsIn.Add(rec.NumRows())
		if err := st.emit(ctx, rec, 0); err != nil {
			return err
		}
	}
	return nil
}

// FromPull makes a one-partition dataset of the batches next returns, in order, until it returns
// nil (the end) or an error. The dataset hands each batch on and so takes ownership of it; it can
// run once, as next cannot rewind. name names the source in progress and errors.
func FromPull(name string, next func(ctx context.Context) (arrow.Record, error)) *Dataset {
	return newDataset(&pullSource{n: name, next: next})
}

type pullSource struct {
	n    string
	next func(ctx context.Context) (arrow.Record, error)
}

func (src *pullSource) name() string { return src.n }

func (src *pullSource) run(ctx context.Context, st *stage) error {
	for {
		rec, err := src.next(ctx)
		if err != nil || rec == nil {
			return err
		}
		st.st.batchesIn.Add(1)
		st.st.rowsIn.Add(rec.NumRows())
		if err := st.emit(ctx, rec, 0); err != nil {
			return err
		}
	}
}
