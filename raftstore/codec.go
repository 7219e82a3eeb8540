package raftstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// logVersion is the first byte of every encoded log entry.
//
// Version 1 layout, integers as unsigned varints unless said otherwise:
//
//	version(1 byte) index term type(1 byte) len(data) data len(extensions) extensions
//	appendedAt: 0 (zero time) | 1 seconds(signed varint) nanoseconds
const logVersion = 1

// maxVarintLen is the most bytes a uint64 varint takes.
const maxVarintLen = binary.MaxVarintLen64

// EncodeLog encodes l in the versioned format DecodeLog reads. AppendedAt keeps its instant but
// not its location or monotonic reading.
func EncodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+4*maxVarintLen+2+len(l.Data)+len(l.Extensions)+2*maxVarintLen)
	b = append(b, logVersion)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	if l.AppendedAt.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, l.AppendedAt.Unix())
		b = binary.AppendUvarint(b, uint64(l.AppendedAt.Nanosecond()))
	}
	return b
}

// DecodeLog decodes an entry written by EncodeLog. It reads bytes from disk that may be damaged:
// it never panics, allocates no more than len(b), and reports any flaw as ErrCorrupt. The
// returned Data and Extensions are fresh copies (nil when empty).
func DecodeLog(b []byte) (raft.Log, error) {
	d := decoder{b: b}
	var l raft.Log
	if v := d.byte(); d.err == nil && v != logVersion {
		return l, fmt.Errorf("%w: log encoding version %d, want %d", ErrCorrupt, v, logVersion)
	}
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.Type = raft.LogType(d.byte())
	l.Data = d.bytes()
	l.Extensions = d.bytes()
	switch flag := d.byte(); flag {
	case 0:
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			d.fail("nanoseconds %d out of range", nsec)
		}
		l.AppendedAt = time.Unix(sec, int64(nsec))
	default:
		d.fail("time flag %d", flag)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return raft.Log{}, d.err
	}
	return l, nil
}

// decoder reads from b, remembering the first error; after one, every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string, copied; nil when empty.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b)
	d.b = d.b[n:]
	return out
}
