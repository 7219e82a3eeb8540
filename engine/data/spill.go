package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Spill files hold record batches as Arrow IPC streams in the execution's temp folder.

var spillSeq atomic.Int64

type spillWriter struct {
	path  string
	f     *os.File
	bw    *bufio.Writer
	w     *ipc.Writer
	mem   memory.Allocator
	rows  int64
	bytes int64
	st    *opCounters
}

// newSpill creates an empty spill file for stage s.
func (s *stage) newSpill(tag string) (*spillWriter, error) {
	dir, err := s.x.tempDir()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("%s-%d-*.arrows", tag, spillSeq.Add(1)))
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	return &spillWriter{path: f.Name(), f: f, bw: bufio.NewWriterSize(f, 1<<16), mem: s.mem(), st: s.st}, nil
}

// write appends rec (not released).
func (w *spillWriter) write(rec arrow.Record) error {
	if rec.NumRows() == 0 {
		return nil
	}
	if w.w == nil {
		w.w = ipc.NewWriter(w.bw, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(w.mem))
	}
	if err := w.w.Write(rec); err != nil {
		return fmt.Errorf("spill %s: %w", w.path, err)
	}
	n := recordBytes(rec)
	w.rows += rec.NumRows()
	w.bytes += n
	w.st.spilled.Add(n)
	return nil
}

// finish flushes and closes the file and returns what it holds.
func (w *spillWriter) finish() (spillFile, error) {
	var err error
	if w.w != nil {
		err = w.w.Close()
	}
	if e := w.bw.Flush(); err == nil {
		err = e
	}
	if e := w.f.Close(); err == nil {
		err = e
	}
	if err != nil {
		return spillFile{}, fmt.Errorf("spill %s: %w", w.path, err)
	}
	return spillFile{path: w.path, rows: w.rows, bytes: w.bytes}, nil
}

// abort closes and removes the file.
func (w *spillWriter) abort() {
	if w.w != nil {
		w.w.Close()
	}
	w.f.Close()
	os.Remove(w.path)
}

type spillFile struct {
	path  string
	rows  int64
	bytes int64
}

type spillReader struct {
	f *os.File
	r *ipc.Reader
}

// openSpill reads a spill file back batch by batch.
func openSpill(sf spillFile, mem memory.Allocator) (*spillReader, error) {
	f, err := os.Open(sf.path)
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	if sf.rows == 0 {
		return &spillReader{f: f}, nil
	}
	r, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<16), ipc.WithAllocator(mem))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spill %s: %w", sf.path, err)
	}
	return &spillReader{f: f, r: r}, nil
}

// next returns the next batch (owned by the caller) or io.EOF.
func (r *spillReader) next() (arrow.Record, error) {
	if r.r == nil || !r.r.Next() {
		if r.r != nil && r.r.Err() != nil && !errors.Is(r.r.Err(), io.EOF) {
			return nil, fmt.Errorf("spill %s: %w", r.f.Name(), r.r.Err())
		}
		return nil, io.EOF
	}
	rec := r.r.Record()
	rec.Retain()
	return rec, nil
}

func (r *spillReader) close() {
	if r.r != nil {
		r.r.Release()
	}
	r.f.Close()
	os.Remove(r.f.Name())
}
