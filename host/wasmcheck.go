package host

import (
	"errors"
	"fmt"
)

// checkModule walks a module's binary before wazero decodes it. wazero sizes its allocations by
// the counts and lengths a module declares, before reading what they count: a 15-byte module that
// declares 2^32-1 imports makes it allocate hundreds of gigabytes and kills the process with a
// fatal (unrecoverable) out-of-memory error. checkModule refuses any count or length larger than
// the bytes left to hold it, and counts above the limits below (those of V8), so that decoding
// costs memory in proportion to the module's size. It also reports the module's memory, which
// wazero's CompiledModule describes only when exported.
//
// It reads the structure: section and subsection sizes, vectors, names, value types, limits,
// constant expressions, and the local declarations of function bodies. Of instructions it decodes
// only their immediates, to find which tables the code grows (table.grow); validating them is left
// to wazero.
func checkModule(wasm []byte) (memoryScan, error) {
	var ms memoryScan
	r := &reader{b: wasm, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return ms, err
		}
		size, err := r.u32()
		if err != nil {
			return ms, fmt.Errorf("section %d: size: %w", id, err)
		}
		if uint64(size) > uint64(r.left()) {
			return ms, fmt.Errorf("section %d at offset %d: %d bytes run past the end of the module (truncated?)", id, r.off, size)
		}
		sec := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		if err := checkSection(id, sec, &ms); err != nil {
			return ms, fmt.Errorf("section %d (%s) at offset %d: %w", id, sectionName(id), sec.off, err)
		}
	}
	return ms, nil
}

// memoryScan is what checkModule finds about a module's memory and tables.
type memoryScan struct {
	defined  bool   // the module defines a memory
	imported bool   // the module imports a memory
	min, max uint32 // pages; max 0: none declared

	tables        []tableScan // the tables the module defines, in index order
	importsTables bool        // the module imports a table
	// grows holds the indices of the tables a table.grow instruction names. When the code could
	// not be decoded (an instruction this scan does not know, which wazero then refuses or knows
	// better), growsAll is set instead: every table must be taken as growing.
	grows    map[uint32]bool
	growsAll bool
}

// tableScan is one table's declared limits, in entries.
type tableScan struct {
	min, max uint32
	hasMax   bool
}

// tableEntries returns how many entries the module's tables may ever hold together: a table the
// code never grows stays at its declared size (table.init, table.copy and table.set do not grow
// one); a growing table may reach its declared maximum. It fails for a growing table with no
// maximum, which could take any amount of memory.
func (ms *memoryScan) tableEntries() (uint64, error) {
	var n uint64
	for i, t := range ms.tables {
		switch grown := ms.growsAll || ms.grows[uint32(i)]; {
		case !grown:
			n += uint64(t.min)
		case !t.hasMax:
			return 0, fmt.Errorf("table %d has no declared maximum and the code grows it (table.grow): "+
				"tables count against the memory limit, so a growing table must declare its maximum size", i)
		default:
			n += uint64(t.max)
		}
	}
	return n, nil
}

// Limits on what a module declares, after V8's.
const (
	maxTypes        = 1_000_000
	maxFunctions    = 1_000_000
	maxImports      = 100_000
	maxExports      = 100_000
	maxGlobals      = 1_000_000
	maxTables       = 100_000
	maxTags         = 1_000_000
	maxSegments     = 100_000 // element and data segments
	maxSegmentElems = 10_000_000
	maxParams       = 1_000 // and results
	maxLocals       = 50_000
	maxNameSubs     = 1_000_000
)

func sectionName(id byte) string {
	names := [...]string{"custom", "type", "import", "function", "table", "memory", "global", "export",
		"start", "element", "code", "data", "data count", "tag"}
	if int(id) < len(names) {
		return names[id]
	}
	return "unknown"
}

