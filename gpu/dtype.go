package gpu

// DType is a tensor's element type. Ops compute in Float32; Int32 and Int64 tensors carry
// indices and labels. BFloat16 and Float16 are storage formats read from safetensors files and
// converted to Float32 on load.
type DType uint8

const (
	Float32 DType = iota
	Int32
	Int64
	BFloat16
	Float16
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "F32"
	case Int32:
		return "I32"
	case Int64:
		return "I64"
	case BFloat16:
		return "BF16"
	case Float16:
		return "F16"
	}
	return "unknown"
}

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Int64:
		return 8
	case BFloat16, Float16:
		return 2
	}
	return 4
}
