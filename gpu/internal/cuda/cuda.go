// Package cuda drives an NVIDIA GPU without cgo: it loads the CUDA driver (libcuda), cuBLAS and
// NVRTC with purego at run time, compiles its kernels from CUDA C with NVRTC, and makes every
// driver call on one locked OS thread that holds the device's primary context (CUDA 13 changed
// cuCtxCreate's signature; the primary context is the same on every version).
package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Device is an opened GPU. Its methods are safe for concurrent use: they queue work for the
// device's thread.
type Device struct {
	Name      string
	Major     int // compute capability
	Minor     int
	Libraries string // the library files that loaded

	work chan func()
	api  api
	blas uintptr
	fns  map[string]uintptr
}

// api holds the C functions, bound by purego.
type api struct {
	cuInit                   func(flags uint32) int32
	cuDeviceGetCount         func(n *int32) int32
	cuDeviceGet              func(dev *int32, ordinal int32) int32
	cuDeviceGetName          func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute     func(v *int32, attr int32, dev int32) int32
	cuDevicePrimaryCtxRetain func(ctx *uintptr, dev int32) int32
	cuCtxSetCurrent          func(ctx uintptr) int32
	cuCtxSynchronize         func() int32
	cuMemAlloc               func(ptr *uintptr, size uint64) int32
	cuMemFree                func(ptr uintptr) int32
	cuMemcpyHtoD             func(dst uintptr, src unsafe.Pointer, n uint64) int32
	cuMemcpyDtoH             func(dst unsafe.Pointer, src uintptr, n uint64) int32
	cuModuleLoadData         func(mod *uintptr, image unsafe.Pointer) int32
	cuModuleGetFunction      func(f *uintptr, mod uintptr, name *byte) int32
	cuLaunchKernel           func(f uintptr, gx, gy, gz, bx, by, bz, shmem uint32, stream uintptr, params unsafe.Pointer, extra unsafe.Pointer) int32
	cuGetErrorString         func(e int32, s **byte) int32

	cublasCreate              func(h *uintptr) int32
	cublasSgemmStridedBatched func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a uintptr, lda int32, sa int64, b uintptr, ldb int32, sb int64, beta *float32, c uintptr, ldc int32, sc int64, batch int32) int32

	nvrtcCreateProgram     func(prog *uintptr, src *byte, name *byte, nh int32, headers, names unsafe.Pointer) int32
	nvrtcCompileProgram    func(prog uintptr, nopt int32, opts unsafe.Pointer) int32
	nvrtcGetPTXSize        func(prog uintptr, n *uint64) int32
	nvrtcGetPTX            func(prog uintptr, ptx *byte) int32
	nvrtcGetProgramLogSize func(prog uintptr, n *uint64) int32
	nvrtcGetProgramLog     func(prog uintptr, log *byte) int32
	nvrtcDestroyProgram    func(prog *uintptr) int32
}

// Library file names, newest first.
var (
	driverLibs = []string{"libcuda.so.1", "libcuda.so"}
	cublasLibs = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}
	nvrtcLibs  = []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11", "libnvrtc.so"}
)

func dlopenAny(what string, names []string) (uintptr, string, error) {
	var last error
	for _, n := range names {
		h, err := purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, n, nil
		}
		last = err
	}
	return 0, "", fmt.Errorf("%s not found (tried %s): %w", what, strings.Join(names, ", "), last)
}

func bind(lib uintptr, fn any, name string) error {
	sym, err := purego.Dlsym(lib, name)
	if err != nil {
		return fmt.Errorf("symbol %s: %w", name, err)
	}
	purego.RegisterFunc(fn, sym)
	return nil
}

