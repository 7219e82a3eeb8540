package gpu

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
)

// MaxSafetensorsHeader is the largest JSON header ReadSafetensors accepts, as in the reference
// implementation.
const MaxSafetensorsHeader = 100_000_000

type stEntry struct {
	DType       string    `json:"dtype"`
	Shape       []int     `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors (F32, I32 or I64) and optional string metadata in the
// safetensors format: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data. Names are written in
// sorted order, so the output is deterministic.
func WriteSafetensors(w io.Writer, tensors map[string]*Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		if n == "__metadata__" {
			return opErr("safetensors", ErrArgument, "tensor name __metadata__ is reserved")
		}
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off uint64
	for _, n := range names {
		t := tensors[n]
		if t == nil || t.st.freed {
			return opErr("safetensors", ErrFreed, "tensor %q is nil or freed", n)
		}
		size := uint64(t.Numel() * t.st.dtype.Size())
		header[n] = stEntry{DType: t.st.dtype.String(), Shape: t.Shape(), DataOffsets: [2]uint64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors header: %w", err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	for _, n := range names {
		t := tensors[n]
		if err := t.syncHost(); err != nil {
			return err
		}
		c, err := contiguousCopy("safetensors", t)
		if err != nil {
			return err
		}
		var buf []byte
		switch t.st.dtype {
		case Float32:
			buf = make([]byte, 4*len(c.st.f32))
			for i, v := range c.st.f32 {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
		case Int32:
			buf = make([]byte, 4*len(c.st.i32))
			for i, v := range c.st.i32 {
				binary.LittleEndian.PutUint32(buf[4*i:], uint32(v))
			}
		case Int64:
			buf = make([]byte, 8*len(c.st.i64))
			for i, v := range c.st.i64 {
				binary.LittleEndian.PutUint64(buf[8*i:], uint64(v))
			}
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// SaveSafetensors writes tensors to the file at path; see WriteSafetensors.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	var b bytes.Buffer
	if err := WriteSafetensors(&b, tensors, metadata); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// ReadSafetensors parses safetensors bytes into tensors counted in a (nil: uncounted) and the
// header's metadata. F32, I32 and I64 load as themselves; BF16, F16 and F64 are converted to
// F32. The input is untrusted: every length and offset is checked against the data, the
// tensors must tile the data buffer exactly (as the reference implementation requires), and
// nothing larger than the input is allocated.
func ReadSafetensors(data []byte, a *Arena) (map[string]*Tensor, map[string]string, error) {
	bad := func(format string, args ...any) error {
		return opErr("safetensors", ErrMalformed, format, args...)
	}
	if len(data) < 8 {
		return nil, nil, bad("%d bytes is shorter than the length prefix", len(data))
	}
	hlen := binary.LittleEndian.Uint64(data)
	if hlen > MaxSafetensorsHeader || hlen > uint64(len(data)-8) {
		return nil, nil, bad("header length %d exceeds the data", hlen)
	}
	hdr := data[8 : 8+hlen]
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, bad("header is not a JSON object")
	}
	body := data[8+hlen:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, bad("header: %v", err)
	}
	var meta map[string]string
	type item struct {
		name string
		e    stEntry
		dt   DType
		n    int
	}
	items := make([]item, 0, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, bad("metadata: %v", err)
			}
			continue
		}
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, bad("tensor %q: %v", name, err)
		}
		var dt DType
		switch e.DType {
		case "F32":
			dt = Float32
		case "I32":
			dt = Int32
		case "I64":
			dt = Int64
		case "BF16":
			dt = BFloat16
		case "F16":
			dt = Float16
		case "F64":
			dt = 255
		default:
			return nil, nil, bad("tensor %q: unsupported dtype %q", name, e.DType)
		}
		n, ok := numel(e.Shape)
		if !ok {
			return nil, nil, bad("tensor %q: invalid shape %v", name, e.Shape)
		}
		size := uint64(8)
		if dt != 255 {
			size = uint64(dt.Size())
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b > end || end > uint64(len(body)) || end-b != uint64(n)*size {
			return nil, nil, bad("tensor %q: offsets %v do not hold %v %s values in %d bytes", name, e.DataOffsets, e.Shape, e.DType, len(body))
		}
		items = append(items, item{name, e, dt, n})
	}
	slices.SortFunc(items, func(x, y item) int {
		switch {
		case x.e.DataOffsets[0] < y.e.DataOffsets[0]:
			return -1
		case x.e.DataOffsets[0] > y.e.DataOffsets[0]:
			return 1
		}
		return 0
	})
	var at uint64
	for _, it := range items {
		if it.e.DataOffsets[0] != at {
			return nil, nil, bad("tensor %q starts at %d, want %d (gap or overlap)", it.name, it.e.DataOffsets[0], at)
		}
		at = it.e.DataOffsets[1]
	}
	if at != uint64(len(body)) {
		return nil, nil, bad("tensors cover %d of %d data bytes", at, len(body))
	}
	out := make(map[string]*Tensor, len(items))
	for _, it := range items {
		src := body[it.e.DataOffsets[0]:it.e.DataOffsets[1]]
		want := Float32
		if it.dt == Int32 || it.dt == Int64 {
			want = it.dt
		}
		t, err := alloc("safetensors", a, CPU, want, it.e.Shape)
		if err != nil {
			return nil, nil, err
		}
		switch it.dt {
		case Float32:
			for i := range t.st.f32 {
				t.st.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
			}
		case Int32:
			for i := range t.st.i32 {
				t.st.i32[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
			}
		case Int64:
			for i := range t.st.i64 {
				t.st.i64[i] = int64(binary.LittleEndian.Uint64(src[8*i:]))
			}
		case BFloat16:
			for i := range t.st.f32 {
				t.st.f32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
			}
		case Float16:
			for i := range t.st.f32 {
				t.st.f32[i] = halfToFloat(binary.LittleEndian.Uint16(src[2*i:]))
			}
		case 255:
			for i := range t.st.f32 {
				t.st.f32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
			}
		}
		out[it.name] = t
	}
	return out, meta, nil
}

// LoadSafetensors reads the file at path; see ReadSafetensors.
func LoadSafetensors(path string, a *Arena) (map[string]*Tensor, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ReadSafetensors(data, a)
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
