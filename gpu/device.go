package gpu

// Device says where a tensor's data lives.
type Device uint8

const (
	// CPU is host memory; always available.
	CPU Device = iota
	// CUDA is the memory of the first CUDA device, when the CUDA backend loaded.
	CUDA
)

func (d Device) String() string {
	if d == CUDA {
		return "cuda"
	}
	return "cpu"
}

// Device is where the tensor lives.
func (t *Tensor) Device() Device {
	if t.st.dev != nil {
		return CUDA
	}
	return CPU
}

// deviceOf returns the common device of ts or an error naming op.
func deviceOf(op string, ts ...*Tensor) (Device, error) {
	dev := ts[0].Device()
	for _, t := range ts[1:] {
		if t != nil && t.Device() != dev {
			return 0, opErr(op, ErrDevice, "operands on %v and %v", dev, t.Device())
		}
	}
	return dev, nil
}

// To returns a copy of t on device dev (t itself when it is already there). Moving to CUDA
// fails with ErrDevice when the CUDA backend is not available; see BackendInfo.
func To(t *Tensor, dev Device) (*Tensor, error) {
	if t == nil {
		return nil, opErr("to", ErrArgument, "nil tensor")
	}
	if t.Device() == dev {
		return t, nil
	}
	if dev == CUDA && !cudaReady() {
		return nil, opErr("to", ErrDevice, "CUDA backend unavailable: %s", BackendInfo().CUDAReason)
	}
	out, err := contiguousCopy("to", t)
	if err != nil {
		return nil, err
	}
	if dev == CUDA {
		out.st.dev = &devMem{hostValid: true}
		if err := out.syncDevice(); err != nil {
			return nil, err
		}
	} else {
		out.st.dev = nil
	}
	return record(out, "to", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := To(g.Detach(), t.Device())
		return []*Tensor{gx}, err
	}), nil
}

// Info describes the backends of this process.
type Info struct {
	CPUKernel     string // "avx2+fma" or "go"
	Threads       int    // goroutines per CPU op
	CUDA          bool   // the CUDA backend is usable
	CUDADevice    string // the device's name, when CUDA is usable
	CUDAReason    string // why CUDA is not usable, when it is not
	CUDALibraries string // the libraries that loaded
}