func checkSection(id byte, r *reader, ms *memoryScan) error {
	switch id {
	case 0:
		name, err := r.name()
		if err != nil {
			return err
		}
		if name == "name" {
			return checkNameSection(r)
		}
		return nil
	case 1:
		return r.vec(maxTypes, func(int) error { return r.funcType() })
	case 2:
		return r.vec(maxImports, func(int) error { return r.importEntry(ms) })
	case 3:
		return r.vec(maxFunctions, func(int) error { _, err := r.u32(); return err })
	case 4:
		return r.vec(maxTables, func(int) error {
			t, err := r.table()
			ms.tables = append(ms.tables, t)
			return err
		})
	case 5:
		return r.vec(1, func(int) error {
			min, max, err := r.limits()
			ms.defined, ms.min, ms.max = true, min, max
			return err
		})
	case 6:
		return r.vec(maxGlobals, func(int) error {
			if err := r.valType(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			return r.constExpr()
		})
	case 7:
		return r.vec(maxExports, func(int) error {
			if _, err := r.name(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			_, err := r.u32()
			return err
		})
	case 8, 12:
		_, err := r.u32()
		return err
	case 9:
		return r.vec(maxSegments, func(int) error { return r.elemSegment() })
	case 10:
		return r.vec(maxFunctions, func(int) error { return r.body(ms) })
	case 11:
		return r.vec(maxSegments, func(int) error { return r.dataSegment() })
	case 13:
		return r.vec(maxTags, func(int) error {
			if _, err := r.byte(); err != nil {
				return err
			}
			_, err := r.u32()
			return err
		})
	}
	return nil // unknown sections: wazero refuses them
}

// checkNameSection walks the "name" custom section, which wazero decodes for debug names.
func checkNameSection(r *reader) error {
	for r.left() > 0 {
		sub, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		if uint64(size) > uint64(r.left()) {
			return fmt.Errorf("name subsection %d: %d bytes run past the section", sub, size)
		}
		s := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		switch sub {
		case 0:
			_, err = s.name()
		case 1:
			err = s.nameMap()
		case 2:
			err = s.vec(maxNameSubs, func(int) error {
				if _, err := s.u32(); err != nil {
					return err
				}
				return s.nameMap()
			})
		}
		if err != nil {
			return fmt.Errorf("name subsection %d: %w", sub, err)
		}
	}
	return nil
}

var errShort = errors.New("unexpected end")

type reader struct {
	b   []byte
	off int
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) skip(n uint64) error {
	if n > uint64(r.left()) {
		return errShort
	}
	r.off += int(n)
	return nil
}

// leb reads an LEB128 of at most maxBytes bytes, without interpreting it.
func (r *reader) leb(maxBytes int) (uint64, error) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i < 10 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("LEB128 integer longer than %d bytes", maxBytes)
}

// u32 reads an unsigned LEB128 that fits 32 bits.
func (r *reader) u32() (uint32, error) {
	v, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, errors.New("integer overflows 32 bits")
	}
	return uint32(v), nil
}

// count reads a vector length and checks it against limit and the bytes left: each element takes
// at least one byte.
func (r *reader) count(limit int) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(limit) {
		return 0, fmt.Errorf("%d entries, over the limit of %d", n, limit)
	}
	if uint64(n) > uint64(r.left()) {
		return 0, fmt.Errorf("%d entries but only %d bytes left", n, r.left())
	}
	return int(n), nil
}

func (r *reader) vec(limit int, each func(i int) error) error {
	n, err := r.count(limit)
	if err != nil {
		return err
	}
	for i := range n {
		if err := each(i); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// name reads a length-prefixed name.
func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	start := r.off
	if err := r.skip(uint64(n)); err != nil {
		return "", fmt.Errorf("name of %d bytes: %w", n, err)
	}
	return string(r.b[start:r.off]), nil
}

func (r *reader) nameMap() error {
	return r.vec(maxNameSubs, func(int) error {
		if _, err := r.u32(); err != nil {
			return err
		}
		_, err := r.name()
		return err
	})
}

// heapType reads a signed LEB128 of at most 33 bits.
func (r *reader) heapType() error { _, err := r.leb(5); return err }

// refType reads a reference type: a shorthand byte, or 0x63/0x64 and a heap type.
func (r *reader) refType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c == 0x63 || c == 0x64 {
		return r.heapType()
	}
	return nil
}

