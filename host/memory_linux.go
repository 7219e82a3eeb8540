//go:build linux

package host

import "syscall"

func newLinearMemory(a *memoryLimiter, reserve uint64) *linearMemory {
	m := &linearMemory{a: a, max: reserve}
	if reserve == 0 {
		return m
	}
	b, err := syscall.Mmap(-1, 0, int(reserve), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		// Out of address space: fall back to a growing Go slice.
		return m
	}
	m.buf, m.mapped = b, true
	return m
}

func (m *linearMemory) grow(size uint64) []byte {
	if m.mapped {
		return m.buf[:size:size]
	}
	return growSlice(m, size)
}

func (m *linearMemory) free() {
	if m.mapped {
		_ = syscall.Munmap(m.buf[:cap(m.buf)])
		m.mapped = false
	}
	m.buf = nil
}
