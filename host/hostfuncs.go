package host

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The "lumen" host module. Every function:
//   - finds its call through the context (stateOf) and answers ErrInternal without one;
//   - checks the capability, then every pointer and length in 64-bit arithmetic (ptr+len can wrap
//     u32), then the payload, then that an engine is behind it;
//   - returns >= 0 on success and a negated abi.Status on failure, with the failure's message (or,
//     for ErrFailed, the failed task's abi.Error JSON) as the pending result;
//   - recovers a panic of the engine into ErrInternal, except the output-limit panic that stops
//     the call.
//
// The engine functions replace the pending result: the bytes-returning ones (object_get, wait,
// tensor_read, tensor_info) with their bytes, the others with nothing. log, error, result_len and result_read leave it as it
// is, so a guest may log between a get and its result_read, and retry a result_read whose buffer
// was out of bounds.

// hostFunc is a host function's body; it returns the value for the guest.
type hostFunc func(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64

func (r *Runtime) instantiateHostModule(ctx context.Context) error {
	funcs := map[string]hostFunc{
		abi.FnLog:           hostLog,
		abi.FnError:         hostGuestError,
		abi.FnResultLen:     hostResultLen,
		abi.FnResultRead:    hostResultRead,
		abi.FnObjectPut:     hostObjectPut,
		abi.FnObjectGet:     hostObjectGet,
		abi.FnObjectRelease: hostObjectRelease,
		abi.FnTaskSubmit:    hostTaskSubmit,
		abi.FnTaskCancel:    hostTaskCancel,
		abi.FnWait:          hostWait,
		abi.FnActorCreate:   hostActorCreate,
		abi.FnActorCall:     hostActorCall,
		abi.FnActorKill:     hostActorKill,

		abi.FnTensorCreate:   hostTensorCreate,
		abi.FnTensorOp:       hostTensorOp,
		abi.FnTensorRead:     hostTensorRead,
		abi.FnTensorInfo:     hostTensorInfo,
		abi.FnTensorBackward: hostTensorBackward,
		abi.FnTensorGrad:     hostTensorGrad,
		abi.FnTensorFree:     hostTensorFree,
		abi.FnOptimCreate:    hostOptimCreate,
		abi.FnOptimStep:      hostOptimStep,
		abi.FnOptimZeroGrad:  hostOptimZeroGrad,

		abi.FnModelChat: hostModelChat,

		abi.FnDatasetOpen:   hostDatasetOpen,
		abi.FnDatasetNext:   hostDatasetNext,
		abi.FnDatasetSchema: hostDatasetSchema,
		abi.FnDatasetCreate: hostDatasetCreate,
		abi.FnDatasetAppend: hostDatasetAppend,
		abi.FnDatasetFinish: hostDatasetFinish,
		abi.FnDatasetClose:  hostDatasetClose,
		abi.FnDatasetWrite:  hostDatasetWrite,
	}
	b := r.wz.NewHostModuleBuilder(abi.HostModule)
	for _, name := range abi.HostFuncNames() {
		hf := abi.HostFuncs[name]
		body, ok := funcs[name]
		if !ok {
			return fmt.Errorf("host function %q is not implemented", name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(wrap(r, hf, body), valueTypes(hf.Sig.Params), valueTypes(hf.Sig.Results)).
			WithName(name).
			Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func valueTypes(ts []abi.ValType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
}

// wrap adapts body to wazero: it finds the call, checks the capability, stores the result as the
// function's result type and contains panics.
func wrap(r *Runtime, hf abi.HostFunc, body hostFunc) api.GoModuleFunc {
	bit := capBits[hf.Capability]
	i32 := len(hf.Sig.Results) == 1 && hf.Sig.Results[0] == abi.I32
	engine := hf.Capability != abi.CapBase
	name := hf.Name
	put := func(stack []uint64, v int64) {
		if i32 {
			stack[0] = uint64(uint32(int32(v)))
		} else {
			stack[0] = uint64(v)
		}
	}
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		st := stateOf(ctx)
		if st == nil || !st.in.running {
			put(stack, abi.ErrInternal.Code())
			return
		}
		if engine {
			st.clearPending()
		}
		if !st.caps.has(bit) {
			put(stack, st.fail(abi.ErrDenied, fmt.Sprintf("%s: capability %q is not granted to this call", name, hf.Capability)))
			return
		}
		defer func() {
			if p := recover(); p != nil {
				if p == errOutputLimit {
					panic(p)
				}
				st.fault = fmt.Errorf("%s: panic: %v", name, p)
				put(stack, st.fail(abi.ErrInternal, st.fault.Error()))
			}
		}()
		put(stack, body(ctx, st, mod, stack))
	}
}

// view returns the guest's bytes [ptr, ptr+n) without copying, or false when they are not all
// inside its memory. The bytes are valid until the guest runs again.
func view(mod api.Module, ptr, n uint32) ([]byte, bool) {
	mem := mod.Memory()
	if mem == nil || uint64(ptr)+uint64(n) > uint64(mem.Size()) {
		return nil, false
	}
	return mem.Read(ptr, n)
}

func badPointer(st *callState, mod api.Module, what string, ptr, n uint32) int64 {
	var size uint32
	if mem := mod.Memory(); mem != nil {
		size = mem.Size()
	}
	return st.fail(abi.ErrBadPointer, fmt.Sprintf("%s: [%#x, +%d) is outside the guest's %d-byte memory", what, ptr, n, size))
}

// fail sets the pending result to msg and returns the status's code.
func (st *callState) fail(s abi.Status, msg string) int64 {
	st.pending, st.hasPending = []byte(msg), true
	return s.Code()
}

// failErr maps an error of Services to the guest's status.
func (st *callState) failErr(what string, err error) int64 {
	s, msg := statusOf(err)
	if s != abi.ErrFailed {
		msg = append([]byte(what+": "), msg...)
	}
	st.pending, st.hasPending = msg, true
	return s.Code()
}

func (st *callState) clearPending() { st.pending, st.hasPending = nil, false }

// setPending makes b the pending result and returns its length, or fails when it is over the
// call's result limit (or what result_len can report).
func (st *callState) setPending(what string, b []byte) int64 {
	max := st.maxResult
	if max > math.MaxInt32 {
		max = math.MaxInt32
	}
	if int64(len(b)) > max {
		return st.fail(abi.ErrTooLarge, fmt.Sprintf("%s: result of %d bytes is over the %d-byte limit", what, len(b), max))
	}
	st.pending, st.hasPending = b, true
	return int64(len(b))
}

func (st *callState) services(what string) (Services, int64) {
	s := st.in.r.cfg.Services
	if s == nil {
		return nil, st.fail(abi.ErrUnavailable, what+": no engine behind this host")
	}
	return s, 0
}

// yieldSlot gives the call's concurrency slot back while it blocks on the engine.
func (st *callState) yieldSlot() {
	if st.slot == slotHeld {
		st.slot = slotYielded
		st.in.r.release()
	}
}

// reclaimSlot takes a slot again after yieldSlot. If ctx ends first the call goes on without one
// (it is about to be stopped anyway) and reports false.
func (st *callState) reclaimSlot(ctx context.Context) bool {
	if st.slot != slotYielded {
		return true
	}
	if _, err := st.in.r.acquire(ctx); err != nil {
		return false
	}
	st.slot = slotHeld
	return true
}

var levelPrefix = [...][]byte{
	abi.LogDebug: []byte("DEBUG "),
	abi.LogInfo:  []byte("INFO "),
	abi.LogWarn:  []byte("WARN "),
	abi.LogError: []byte("ERROR "),
}

var newline = []byte{'\n'}

// log(level i32, ptr i32, len i32) -> i32: appends "LEVEL message\n" to the call's log.
func hostLog(_ context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	level := int32(uint32(stack[0]))
	ptr, n := uint32(stack[1]), uint32(stack[2])
	if level < abi.LogDebug || level > abi.LogError {
		return st.fail(abi.ErrBadLevel, fmt.Sprintf("log: level %d is not 0 (debug) to 3 (error)", level))
	}
	b, ok := view(mod, ptr, n)
	if !ok {
		return badPointer(st, mod, "log", ptr, n)
	}
	st.appendLog(levelPrefix[level])
	st.appendLog(b)
	st.appendLog(newline)
	return 0
}

// error(ptr i32, len i32) -> i32: records the guest's error; lumen_call's output is then ignored.
func hostGuestError(_ context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	b, ok := view(mod, ptr, n)
	if !ok {
		return badPointer(st, mod, "error", ptr, n)
	}
	if len(b) > abi.MaxErrorBytes {
		b = b[:abi.MaxErrorBytes] // DecodeGuestError keeps no more
	}
	st.guestErr = append(st.guestErr[:0], b...)
	st.erred = true
	return 0
}

// result_len() -> i32: the length of the pending result, 0 when there is none.
func hostResultLen(_ context.Context, st *callState, _ api.Module, _ []uint64) int64 {
	if !st.hasPending {
		return 0
	}
	return int64(len(st.pending))
}

// result_read(ptr i32, len i32) -> i32: copies up to len bytes of the pending result to ptr and
// clears it; returns the bytes copied.
func hostResultRead(_ context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	dst, ok := view(mod, ptr, n)
	if !ok {
		return abi.ErrBadPointer.Code() // the pending result stays for a retry
	}
	if !st.hasPending {
		return abi.ErrNoResult.Code()
	}
	m := copy(dst, st.pending)
	st.clearPending()
	return int64(m)
}

// object_put(ptr i32, len i32) -> i64 handle.
func hostObjectPut(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	b, ok := view(mod, ptr, n)
	if !ok {
		return badPointer(st, mod, abi.FnObjectPut, ptr, n)
	}
	s, code := st.services(abi.FnObjectPut)
	if s == nil {
		return code
	}
	data := make([]byte, len(b))
	copy(data, b)
	h, err := s.ObjectPut(ctx, &st.info, data)
	if err != nil {
		return st.failErr(abi.FnObjectPut, err)
	}
	return checkHandle(st, abi.FnObjectPut, h)
}

// object_get(handle i64, timeout_ms i64) -> i64 length of the pending result. A negative timeout
// waits until the call's deadline.
func hostObjectGet(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h, ms := int64(stack[0]), int64(stack[1])
	if h <= 0 {
		return st.fail(abi.ErrNotFound, fmt.Sprintf("object_get: handle %d is not positive", h))
	}
	s, code := st.services(abi.FnObjectGet)
	if s == nil {
		return code
	}
	timeout := time.Duration(-1)
	if ms >= 0 && ms <= math.MaxInt64/int64(time.Millisecond) {
		timeout = time.Duration(ms) * time.Millisecond
	}
	st.yieldSlot()
	data, err := s.ObjectGet(ctx, &st.info, h, timeout)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnObjectGet, err)
	}
	return st.setPending(abi.FnObjectGet, data)
}

// object_release(handle i64) -> i32 status.
func hostObjectRelease(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	if h <= 0 {
		return st.fail(abi.ErrNotFound, fmt.Sprintf("object_release: handle %d is not positive", h))
	}
	s, code := st.services(abi.FnObjectRelease)
	if s == nil {
		return code
	}
	if err := s.ObjectRelease(ctx, &st.info, h); err != nil {
		return st.failErr(abi.FnObjectRelease, err)
	}
	return 0
}

// payload reads and checks the JSON payload of a request-taking host function.
func payload(st *callState, mod api.Module, what string, stack []uint64) ([]byte, int64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	b, ok := view(mod, ptr, n)
	if !ok {
		return nil, badPointer(st, mod, what, ptr, n)
	}
	if n > abi.MaxRequestBytes {
		return nil, st.fail(abi.ErrTooLarge, fmt.Sprintf("%s: payload of %d bytes is over the %d-byte limit", what, n, abi.MaxRequestBytes))
	}
	return b, 0
}

// task_submit(ptr i32, len i32) -> i64 handle of the task's result.
func hostTaskSubmit(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnTaskSubmit, stack)
	if b == nil && code != 0 {
		return code
	}
	req, err := abi.DecodeTaskRequest(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	s, code := st.services(abi.FnTaskSubmit)
	if s == nil {
		return code
	}
	h, err := s.TaskSubmit(ctx, &st.info, req)
	if err != nil {
		return st.failErr(abi.FnTaskSubmit, err)
	}
	return checkHandle(st, abi.FnTaskSubmit, h)
}

// task_cancel(handle i64) -> i32 status.
func hostTaskCancel(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	if h <= 0 {
		return st.fail(abi.ErrNotFound, fmt.Sprintf("task_cancel: handle %d is not positive", h))
	}
	s, code := st.services(abi.FnTaskCancel)
	if s == nil {
		return code
	}
	if err := s.TaskCancel(ctx, &st.info, h); err != nil {
		return st.failErr(abi.FnTaskCancel, err)
	}
	return 0
}

// wait(ptr i32, len i32) -> i64 length of the pending WaitResult JSON.
func hostWait(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnWait, stack)
	if b == nil && code != 0 {
		return code
	}
	req, err := abi.DecodeWaitRequest(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	s, code := st.services(abi.FnWait)
	if s == nil {
		return code
	}
	st.yieldSlot()
	res, err := s.Wait(ctx, &st.info, req)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnWait, err)
	}
	if res == nil {
		res = &abi.WaitResult{}
	}
	if res.Ready == nil {
		res.Ready = []int64{}
	}
	if res.NotReady == nil {
		res.NotReady = []int64{}
	}
	out, err := json.Marshal(res)
	if err != nil {
		return st.fail(abi.ErrInternal, "wait: "+err.Error())
	}
	return st.setPending(abi.FnWait, out)
}

