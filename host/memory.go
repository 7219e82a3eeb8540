package host

import (
	"github.com/tetratelabs/wazero/experimental"
)

// pageSize is the size of a wasm page.
const pageSize = 1 << 16

// tableEntryBytes is what one table entry costs: wazero keeps a table as a []uintptr.
const tableEntryBytes = 8

// memoryLimiter hands wazero a linear memory that refuses to grow past limit bytes and records
// that it did, so that a trap after a refused grow is reported as the memory limit. One
// memoryLimiter serves one instance, which runs one call at a time: no locking.
type memoryLimiter struct {
	limit   uint64 // bytes of linear memory: the call's memory limit less tables
	tables  uint64 // bytes reserved for the module's tables out of the call's memory limit
	mem     *linearMemory
	refused uint64 // the size of the last refused request, in bytes; 0: none this call
}

// Allocate implements experimental.MemoryAllocator.
func (a *memoryLimiter) Allocate(capacity, max uint64) experimental.LinearMemory {
	reserve := max
	if reserve > a.limit {
		reserve = a.limit
	}
	a.mem = newLinearMemory(a, reserve)
	return a.mem
}

// linearMemory is a wasm memory of at most len(reserved) bytes. On Linux the whole reservation is
// mapped up front (address space only, committed as the guest touches it), so growing never
// copies; elsewhere it is a Go slice that doubles.
type linearMemory struct {
	a      *memoryLimiter
	buf    []byte // the reservation (Linux) or the current backing array
	max    uint64
	mapped bool // buf is an mmap reservation of max bytes
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.a.limit || size > m.max {
		m.a.refused = size
		return nil
	}
	return m.grow(size)
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() { m.free() }

// growSlice grows a Go-slice-backed memory, doubling its capacity up to max so that growing page
// by page copies O(log n) times.
func growSlice(m *linearMemory, size uint64) []byte {
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	c := 2 * uint64(cap(m.buf))
	if c < size {
		c = size
	}
	if c > m.max {
		c = m.max
	}
	b := make([]byte, size, c)
	copy(b, m.buf)
	m.buf = b
	return b
}
