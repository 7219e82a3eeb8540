// Package batch registers batch functions for Lumen's Data library: guest functions that take
// and return one Arrow record batch, for a pipeline's map_batches step (docs/data.md). On the
// wire a batch function is a bytes task (or bytes method) whose input and output are each one
// Arrow IPC stream holding a schema and one record batch (docs/abi.md §4.1, "Batch functions");
// this package decodes and encodes them, so the function sees arrow.Record values:
//
//	func init() {
//		batch.Task("double", func(rec arrow.Record) (arrow.Record, error) { … })
//	}
//
// A pipeline names it "module.double". Each worker of a map_batches step has an instance of its
// own, kept for every batch the worker is given, so state in package variables (a model built on
// the first call) is built once per worker. For state built up front, register an actor type
// with lumen.Actor and a method with Method: each worker is then an actor of that type, its
// constructor called once with null arguments, and the pipeline names "module.Type.method".
//
// It is a separate package from the SDK because Arrow adds about 4 MB to a module: guests that
// do not use batches do not pay for it.
package batch

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// Func transforms one record batch. It must not release in; the record it returns is released
// by the SDK once encoded.
type Func func(in arrow.Record) (arrow.Record, error)

// Task registers a batch function called name: a bytes task whose input and output are Arrow IPC.
func Task(name string, fn Func) {
	lumen.BytesTask(name, func(in []byte) ([]byte, error) { return Call(name, in, fn) })
}

// Method registers a batch method of an actor type, whose state the method receives.
func Method[S any](t *lumen.ActorType[S], name string, fn func(s *S, in arrow.Record) (arrow.Record, error)) {
	full := t.Name() + "." + name
	lumen.BytesMethod(t, name, func(s *S, in []byte) ([]byte, error) {
		return Call(full, in, func(rec arrow.Record) (arrow.Record, error) { return fn(s, rec) })
	})
}

// Call decodes one IPC stream, runs fn on its batch and encodes the result. Task and Method use
// it; it is exported so a function can be tested natively on bytes.
func Call(name string, in []byte, fn Func) ([]byte, error) {
	rec, err := Decode(in)
	if err != nil {
		return nil, lumen.NewError("bad_input", "%s: %v", name, err)
	}
	defer rec.Release()
	out, err := fn(rec)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, lumen.NewError("bad_output", "%s returned no batch", name)
	}
	defer out.Release()
	return Encode(out)
}

// Decode reads the first record batch of an Arrow IPC stream. The caller releases it. A panic
// inside Arrow's reader is recovered and reported, and buffers are bounded by the stream's size,
// but Decode trusts the stream's framing: a forged schema length can still make Arrow's reader
// allocate beyond the guest's memory limit, which the host stops as a limit. Its input is the
// host's own encoding of a batch; the host, which takes guest output as untrusted, reads it with
// the hardened, fuzzed engine/data.DecodeIPC instead.
func Decode(b []byte) (rec arrow.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, fmt.Errorf("read Arrow IPC: malformed stream (%v)", p)
		}
	}()
	lim := &limitAllocator{mem: memory.NewGoAllocator(), left: 4*int64(len(b)) + 1<<20}
	r, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(lim))
	if err != nil {
		return nil, fmt.Errorf("read Arrow IPC: %w", err)
	}
	defer r.Release()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("read Arrow IPC batch: %w", err)
		}
		return nil, fmt.Errorf("read Arrow IPC: the stream holds no record batch")
	}
	rec = r.Record()
	rec.Retain()
	return rec, nil
}

// limitAllocator refuses, by panicking (Decode recovers), to allocate more than left bytes in
// all: a forged length in a malformed stream cannot make Decode take the guest's memory.
type limitAllocator struct {
	mem  memory.Allocator
	left int64
}

func (a *limitAllocator) take(n int) {
	if a.left -= int64(n); a.left < 0 {
		panic(fmt.Sprintf("allocation of %d bytes past the stream's bound", n))
	}
}

func (a *limitAllocator) Allocate(n int) []byte { a.take(n); return a.mem.Allocate(n) }

func (a *limitAllocator) Reallocate(n int, b []byte) []byte {
	a.take(n - len(b))
	return a.mem.Reallocate(n, b)
}

func (a *limitAllocator) Free(b []byte) { a.mem.Free(b) }

// Encode writes a record batch as an Arrow IPC stream: its schema, the batch, end of stream.
func Encode(rec arrow.Record) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("write Arrow IPC: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("write Arrow IPC: %w", err)
	}
	return buf.Bytes(), nil
}
