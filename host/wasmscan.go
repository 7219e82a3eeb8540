package host

import (
	"errors"
	"fmt"
)

// memoryScan is what scanMemory finds about a module's memory.
type memoryScan struct {
	defined  bool   // the module defines a memory
	imported bool   // the module imports a memory
	min, max uint32 // pages; max 0: none declared
}

// scanMemory reads a module's import and memory sections for its memory's bounds, which wazero's
// CompiledModule reports only for exported memories. It reads just enough of the binary format;
// wazero validates the rest.
func scanMemory(wasm []byte) (memoryScan, error) {
	var ms memoryScan
	r := &reader{b: wasm, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return ms, err
		}
		size, err := r.u32()
		if err != nil {
			return ms, err
		}
		if uint64(r.off)+uint64(size) > uint64(len(r.b)) {
			return ms, fmt.Errorf("section %d at offset %d: %d bytes run past the end of the module (truncated?)", id, r.off, size)
		}
		sec := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		switch id {
		case 2: // imports
			if err := scanImports(sec, &ms); err != nil {
				return ms, fmt.Errorf("import section: %w", err)
			}
		case 5: // memories
			n, err := sec.u32()
			if err != nil {
				return ms, fmt.Errorf("memory section: %w", err)
			}
			if n > 0 {
				min, max, err := sec.limits()
				if err != nil {
					return ms, fmt.Errorf("memory section: %w", err)
				}
				ms.defined, ms.min, ms.max = true, min, max
			}
		}
	}
	return ms, nil
}

func scanImports(r *reader, ms *memoryScan) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if err := r.skipName(); err != nil {
			return err
		}
		if err := r.skipName(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // func: type index
			_, err = r.u32()
		case 1: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				_, _, err = r.limits()
			}
		case 2: // memory
			var min, max uint32
			if min, max, err = r.limits(); err == nil {
				ms.imported, ms.min, ms.max = true, min, max
			}
		case 3: // global: valtype, mutability
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
		case 4: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return fmt.Errorf("import %d: unknown kind %#x", i, kind)
		}
		if err != nil {
			return fmt.Errorf("import %d: %w", i, err)
		}
	}
	return nil
}

var errShort = errors.New("unexpected end of section")

type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() (uint32, error) {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, errors.New("integer overflows 32 bits")
			}
			return uint32(v), nil
		}
	}
	return 0, errors.New("integer longer than 5 bytes")
}

// u64 reads an unsigned LEB128 of at most 10 bytes (memory64 limits).
func (r *reader) u64() (uint64, error) {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && c > 1 {
			return 0, errors.New("integer overflows 64 bits")
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("integer longer than 10 bytes")
}

func (r *reader) skipName() error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if uint64(r.off)+uint64(n) > uint64(len(r.b)) {
		return errShort
	}
	r.off += int(n)
	return nil
}

// limits reads memory or table limits; 64-bit limits above 32 bits are clamped.
func (r *reader) limits() (min, max uint32, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 7 {
		return 0, 0, fmt.Errorf("unknown limits flags %#x", flags)
	}
	read := r.u32
	if flags&4 != 0 { // memory64
		read = func() (uint32, error) {
			v, err := r.u64()
			if v > 1<<32-1 {
				v = 1<<32 - 1
			}
			return uint32(v), err
		}
	}
	if min, err = read(); err != nil {
		return 0, 0, err
	}
	if flags&1 != 0 {
		if max, err = read(); err != nil {
			return 0, 0, err
		}
	}
	return min, max, nil
}
