package data

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// CountingAllocator wraps an Arrow allocator and counts the bytes it holds now and at its peak.
// It is safe for concurrent use.
type CountingAllocator struct {
	mem  memory.Allocator
	cur  atomic.Int64
	peak atomic.Int64
}

// NewCountingAllocator counts the allocations made through mem (a Go allocator when nil).
func NewCountingAllocator(mem memory.Allocator) *CountingAllocator {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &CountingAllocator{mem: mem}
}

func (a *CountingAllocator) add(n int64) {
	c := a.cur.Add(n)
	for {
		p := a.peak.Load()
		if c <= p || a.peak.CompareAndSwap(p, c) {
			return
		}
	}
}

// Allocate implements memory.Allocator.
func (a *CountingAllocator) Allocate(size int) []byte {
	b := a.mem.Allocate(size)
	a.add(int64(len(b)))
	return b
}

// Reallocate implements memory.Allocator.
func (a *CountingAllocator) Reallocate(size int, b []byte) []byte {
	old := len(b)
	nb := a.mem.Reallocate(size, b)
	a.add(int64(len(nb) - old))
	return nb
}

// Free implements memory.Allocator.
func (a *CountingAllocator) Free(b []byte) {
	a.add(-int64(len(b)))
	a.mem.Free(b)
}

// Current is the number of bytes allocated and not yet freed.
func (a *CountingAllocator) Current() int64 { return a.cur.Load() }

// Peak is the largest value Current has had.
func (a *CountingAllocator) Peak() int64 { return a.peak.Load() }

// ResetPeak sets the peak to the current value.
func (a *CountingAllocator) ResetPeak() { a.peak.Store(a.cur.Load()) }

// errAllocLimit is the value a limitAllocator panics with; DecodeIPC recovers it.
type errAllocLimit struct{ limit int64 }

func (e errAllocLimit) Error() string {
	return fmt.Sprintf("decoding needs more than %d bytes", e.limit)
}

// limitAllocator refuses (by panicking with errAllocLimit, recovered by the caller) to hold more
// than limit bytes at once, so a forged length in untrusted bytes cannot make us allocate
// gigabytes.
type limitAllocator struct {
	mem   memory.Allocator
	limit int64
	cur   atomic.Int64
}

func (a *limitAllocator) Allocate(size int) []byte {
	if size < 0 || a.cur.Add(int64(size)) > a.limit {
		panic(errAllocLimit{a.limit})
	}
	return a.mem.Allocate(size)
}

func (a *limitAllocator) Reallocate(size int, b []byte) []byte {
	if size < 0 || a.cur.Add(int64(size-len(b))) > a.limit {
		panic(errAllocLimit{a.limit})
	}
	return a.mem.Reallocate(size, b)
}

func (a *limitAllocator) Free(b []byte) {
	a.cur.Add(-int64(len(b)))
	a.mem.Free(b)
}