// Open loads the libraries, opens device 0 and compiles the kernels. Its error says what is
// missing.
func Open() (*Device, error) {
	d := &Device{work: make(chan func()), fns: map[string]uintptr{}}
	drv, n1, err := dlopenAny("CUDA driver", driverLibs)
	if err != nil {
		return nil, err
	}
	cb, n2, err := dlopenAny("cuBLAS", cublasLibs)
	if err != nil {
		return nil, err
	}
	nv, n3, err := dlopenAny("NVRTC", nvrtcLibs)
	if err != nil {
		return nil, err
	}
	d.Libraries = n1 + ", " + n2 + ", " + n3
	a := &d.api
	binds := []struct {
		lib  uintptr
		fn   any
		name string
	}{
		{drv, &a.cuInit, "cuInit"},
		{drv, &a.cuDeviceGetCount, "cuDeviceGetCount"},
		{drv, &a.cuDeviceGet, "cuDeviceGet"},
		{drv, &a.cuDeviceGetName, "cuDeviceGetName"},
		{drv, &a.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{drv, &a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{drv, &a.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{drv, &a.cuCtxSynchronize, "cuCtxSynchronize"},
		{drv, &a.cuMemAlloc, "cuMemAlloc_v2"},
		{drv, &a.cuMemFree, "cuMemFree_v2"},
		{drv, &a.cuMemcpyHtoD, "cuMemcpyHtoD_v2"},
		{drv, &a.cuMemcpyDtoH, "cuMemcpyDtoH_v2"},
		{drv, &a.cuModuleLoadData, "cuModuleLoadData"},
		{drv, &a.cuModuleGetFunction, "cuModuleGetFunction"},
		{drv, &a.cuLaunchKernel, "cuLaunchKernel"},
		{drv, &a.cuGetErrorString, "cuGetErrorString"},
		{cb, &a.cublasCreate, "cublasCreate_v2"},
		{cb, &a.cublasSgemmStridedBatched, "cublasSgemmStridedBatched"},
		{nv, &a.nvrtcCreateProgram, "nvrtcCreateProgram"},
		{nv, &a.nvrtcCompileProgram, "nvrtcCompileProgram"},
		{nv, &a.nvrtcGetPTXSize, "nvrtcGetPTXSize"},
		{nv, &a.nvrtcGetPTX, "nvrtcGetPTX"},
		{nv, &a.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"},
		{nv, &a.nvrtcGetProgramLog, "nvrtcGetProgramLog"},
		{nv, &a.nvrtcDestroyProgram, "nvrtcDestroyProgram"},
	}
	for _, b := range binds {
		if err := bind(b.lib, b.fn, b.name); err != nil {
			return nil, err
		}
	}
	ready := make(chan error)
	go d.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// loop owns the OS thread that holds the primary context; every driver call runs here.
func (d *Device) loop(ready chan<- error) {
	runtime.LockOSThread()
	err := d.init()
	ready <- err
	if err != nil {
		return
	}
	for fn := range d.work {
		fn()
	}
}

func (d *Device) do(fn func() error) error {
	done := make(chan error, 1)
	d.work <- func() { done <- fn() }
	return <-done
}

func (d *Device) check(call string, r int32) error {
	if r == 0 {
		return nil
	}
	msg := ""
	var s *byte
	if d.api.cuGetErrorString != nil && d.api.cuGetErrorString(r, &s) == 0 && s != nil {
		msg = ": " + cString(s)
	}
	return fmt.Errorf("%s failed with CUresult %d%s", call, r, msg)
}

func cString(p *byte) string {
	var b []byte
	for q := unsafe.Pointer(p); *(*byte)(q) != 0; q = unsafe.Add(q, 1) {
		b = append(b, *(*byte)(q))
	}
	return string(b)
}

func cStr(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

const (
	attrCCMajor = 75
	attrCCMinor = 76
)

func (d *Device) init() error {
	a := &d.api
	if err := d.check("cuInit", a.cuInit(0)); err != nil {
		return err
	}
	var count int32
	if err := d.check("cuDeviceGetCount", a.cuDeviceGetCount(&count)); err != nil {
		return err
	}
	if count == 0 {
		return errors.New("no CUDA device")
	}
	var dev int32
	if err := d.check("cuDeviceGet", a.cuDeviceGet(&dev, 0)); err != nil {
		return err
	}
	name := make([]byte, 256)
	if err := d.check("cuDeviceGetName", a.cuDeviceGetName(&name[0], int32(len(name)), dev)); err != nil {
		return err
	}
	d.Name = cString(&name[0])
	var major, minor int32
	if err := d.check("cuDeviceGetAttribute", a.cuDeviceGetAttribute(&major, attrCCMajor, dev)); err != nil {
		return err
	}
	if err := d.check("cuDeviceGetAttribute", a.cuDeviceGetAttribute(&minor, attrCCMinor, dev)); err != nil {
		return err
	}
	d.Major, d.Minor = int(major), int(minor)
	var ctx uintptr
	if err := d.check("cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain(&ctx, dev)); err != nil {
		return err
	}
	if err := d.check("cuCtxSetCurrent", a.cuCtxSetCurrent(ctx)); err != nil {
		return err
	}
	if r := a.cublasCreate(&d.blas); r != 0 {
		return fmt.Errorf("cublasCreate failed with status %d", r)
	}
	return d.compile(kernelSource, kernelNames)
}

// compile builds src with NVRTC for this device and looks up the named kernels.
func (d *Device) compile(src string, names []string) error {
	a := &d.api
	var prog uintptr
	if r := a.nvrtcCreateProgram(&prog, cStr(src), cStr("lumen.cu"), 0, nil, nil); r != 0 {
		return fmt.Errorf("nvrtcCreateProgram failed with status %d", r)
	}
	defer a.nvrtcDestroyProgram(&prog)
	opts := []*byte{cStr(fmt.Sprintf("--gpu-architecture=compute_%d%d", d.Major, d.Minor)), cStr("--use_fast_math")}
	if r := a.nvrtcCompileProgram(prog, int32(len(opts)), unsafe.Pointer(&opts[0])); r != 0 {
		var n uint64
		a.nvrtcGetProgramLogSize(prog, &n)
		log := make([]byte, n+1)
		a.nvrtcGetProgramLog(prog, &log[0])
		return fmt.Errorf("NVRTC compile failed with status %d: %s", r, cString(&log[0]))
	}
	runtime.KeepAlive(opts)
	var n uint64
	if r := a.nvrtcGetPTXSize(prog, &n); r != 0 {
		return fmt.Errorf("nvrtcGetPTXSize failed with status %d", r)
	}
	ptx := make([]byte, n+1)
	if r := a.nvrtcGetPTX(prog, &ptx[0]); r != 0 {
		return fmt.Errorf("nvrtcGetPTX failed with status %d", r)
	}
	var mod uintptr
	if err := d.check("cuModuleLoadData", a.cuModuleLoadData(&mod, unsafe.Pointer(&ptx[0]))); err != nil {
		return err
	}
	for _, name := range names {
		var f uintptr
		if err := d.check("cuModuleGetFunction "+name, a.cuModuleGetFunction(&f, mod, cStr(name))); err != nil {
			return err
		}
		d.fns[name] = f
	}
	return nil
}

// Alloc returns bytes of device memory.
func (d *Device) Alloc(bytes int64) (uintptr, error) {
	var p uintptr
	err := d.do(func() error { return d.check("cuMemAlloc", d.api.cuMemAlloc(&p, uint64(max(bytes, 4)))) })
	return p, err
}

// Free returns device memory from Alloc.
func (d *Device) Free(p uintptr) {
	if p != 0 {
		_ = d.do(func() error { return d.check("cuMemFree", d.api.cuMemFree(p)) })
	}
}

// Upload copies src to device memory at dst.
func (d *Device) Upload(dst uintptr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return d.do(func() error {
		return d.check("cuMemcpyHtoD", d.api.cuMemcpyHtoD(dst, unsafe.Pointer(&src[0]), uint64(4*len(src))))
	})
}

// Download copies device memory at src into dst.
func (d *Device) Download(dst []float32, src uintptr) error {
	if len(dst) == 0 {
		return nil
	}
	return d.do(func() error {
		return d.check("cuMemcpyDtoH", d.api.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), src, uint64(4*len(dst))))
	})
}

// Operand is one matrix operand of Sgemm in cuBLAS's column-major terms.
type Operand struct {
	Ptr    uintptr
	Trans  bool  // transpose before multiplying
	LD     int   // leading dimension
	Stride int64 // elements between batch items (0: shared)
}

// Sgemm runs batch column-major products C = op(A)·op(B) with C m x n, leading dimension ldc
// and strideC elements between batch items, as cublasSgemmStridedBatched does.
func (d *Device) Sgemm(m, n, k int, a, b Operand, c uintptr, ldc int, strideC int64, batch int) error {
	op := func(t bool) int32 {
		if t {
			return 1
		}
		return 0
	}
	return d.do(func() error {
		one, zero := new(float32), new(float32)
		*one = 1
		r := d.api.cublasSgemmStridedBatched(d.blas, op(a.Trans), op(b.Trans), int32(m), int32(n), int32(k),
			one, a.Ptr, int32(a.LD), a.Stride, b.Ptr, int32(b.LD), b.Stride, zero, c, int32(ldc), strideC, int32(batch))
		if r != 0 {
			return fmt.Errorf("cublasSgemmStridedBatched failed with status %d", r)
		}
		return nil
	})
}

// Launch runs kernel name over n elements (one thread each, grid-stride) with args, each a
// uintptr (device pointer), int64 or float32.
func (d *Device) Launch(name string, n int64, args ...any) error {
	f, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("no kernel %q", name)
	}
	params := make([]unsafe.Pointer, len(args))
	for i, v := range args {
		switch x := v.(type) {
		case uintptr:
			p := new(uintptr)
			*p = x
			params[i] = unsafe.Pointer(p)
		case int64:
			p := new(int64)
			*p = x
			params[i] = unsafe.Pointer(p)
		case float32:
			p := new(float32)
			*p = x
			params[i] = unsafe.Pointer(p)
		default:
			return fmt.Errorf("kernel %s: argument %d has type %T", name, i, v)
		}
	}
	const block = 256
	grid := min((n+block-1)/block, 65535)
	if grid < 1 {
		return nil
	}
	return d.do(func() error {
		err := d.check("cuLaunchKernel "+name, d.api.cuLaunchKernel(f, uint32(grid), 1, 1, block, 1, 1, 0, 0, unsafe.Pointer(&params[0]), nil))
		runtime.KeepAlive(params)
		return err
	})
}

// Sync waits for queued device work to finish.
func (d *Device) Sync() error {
	return d.do(func() error { return d.check("cuCtxSynchronize", d.api.cuCtxSynchronize()) })
}

var (
	openOnce sync.Once
	opened   *Device
	openErr  error
)

// Shared opens the device once per process and returns the same result afterwards.
func Shared() (*Device, error) {
	openOnce.Do(func() { opened, openErr = Open() })
	return opened, openErr
}
