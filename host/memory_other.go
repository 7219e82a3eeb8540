//go:build !linux

package host

func newLinearMemory(a *memoryLimiter, reserve uint64) *linearMemory {
	return &linearMemory{a: a, max: reserve}
}

func (m *linearMemory) grow(size uint64) []byte { return growSlice(m, size) }

func (m *linearMemory) free() { m.buf = nil }