// actor_create(ptr i32, len i32) -> i64 actor handle.
func hostActorCreate(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnActorCreate, stack)
	if b == nil && code != 0 {
		return code
	}
	req, err := abi.DecodeActorCreateRequest(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	s, code := st.services(abi.FnActorCreate)
	if s == nil {
		return code
	}
	h, err := s.ActorCreate(ctx, &st.info, req)
	if err != nil {
		return st.failErr(abi.FnActorCreate, err)
	}
	return checkHandle(st, abi.FnActorCreate, h)
}

// actor_call(ptr i32, len i32) -> i64 handle of the call's result.
func hostActorCall(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnActorCall, stack)
	if b == nil && code != 0 {
		return code
	}
	req, err := abi.DecodeActorCallRequest(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	s, code := st.services(abi.FnActorCall)
	if s == nil {
		return code
	}
	h, err := s.ActorCall(ctx, &st.info, req)
	if err != nil {
		return st.failErr(abi.FnActorCall, err)
	}
	return checkHandle(st, abi.FnActorCall, h)
}

// actor_kill(handle i64) -> i32 status.
func hostActorKill(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	if h <= 0 {
		return st.fail(abi.ErrNotFound, fmt.Sprintf("actor_kill: handle %d is not positive", h))
	}
	s, code := st.services(abi.FnActorKill)
	if s == nil {
		return code
	}
	if err := s.ActorKill(ctx, &st.info, h); err != nil {
		return st.failErr(abi.FnActorKill, err)
	}
	return 0
}

// checkHandle refuses a handle the engine should not have returned: a guest reads any negative
// value as a status.
func checkHandle(st *callState, what string, h int64) int64 {
	if h <= 0 {
		return st.fail(abi.ErrInternal, fmt.Sprintf("%s: the engine returned handle %d", what, h))
	}
	return h
}
