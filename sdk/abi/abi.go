// Package abi holds Lumen's host ABI v1: the names, signatures, status codes, capabilities and
// payload types shared by the host and every guest SDK. It imports only the standard library, so
// guests can depend on it. docs/abi.md is the specification this package mirrors.
package abi

// Version is the ABI version this package describes.
const Version = 1

// Module names a guest may import from.
const (
	// HostModule is the import module that holds Lumen's host functions.
	HostModule = "lumen"
	// WASIModule is WASI preview 1. Go guests need it; without grants it sees no files, no
	// environment, no arguments, a fake clock and deterministic randomness.
	WASIModule = "wasi_snapshot_preview1"
)

// Guest exports. Every ABI v1 guest exports all four.
const (
	// ExportVersionMarker is a function of type () -> () whose presence declares ABI v1. A guest
	// built against ABI vN exports "lumen_abi_vN" instead; the host reads the number from the name.
	ExportVersionMarker = "lumen_abi_v1"
	// VersionMarkerPrefix is the prefix of every version marker export.
	VersionMarkerPrefix = "lumen_abi_v"
	// ExportAlloc is lumen_alloc(size i32) -> ptr i32: the guest reserves size bytes and returns
	// their address, or 0 when it cannot. The host writes call arguments there; ownership of the
	// buffer passes to the guest with the following lumen_call.
	ExportAlloc = "lumen_alloc"
	// ExportManifest is lumen_manifest() -> i64: the packed pointer and length of the guest's
	// manifest JSON (see Manifest).
	ExportManifest = "lumen_manifest"
	// ExportCall is lumen_call(fn i32, ptr i32, len i32) -> i64: run the function at index fn of
	// the manifest's Functions on the len argument bytes at ptr, and return the packed pointer and
	// length of its output. The output stays valid until the next call into the instance.
	ExportCall = "lumen_call"
)

// Pack joins a guest pointer and a length into the i64 that lumen_call and lumen_manifest return:
// the pointer in the high 32 bits, the length in the low 32 bits.
func Pack(ptr, length uint32) uint64 { return uint64(ptr)<<32 | uint64(length) }

// Unpack splits a value made by Pack.
func Unpack(v uint64) (ptr, length uint32) { return uint32(v >> 32), uint32(v) }

// ValType is a WebAssembly value type, encoded as in the binary format.
type ValType byte

// The value types the ABI uses.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
	F32 ValType = 0x7d
	F64 ValType = 0x7c
)

// String returns the type's name in the text format.
func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return "unknown"
}

// Signature is a function type.
type Signature struct {
	Params  []ValType `json:"params"`
	Results []ValType `json:"results"`
}

// Equal reports whether two signatures are the same type.
func (s Signature) Equal(o Signature) bool {
	if len(s.Params) != len(o.Params) || len(s.Results) != len(o.Results) {
		return false
	}
	for i := range s.Params {
		if s.Params[i] != o.Params[i] {
			return false
		}
	}
	for i := range s.Results {
		if s.Results[i] != o.Results[i] {
			return false
		}
	}
	return true
}

// String renders the signature as "(i32, i32) -> i64".
func (s Signature) String() string {
	b := []byte{'('}
	for i, p := range s.Params {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, p.String()...)
	}
	b = append(b, ") -> ("...)
	for i, r := range s.Results {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, r.String()...)
	}
	return string(append(b, ')'))
}

func sig(params []ValType, results ...ValType) Signature {
	return Signature{Params: params, Results: results}
}

// RequiredExports are the exports every ABI v1 guest has, with their types.
var RequiredExports = map[string]Signature{
	ExportVersionMarker: sig(nil),
	ExportAlloc:         sig([]ValType{I32}, I32),
	ExportManifest:      sig(nil, I64),
	ExportCall:          sig([]ValType{I32, I32, I32}, I64),
}