// valType reads a value type; wazero checks which it supports.
func (r *reader) valType() error { return r.refType() }

func (r *reader) funcType() error {
	form, err := r.byte()
	if err != nil {
		return err
	}
	if form != 0x60 {
		return fmt.Errorf("type form %#x is not a function type", form)
	}
	for range 2 { // params, results
		if err := r.vec(maxParams, func(int) error { return r.valType() }); err != nil {
			return err
		}
	}
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
	read := func() (uint32, error) {
		if flags&4 == 0 {
			return r.u32()
		}
		v, err := r.leb(10) // memory64
		return uint32(min64(v, 1<<32-1)), err
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

func min64(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

func (r *reader) table() (tableScan, error) {
	c, err := r.byte()
	if err != nil {
		return tableScan{}, err
	}
	init := c == 0x40 // a table with an initializer
	if init {
		if _, err := r.byte(); err != nil {
			return tableScan{}, err
		}
	} else {
		r.off-- // a plain table type
	}
	if err := r.refType(); err != nil {
		return tableScan{}, err
	}
	t, err := r.tableLimits()
	if err == nil && init {
		err = r.constExpr()
	}
	return t, err
}

// tableLimits reads a table's limits.
func (r *reader) tableLimits() (tableScan, error) {
	if r.off >= len(r.b) {
		return tableScan{}, errShort
	}
	hasMax := r.b[r.off]&1 != 0
	min, max, err := r.limits()
	return tableScan{min: min, max: max, hasMax: hasMax}, err
}

func (r *reader) importEntry(ms *memoryScan) error {
	if _, err := r.name(); err != nil {
		return err
	}
	if _, err := r.name(); err != nil {
		return err
	}
	kind, err := r.byte()
	if err != nil {
		return err
	}
	switch kind {
	case 0: // func: type index
		_, err = r.u32()
	case 1: // table
		ms.importsTables = true
		if err = r.refType(); err == nil {
			_, _, err = r.limits()
		}
	case 2: // memory
		var min, max uint32
		if min, max, err = r.limits(); err == nil {
			ms.imported, ms.min, ms.max = true, min, max
		}
	case 3: // global: value type, mutability
		if err = r.valType(); err == nil {
			_, err = r.byte()
		}
	case 4: // tag: attribute, type index
		if _, err = r.byte(); err == nil {
			_, err = r.u32()
		}
	default:
		return fmt.Errorf("unknown import kind %#x", kind)
	}
	return err
}

// constExpr reads a constant expression up to its end opcode.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			_, err = r.leb(5)
		case 0x42: // i64.const
			_, err = r.leb(10)
		case 0x43: // f32.const
			err = r.skip(4)
		case 0x44: // f64.const
			err = r.skip(8)
		case 0xd0: // ref.null
			err = r.heapType()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			var sub uint64
			if sub, err = r.leb(5); err == nil {
				if sub != 12 {
					return fmt.Errorf("opcode 0xfd %d in a constant expression", sub)
				}
				err = r.skip(16)
			}
		default:
			return fmt.Errorf("opcode %#x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) elemSegment() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags > 7 {
		return fmt.Errorf("unknown element segment flags %d", flags)
	}
	if flags&2 != 0 && flags&1 == 0 { // explicit table index
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	if flags&1 == 0 { // active: offset
		if err := r.constExpr(); err != nil {
			return err
		}
	}
	if flags&3 != 0 { // element kind or reference type
		if flags&4 == 0 {
			_, err = r.byte()
		} else {
			err = r.refType()
		}
		if err != nil {
			return err
		}
	}
	if flags&4 == 0 {
		return r.vec(maxSegmentElems, func(int) error { _, err := r.u32(); return err })
	}
	return r.vec(maxSegmentElems, func(int) error { return r.constExpr() })
}

func (r *reader) dataSegment() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	switch flags {
	case 0:
		err = r.constExpr()
	case 1:
	case 2:
		if _, err = r.u32(); err == nil {
			err = r.constExpr()
		}
	default:
		return fmt.Errorf("unknown data segment flags %d", flags)
	}
	if err != nil {
		return err
	}
	n, err := r.u32()
	if err != nil {
		return err
	}
	if err := r.skip(uint64(n)); err != nil {
		return fmt.Errorf("data of %d bytes: %w", n, err)
	}
	return nil
}

// body reads a function body's size and local declarations, and scans its instructions for
// table.grow.
func (r *reader) body(ms *memoryScan) error {
	size, err := r.u32()
	if err != nil {
		return err
	}
	if uint64(size) > uint64(r.left()) {
		return fmt.Errorf("body of %d bytes but only %d left", size, r.left())
	}
	b := &reader{b: r.b[:r.off+int(size)], off: r.off}
	r.off += int(size)
	total := uint64(0)
	err = b.vec(maxLocals, func(int) error {
		n, err := b.u32()
		if err != nil {
			return err
		}
		if total += uint64(n); total > maxLocals {
			return fmt.Errorf("more than %d locals", maxLocals)
		}
		return b.valType()
	})
	if err != nil {
		return err
	}
	if !ms.growsAll && b.scanCode(ms) != nil {
		ms.growsAll = true // undecodable here: assume the worst, and let wazero judge the code
	}
	return nil
}

// scanCode walks instructions to the end of the body, decoding their immediates, and records the
// tables table.grow names. It knows the instructions of WebAssembly 2.0 (with SIMD) and of the
// threads proposal, which are what wazero accepts.
func (r *reader) scanCode(ms *memoryScan) error {
	u32 := func(n int) error {
		for range n {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	}
	memarg := func() error {
		align, err := r.u32()
		if err != nil {
			return err
		}
		if align&0x40 != 0 { // multi-memory: a memory index follows
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		_, err = r.u32()
		return err
	}
	for r.left() > 0 {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if: a block type (s33)
			_, err = r.leb(5)
		case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2 || // br, br_if, call, return_call, ref.func
			op >= 0x20 && op <= 0x26 || op == 0x3f || op == 0x40: // locals, globals, table.get/set, memory.size/grow
			err = u32(1)
		case op == 0x0e: // br_table
			var n int
			if n, err = r.count(maxSegmentElems); err == nil {
				err = u32(n + 1)
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			err = u32(2)
		case op == 0x1c: // select with types
			err = r.vec(maxParams, func(int) error { return r.valType() })
		case op >= 0x28 && op <= 0x3e: // loads and stores
			err = memarg()
		case op == 0x41:
			_, err = r.leb(5)
		case op == 0x42:
			_, err = r.leb(10)
		case op == 0x43:
			err = r.skip(4)
		case op == 0x44:
			err = r.skip(8)
		case op == 0xd0: // ref.null
			err = r.heapType()
		case op == 0xfc:
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			switch {
			case sub <= 7: // saturating truncations
			case sub == 9 || sub == 11 || sub == 13 || sub == 16 || sub == 17: // data.drop, memory.fill, elem.drop, table.size, table.fill
				err = u32(1)
			case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
				err = u32(2)
			case sub == 15: // table.grow
				var t uint32
				if t, err = r.u32(); err == nil {
					if ms.grows == nil {
						ms.grows = map[uint32]bool{}
					}
					ms.grows[t] = true
				}
			default:
				return fmt.Errorf("unknown instruction 0xfc %d", sub)
			}
		case op == 0xfd: // SIMD
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			switch {
			case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads and stores
				err = memarg()
			case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
				err = r.skip(16)
			case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
				err = r.skip(1)
			case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
				if err = memarg(); err == nil {
					err = r.skip(1)
				}
			case sub > 0x113:
				return fmt.Errorf("unknown instruction 0xfd %d", sub)
			}
		case op == 0xfe: // threads
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			if sub == 0x03 { // atomic.fence
				err = r.skip(1)
			} else {
				err = memarg()
			}
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
			op >= 0x45 && op <= 0xc4 || op == 0xd1: // no immediates
		default:
			return fmt.Errorf("unknown instruction %#x", op)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
